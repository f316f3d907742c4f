// Deadlines of parked fibers: each carrier has a 4-ary heap (TimerHeap) of the fibers that parked
// on it with a deadline. The owner fires its due timers at every scheduling decision; idle carriers
// sleep until, and fire, the earliest deadline of any carrier, so a carrier stuck in a long-running
// fiber does not hold up the others' wake-ups.
#include "sched/carrier.h"

namespace vthread::sched {

static void publish_earliest(Carrier* c) {
  c->earliest_timer.store(c->timers.earliest(), std::memory_order_release);
}

void arm_timer(Fiber* self, uint32_t seq, Nanos deadline) {
  Carrier* c = self->carrier;
  Nanos before;
  {
    SpinlockGuard hold(c->timer_lock);
    if (!c->timers.reserve_one()) die("out of memory for a timer");
    before = c->timers.earliest();
    self->timer.deadline = deadline;
    self->timer.fiber = self;
    self->timer.seq = seq;
    self->timer_carrier = c;
    c->timers.push(&self->timer);
    publish_earliest(c);
  }
  // Idle carriers sleep until the earliest deadline they saw; if ours is earlier and this carrier
  // has other work that may keep it busy, have an idle carrier look again.
  if (deadline < before && c->queued.load(std::memory_order_relaxed) > 0 &&
      any_carrier_idle()) {
    wake_idle_carrier();
  }
}

void disarm_timer(Fiber* self) {
  Carrier* c = self->timer_carrier;
  SpinlockGuard hold(c->timer_lock);
  if (self->timer.heap == &c->timers) {
    c->timers.remove(&self->timer);
    publish_earliest(c);
  }
}

// Fires the due timers of `c`. Returns how many parks it ended.
size_t fire_due_timers(Carrier* c, Nanos now) {
  size_t fired = 0;
  for (;;) {
    constexpr size_t kBatch = 32;
    ParkTicket due[kBatch];
    size_t n = 0;
    {
      SpinlockGuard hold(c->timer_lock);
      while (n < kBatch && c->timers.top() && c->timers.top()->deadline <= now) {
        TimerNode* node = c->timers.pop();
        // Copy out: once the lock is dropped the node belongs to its fiber again.
        due[n++] = ParkTicket{node->fiber, node->seq};
      }
      publish_earliest(c);
    }
    for (size_t i = 0; i < n; ++i) fired += wake(due[i], WakeReason::kTimeout);
    if (n < kBatch) return fired;
  }
}

// Not a timer, but the same kind of event: something other than the parker's waker ends a park,
// through the same compare-and-swap as wake(), so it resolves against a wake or a timeout exactly
// as those two resolve against each other.
bool interrupt(ParkTicket ticket) { return wake(ticket, WakeReason::kInterrupted); }

bool timers_due(Carrier* c, Nanos* now) {
  Nanos earliest = c->earliest_timer.load(std::memory_order_acquire);
  if (earliest == kNoDeadline) return false;
  *now = monotonic_now();
  return earliest <= *now;
}

Nanos earliest_timer_anywhere() {
  Nanos earliest = kNoDeadline;
  for (int i = 0; i < g_ncarriers; ++i) {
    Nanos e = g_carriers[i].earliest_timer.load(std::memory_order_acquire);
    if (e < earliest) earliest = e;
  }
  return earliest;
}

bool fire_all_due_timers() {
  Nanos now = monotonic_now();
  size_t fired = 0;
  for (int i = 0; i < g_ncarriers; ++i) {
    if (g_carriers[i].earliest_timer.load(std::memory_order_acquire) <= now) {
      fired += fire_due_timers(&g_carriers[i], now);
    }
  }
  return fired > 0;
}

}  // namespace vthread::sched
