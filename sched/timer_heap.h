// Deadlines of parked fibers: a 4-ary min-heap (as Go's timers) of intrusive nodes, one node per
// fiber. Each carrier owns one heap; the heap itself is not synchronized (the carrier's timer lock
// is). Removal of an arbitrary node is O(log n) through the index each node keeps.
#ifndef VTHREAD_SCHED_TIMER_HEAP_H_
#define VTHREAD_SCHED_TIMER_HEAP_H_

#include <stddef.h>
#include <stdint.h>

#include "sched/clock.h"

namespace vthread::sched {

struct Fiber;
class TimerHeap;

struct TimerNode {
  Nanos deadline = kNoDeadline;
  Fiber* fiber = nullptr;   // whom to wake
  uint32_t seq = 0;         // which park of that fiber
  size_t index = 0;         // position in heap->slots_ while armed
  TimerHeap* heap = nullptr;  // non-null while armed; guarded by that heap's owner lock
};

class TimerHeap {
 public:
  TimerHeap() = default;
  ~TimerHeap();
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;

  // Makes room for one more node so that push() cannot fail. May allocate; call it outside the
  // switch path. Returns false if memory could not be had.
  bool reserve_one();
  // Inserts a node whose deadline is set. reserve_one() must have succeeded since the last push.
  void push(TimerNode* node);
  // Removes an armed node of this heap.
  void remove(TimerNode* node);
  // The earliest node, or nullptr.
  TimerNode* top() const { return size_ ? slots_[0] : nullptr; }
  TimerNode* pop() {
    TimerNode* node = top();
    if (node) remove(node);
    return node;
  }
  Nanos earliest() const { return size_ ? slots_[0]->deadline : kNoDeadline; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kArity = 4;
  void sift_up(size_t i);
  void sift_down(size_t i);
  void place(size_t i, TimerNode* node) {
    slots_[i] = node;
    node->index = i;
  }

  TimerNode** slots_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_TIMER_HEAP_H_
