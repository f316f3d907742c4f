#include "sched/timer_heap.h"

#include <stdlib.h>

namespace vthread::sched {

TimerHeap::~TimerHeap() { free(slots_); }

bool TimerHeap::reserve_one() {
  if (size_ < capacity_) return true;
  size_t capacity = capacity_ ? capacity_ * 2 : 64;
  auto* slots = static_cast<TimerNode**>(realloc(slots_, capacity * sizeof(TimerNode*)));
  if (!slots) return false;
  slots_ = slots;
  capacity_ = capacity;
  return true;
}

void TimerHeap::push(TimerNode* node) {
  node->heap = this;
  place(size_, node);
  sift_up(size_++);
}

void TimerHeap::remove(TimerNode* node) {
  size_t i = node->index;
  node->heap = nullptr;
  TimerNode* last = slots_[--size_];
  if (i == size_) return;
  place(i, last);
  // The moved node may belong above or below its new position.
  sift_up(i);
  sift_down(last->index);
}

void TimerHeap::sift_up(size_t i) {
  TimerNode* node = slots_[i];
  while (i > 0) {
    size_t parent = (i - 1) / kArity;
    if (slots_[parent]->deadline <= node->deadline) break;
    place(i, slots_[parent]);
    i = parent;
  }
  place(i, node);
}

void TimerHeap::sift_down(size_t i) {
  TimerNode* node = slots_[i];
  for (;;) {
    size_t first = i * kArity + 1;
    if (first >= size_) break;
    size_t best = first;
    size_t end = first + kArity < size_ ? first + kArity : size_;
    for (size_t c = first + 1; c < end; ++c) {
      if (slots_[c]->deadline < slots_[best]->deadline) best = c;
    }
    if (node->deadline <= slots_[best]->deadline) break;
    place(i, slots_[best]);
    i = best;
  }
  place(i, node);
}

}  // namespace vthread::sched
