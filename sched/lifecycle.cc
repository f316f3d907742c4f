// A fiber's life: spawn, exit, join, detach. A fiber that exits switches out for good; the next
// context then publishes `exited` (finish_exit) and wakes joiners parked on &fiber->exited, or
// reaps it at once if it was detached. Whoever reaps it (joiner, detacher, finish_exit) returns
// its stack to the pool and its record to the table.
#include <errno.h>
#include <string.h>

#include "sched/carrier.h"
#include "sched/parking_lot.h"
#include "sched/tls.h"

namespace vthread::sched {

// The fiber switched out for good. Runs after its context is saved; it may be reaped at once.
void finish_exit(Fiber* f) {
  bool detached;
  {
    SpinlockGuard hold(f->lifecycle_lock);
    detached = f->detached;  // read before publishing `exited`: a joiner may reap f right after
    f->sched_word.store(make_sched_word(seq_of(f->sched_word.load()), FiberState::kExited));
    f->exited.store(true, std::memory_order_release);
  }
  // From here a joiner may reap f at any moment: only its address is used below.
  if (detached) {
    reap(f);
  } else {
    parking_lot::unpark_all(&f->exited);
  }
}

int spawn(const SpawnAttributes& attributes, void (*entry)(void*), void* arg, void* user_data, Fiber** out) {
  Fiber* f = FiberTable::allocate();
  if (!f) return EAGAIN;
  if (attributes.stack_addr) {
    f->stack = StackAllocator::wrap(attributes.stack_addr, attributes.stack_size);
  } else {
    size_t size = attributes.stack_size ? attributes.stack_size : g_config.default_stack_size;
    size_t guard = attributes.guard_size == SIZE_MAX ? g_config.default_guard_size : attributes.guard_size;
    if (!StackAllocator::allocate(size, guard, &f->stack)) {
      FiberTable::release(f);
      return EAGAIN;
    }
  }
  if (tls::per_fiber()) {
    bool too_small;
    f->tp = tls::attach(&f->stack, fake_tid(f), &too_small);
    if (!f->tp) {
      reap(f);
      return too_small ? EINVAL : EAGAIN;
    }
  }
  if (!arch::context_prepare(&f->context, f->stack.lo, tls::stack_top(f->stack), fiber_main, f)) {
    reap(f);
    return EAGAIN;
  }
  Fiber* creator = current();
  const char* name = attributes.name ? attributes.name : (creator ? creator->name : nullptr);
  if (name) set_name(f, name);
  f->entry = entry;
  f->entry_arg = arg;
  f->user_data = user_data;
  f->next_priority.store(static_cast<uint8_t>(attributes.priority), std::memory_order_relaxed);
  f->app_blocks_tick = creator && creator->app_blocks_tick;  // a new thread inherits its creator's mask
  f->detached = attributes.detached;
  f->created_at = monotonic_now();
  f->carrier = creator ? creator->carrier : &g_carriers[0];
  // As pthread_create: the new thread starts with its creator's signal mask.
  f->sigmask = creator ? creator->sigmask : kernel_signal_mask();
  count_signal_mask(f);
  g_live_fibers.fetch_add(1, std::memory_order_relaxed);
  *out = f;
  make_runnable(f);
  return 0;
}

void exit_current(void* result, void (*if_last)()) {
  Fiber* self = current();
  exit_signals(self);
  if (g_live_fibers.fetch_sub(1, std::memory_order_acq_rel) == 1 && if_last) if_last();
  self->result = result;
  switch_out(self, pick_local(self->carrier), PostSwitch::kExit, nullptr, nullptr);
  die("an exited fiber was resumed");
}

static bool has_not_exited(void* fiber) { return !static_cast<Fiber*>(fiber)->exited.load(std::memory_order_acquire); }

JoinResult join(Fiber* target, Nanos deadline, void** result) {
  Fiber* self = current();
  {
    SpinlockGuard hold(target->lifecycle_lock);
    // As glibc: a try-join of a running thread is EBUSY before any other check (even of itself).
    if (deadline == kTryJoin && !target->exited.load(std::memory_order_relaxed)) return JoinResult::kBusy;
    if (target == self) return JoinResult::kDeadlock;
    if (target->detached) return JoinResult::kDetached;
    if (target->joiner && target->joiner != self) return JoinResult::kAlreadyJoined;
    if (self && self->joiner == target) return JoinResult::kDeadlock;  // it is joining us
    target->joiner = self;
  }
  while (!target->exited.load(std::memory_order_acquire)) {
    auto r = parking_lot::park(&target->exited, has_not_exited, target, WaitReason::kJoin, deadline);
    if (r == parking_lot::ParkResult::kTimedOut || r == parking_lot::ParkResult::kInterrupted) {
      SpinlockGuard hold(target->lifecycle_lock);
      if (!target->exited.load(std::memory_order_relaxed)) {
        target->joiner = nullptr;
        return r == parking_lot::ParkResult::kTimedOut ? JoinResult::kTimedOut : JoinResult::kInterrupted;
      }
    }
  }
  // Wait for finish_exit() to leave its critical section (it published `exited` inside it); after
  // that it only uses &target->exited as a parking-lot address, so reaping now is safe.
  { SpinlockGuard hold(target->lifecycle_lock); }
  if (result) *result = target->result;
  reap(target);
  return JoinResult::kJoined;
}

bool detach(Fiber* target) {
  bool reap_now;
  {
    SpinlockGuard hold(target->lifecycle_lock);
    if (target->detached) return false;
    if (target->joiner) return true;
    reap_now = target->exited.load(std::memory_order_relaxed);
    target->detached = true;
  }
  if (reap_now) reap(target);
  return true;
}

// The fiber's queue is found through rq_owner, which only changes under the lock of the queue it
// names (or of none); so once the named carrier's lock is held and rq_owner still names it, the
// fiber is on that queue and can be moved. A fiber in transit between queues (a thief's loot) is
// on no carrier's queue: its new level is taken when the thief queues it, or at its next enqueue
// if the thief read the level just before our store.
void set_priority(Fiber* fiber, int level) {
  fiber->next_priority.store(static_cast<uint8_t>(level), std::memory_order_seq_cst);
  for (;;) {
    RunQueue* queue = fiber->rq_owner.load(std::memory_order_acquire);
    Carrier* c = nullptr;
    for (int i = 0; queue && i < g_ncarriers; ++i) {
      if (&g_carriers[i].queue == queue) c = &g_carriers[i];
    }
    if (!c) return;
    SpinlockGuard hold(c->queue_lock);
    if (fiber->rq_owner.load(std::memory_order_relaxed) != queue) continue;
    if (fiber->priority != level) {
      queue->remove(fiber);
      queue->push_back(fiber);
    }
    return;
  }
}

int fake_tid(const Fiber* fiber) { return tls::kFakeTidBase + static_cast<int>(fiber - FiberTable::base()); }

Fiber* fiber_of_fake_tid(int tid) {
  if (tid < tls::kFakeTidBase) return nullptr;
  return FiberTable::lookup(reinterpret_cast<uintptr_t>(FiberTable::base() + (tid - tls::kFakeTidBase)));
}

void set_name(Fiber* fiber, const char* name) {
  strncpy(fiber->name, name, sizeof fiber->name - 1);
  fiber->name[sizeof fiber->name - 1] = '\0';
}

}  // namespace vthread::sched
