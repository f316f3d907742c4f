#include "sched/run_queue.h"

namespace vthread::sched {

void RunQueue::push_back(Fiber* fiber) {
  fiber->priority = fiber->next_priority.load(std::memory_order_relaxed);
  fiber->rq_owner.store(this, std::memory_order_relaxed);
  Level& level = levels_[fiber->priority];
  fiber->rq_next = nullptr;
  fiber->rq_prev = level.tail;
  if (level.tail) {
    level.tail->rq_next = fiber;
  } else {
    level.head = fiber;
  }
  level.tail = fiber;
  bitmap_ |= 1u << fiber->priority;
  ++size_;
}

void RunQueue::push_front(Fiber* fiber) {
  fiber->priority = fiber->next_priority.load(std::memory_order_relaxed);
  fiber->rq_owner.store(this, std::memory_order_relaxed);
  Level& level = levels_[fiber->priority];
  fiber->rq_prev = nullptr;
  fiber->rq_next = level.head;
  if (level.head) {
    level.head->rq_prev = fiber;
  } else {
    level.tail = fiber;
  }
  level.head = fiber;
  bitmap_ |= 1u << fiber->priority;
  ++size_;
}

void RunQueue::remove(Fiber* fiber) {
  Level& level = levels_[fiber->priority];
  if (fiber->rq_prev) {
    fiber->rq_prev->rq_next = fiber->rq_next;
  } else {
    level.head = fiber->rq_next;
  }
  if (fiber->rq_next) {
    fiber->rq_next->rq_prev = fiber->rq_prev;
  } else {
    level.tail = fiber->rq_prev;
  }
  fiber->rq_next = fiber->rq_prev = nullptr;
  fiber->rq_owner.store(nullptr, std::memory_order_relaxed);
  if (!level.head) bitmap_ &= ~(1u << fiber->priority);
  --size_;
}

Fiber* RunQueue::pop_highest() {
  if (!bitmap_) return nullptr;
  Fiber* fiber = levels_[highest_level()].head;
  remove(fiber);
  return fiber;
}

size_t RunQueue::steal_half_into(RunQueue* thief) {
  size_t want = (size_ + 1) / 2;
  size_t moved = 0;
  while (moved < want) {
    Fiber* fiber = pop_highest();
    if (!fiber) break;
    thief->push_back(fiber);
    ++moved;
  }
  return moved;
}

}  // namespace vthread::sched
