// A carrier's run queue: 32 FIFO lists, one per priority level, and a bitmap of the non-empty ones,
// so picking the highest-priority runnable fiber is one find-last-set (LK's and DragonFly's design).
// Intrusive through Fiber::rq_next/rq_prev: queueing never allocates. Not synchronized; the owning
// carrier's lock guards it. A fiber is queued at the level it asks for at that moment
// (Fiber::next_priority) and records the queue it is on (Fiber::rq_owner), so that a change of
// priority can find it and move it (sched::set_priority).
#ifndef VTHREAD_SCHED_RUN_QUEUE_H_
#define VTHREAD_SCHED_RUN_QUEUE_H_

#include <stddef.h>
#include <stdint.h>

#include "sched/fiber.h"

namespace vthread::sched {

class RunQueue {
 public:
  // Appends at the tail of the fiber's next_priority level (round-robin within a level).
  void push_back(Fiber* fiber);
  // Inserts at the head of its level: the fiber runs next among its peers.
  void push_front(Fiber* fiber);
  // Removes and returns the first fiber of the highest non-empty level, or nullptr.
  Fiber* pop_highest();
  // Removes a queued fiber (to change its priority).
  void remove(Fiber* fiber);
  // Moves up to half of the fibers (at least one), highest levels first, to `thief`. Returns how
  // many moved.
  size_t steal_half_into(RunQueue* thief);

  bool empty() const { return bitmap_ == 0; }
  size_t size() const { return size_; }
  int highest_level() const { return bitmap_ ? 31 - __builtin_clz(bitmap_) : -1; }

 private:
  struct Level {
    Fiber* head = nullptr;
    Fiber* tail = nullptr;
  };
  Level levels_[kPriorityLevels];
  uint32_t bitmap_ = 0;
  size_t size_ = 0;
};

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_RUN_QUEUE_H_
