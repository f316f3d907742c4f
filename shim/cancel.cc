// pthread_cancel, pthread_setcancelstate, pthread_setcanceltype, pthread_testcancel, and the
// helpers the interposed cancellation points use. See cancel.h for the protocol.
//
// The cancellation points among the interposed calls are glibc's: the join family (not
// pthread_tryjoin_np), the sleep family, the condition waits, the semaphore waits, the sigwait
// family, sigsuspend, pause, pthread_testcancel, and the blocking system calls of blocking.cc that
// glibc makes ones. syscall(SYS_futex, ...) is not one: glibc's syscall() is a plain wrapper.
// Threads that are not fibers keep glibc's own cancellation (their calls go to glibc).
#include "shim/cancel.h"

#include <errno.h>
#include <pthread.h>

#include "sched/handoff.h"
#include "sched/libc.h"
#include "sched/preempt.h"
#include "sched/spinlock.h"
#include "shim/entry.h"

namespace vthread::shim {
namespace {

ThreadState* cancel_state_of(sched::Fiber* fiber) {
  return fiber ? static_cast<ThreadState*>(fiber->user_data) : nullptr;
}

// The published park (ThreadState::cancel_park): its sequence number, whether pthread_cancel and
// signals end it, and a low bit so that 0 means "none".
constexpr uint64_t kMarkSet = 1;
constexpr uint64_t kMarkBySignals = 2;
constexpr uint64_t kMarkByCancel = 4;
constexpr uint64_t park_mark(uint32_t seq, bool by_cancel, bool by_signals) {
  return (uint64_t{seq} << 3) | (by_cancel ? kMarkByCancel : 0) | (by_signals ? kMarkBySignals : 0) | kMarkSet;
}
constexpr uint32_t seq_of_mark(uint64_t mark) { return static_cast<uint32_t>(mark >> 3); }

// The interrupter's half of the protocol in cancel.h, once the request (a pending cancel or
// signal) is published: if `target` is at a wait whose mark has all of `required` bits, end the
// park it makes there. Runs with target->lifecycle_lock held, so `state` cannot be freed
// meanwhile. Returns false if the target is between publishing the park and parking (running on
// another carrier: a few instructions); the caller drops the lock and tries again, because the
// target may need another fiber's lifecycle lock on its way (join), which another pthread_cancel
// may hold.
bool interrupt_published_park(sched::Fiber* target, ThreadState* state, uint64_t required) {
  for (;;) {
    uint64_t mark = state->cancel_park.load(std::memory_order_seq_cst);
    // Not at such a wait: it looks at the request before its next one.
    if ((mark & required) != required) return true;
    uint32_t seq = seq_of_mark(mark);
    uint64_t word = target->sched_word.load(std::memory_order_seq_cst);
    // That park is over (it checks `pending` again before its next one) or already being woken.
    if (sched::seq_of(word) != seq) return true;
    sched::FiberState now = sched::state_of(word);
    if (now == sched::FiberState::kParked) {
      // Parked at `seq`: make sure that park is the marked one. A park that began after the mark
      // was cleared would show here as a cleared (or different) mark.
      if (state->cancel_park.load(std::memory_order_seq_cst) != mark) continue;
      if (sched::interrupt(sched::ParkTicket{target, seq})) return true;
      continue;  // woken meanwhile, or the mark moved: look again
    }
    if (now != sched::FiberState::kRunning) return true;  // runnable: it will look at the request
    return false;
  }
}

// Runs interrupt_published_park until it is done, dropping the target's lock between tries.
// `still_wanted` (under the lock) stops early: the request was withdrawn or the thread exited.
template <typename StillWanted>
void interrupt_until_done(sched::Fiber* target, uint64_t required, StillWanted still_wanted) {
  for (;;) {
    {
      sched::SpinlockGuard hold(target->lifecycle_lock);
      auto* state = static_cast<ThreadState*>(target->user_data);
      if (!state || !still_wanted(state)) return;
      if (interrupt_published_park(target, state, required)) return;
    }
    sched::cpu_relax();
  }
}

}  // namespace

void act_on_cancel(ThreadState* state) {
  state->cancel_park.store(0, std::memory_order_relaxed);
  state->cancel.fetch_or(kCancelExiting, std::memory_order_acq_rel);
  pthread_exit(PTHREAD_CANCELED);
}

void act_on_cancel(sched::Fiber* self) { act_on_cancel(cancel_state_of(self)); }

void cancellation_point(sched::Fiber* self) {
  ThreadState* state = cancel_state_of(self);
  if (state && cancel_due(state->cancel.load(std::memory_order_acquire))) act_on_cancel(state);
}

void enter_cancellable_syscall(sched::Fiber* self) {
  ThreadState* state = cancel_state_of(self);
  if (!state) return;
  uint32_t before = state->cancel.fetch_or(kCancelInSyscall, std::memory_order_seq_cst);
  if (cancel_due(before)) {
    state->cancel.fetch_and(~kCancelInSyscall, std::memory_order_relaxed);
    act_on_cancel(state);
  }
}

void leave_cancellable_syscall(sched::Fiber* self) {
  if (ThreadState* state = cancel_state_of(self)) state->cancel.fetch_and(~kCancelInSyscall, std::memory_order_seq_cst);
}

void act_on_cancel_at_tick(sched::Fiber* self, bool at_safe_point) {
  ThreadState* state = cancel_state_of(self);
  if (!state) return;
  uint32_t bits = state->cancel.load(std::memory_order_acquire);
  if (at_safe_point) {
    if (async_cancel_due(bits)) act_on_cancel(state);
    return;
  }
  if (!(bits & kCancelInSyscall) || !cancel_due(bits)) return;
  // Leaving the blocking call by unwinding: what its wrapper would undo on return, undone here.
  state->cancel.fetch_and(~kCancelInSyscall, std::memory_order_relaxed);
  sched::exit_blocking();
  self->in_call = nullptr;
  act_on_cancel(state);
}

bool arm_cancel(sched::Fiber* self, bool by_signals) {
  ThreadState* state = cancel_state_of(self);
  if (!state) return false;
  // Only this thread changes `disabled` and `exiting`; a park with cancellation disabled needs a
  // mark only for signals.
  bool cancellable = !(state->cancel.load(std::memory_order_relaxed) & (kCancelDisabled | kCancelExiting));
  if (!cancellable && !by_signals) return false;
  state->cancel_park.store(park_mark(sched::park_ticket().seq, cancellable, by_signals), std::memory_order_seq_cst);
  if (cancellable && (state->cancel.load(std::memory_order_seq_cst) & kCancelPending)) {
    state->cancel_park.store(0, std::memory_order_relaxed);
    return true;
  }
  return false;
}

void arm_signals(sched::Fiber* self) {
  if (ThreadState* state = cancel_state_of(self)) {
    state->cancel_park.store(park_mark(sched::park_ticket().seq, false, true), std::memory_order_seq_cst);
  }
}

bool signals_end_wait(const sched::Fiber* fiber) {
  uint64_t word = fiber->sched_word.load(std::memory_order_seq_cst);
  if (sched::state_of(word) != sched::FiberState::kParked) return true;
  auto* state = static_cast<ThreadState*>(fiber->user_data);
  uint64_t mark = state ? state->cancel_park.load(std::memory_order_seq_cst) : 0;
  return (mark & kMarkBySignals) && seq_of_mark(mark) == sched::seq_of(word);
}

void interrupt_park_for_signal(sched::Fiber* target) {
  // Published before this by post_signal; a thread that arms after it sees the signal then.
  interrupt_until_done(target, kMarkSet | kMarkBySignals, [](ThreadState*) { return true; });
}

void disarm_cancel(sched::Fiber* self) {
  if (ThreadState* state = cancel_state_of(self)) state->cancel_park.store(0, std::memory_order_seq_cst);
}

}  // namespace vthread::shim

namespace sched = vthread::sched;
namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_cancel(pthread_t thread) {
  ShimEntry entry("pthread_cancel");
  // The main thread cancelling itself before any thread exists: become the main fiber first, as
  // pthread_exit does, so that every later cancellation point sees the request.
  if (!sched::started() && pthread_equal(thread, libc::pthread_self()) && !shim::ensure_runtime()) {
    return libc::pthread_cancel(thread);
  }
  sched::Fiber* self = sched::current();
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) return ESRCH;
  shim::ThreadState* state;
  uint32_t before;
  {
    sched::SpinlockGuard hold(target->lifecycle_lock);
    state = static_cast<shim::ThreadState*>(target->user_data);
    // Exited, or past its exit sequence's point of no return: as glibc, the outcome is settled.
    if (!state) return 0;
    before = state->cancel.fetch_or(shim::kCancelPending, std::memory_order_seq_cst);
  }
  if (target != self && !(before & (shim::kCancelDisabled | shim::kCancelExiting))) {
    // Stop if it has exited meanwhile (its state is gone, or is a new thread's).
    shim::interrupt_until_done(target, shim::kMarkSet | shim::kMarkByCancel, [state](shim::ThreadState* now) {
      return now == state && (now->cancel.load() & shim::kCancelPending);
    });
  }
  // glibc acts at once on itself when the type is asynchronous; another thread is ticked, and acts
  // at its next preemption safe point (or shim entry), as glibc's SIGCANCEL would make it. A thread
  // blocked in a cancellation point's system call is ticked too, and acts from within the call.
  uint32_t after = before | shim::kCancelPending;
  if (shim::async_cancel_due(after)) {
    if (target == self) shim::act_on_cancel(state);
    sched::preempt::interrupt_running(target);
  } else if ((before & shim::kCancelInSyscall) && shim::cancel_due(after)) {
    sched::preempt::interrupt_running(target);
  }
  return 0;
}

int pthread_setcancelstate(int new_state, int* old_state) {
  ShimEntry entry("pthread_setcancelstate");
  if (new_state != PTHREAD_CANCEL_ENABLE && new_state != PTHREAD_CANCEL_DISABLE) return EINVAL;
  if (!entry.fiber() && sched::started()) return libc::pthread_setcancelstate(new_state, old_state);
  shim::ThreadState* state = shim::thread_state();  // before the runtime starts: the main thread's
  if (!state) return libc::pthread_setcancelstate(new_state, old_state);
  uint32_t before = new_state == PTHREAD_CANCEL_DISABLE
                        ? state->cancel.fetch_or(shim::kCancelDisabled, std::memory_order_acq_rel)
                        : state->cancel.fetch_and(~shim::kCancelDisabled, std::memory_order_acq_rel);
  if (old_state) *old_state = (before & shim::kCancelDisabled) ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
  // As glibc: enabling with an asynchronous cancel pending acts now; a deferred one waits for the
  // next cancellation point.
  uint32_t after = new_state == PTHREAD_CANCEL_DISABLE ? before | shim::kCancelDisabled
                                                       : before & ~shim::kCancelDisabled;
  if (shim::async_cancel_due(after)) shim::act_on_cancel(state);
  return 0;
}

int pthread_setcanceltype(int new_type, int* old_type) {
  ShimEntry entry("pthread_setcanceltype");
  if (new_type != PTHREAD_CANCEL_DEFERRED && new_type != PTHREAD_CANCEL_ASYNCHRONOUS) return EINVAL;
  if (!entry.fiber() && sched::started()) return libc::pthread_setcanceltype(new_type, old_type);
  shim::ThreadState* state = shim::thread_state();
  if (!state) return libc::pthread_setcanceltype(new_type, old_type);
  // Asynchronous cancellation is recorded; without preemption it takes effect at the next entry
  // into the shim (see cancel.h).
  uint32_t before = new_type == PTHREAD_CANCEL_ASYNCHRONOUS
                        ? state->cancel.fetch_or(shim::kCancelAsync, std::memory_order_acq_rel)
                        : state->cancel.fetch_and(~shim::kCancelAsync, std::memory_order_acq_rel);
  if (old_type) *old_type = (before & shim::kCancelAsync) ? PTHREAD_CANCEL_ASYNCHRONOUS : PTHREAD_CANCEL_DEFERRED;
  uint32_t after = new_type == PTHREAD_CANCEL_ASYNCHRONOUS ? before | shim::kCancelAsync
                                                           : before & ~shim::kCancelAsync;
  if (shim::async_cancel_due(after)) shim::act_on_cancel(state);
  return 0;
}

void pthread_testcancel(void) {
  ShimEntry entry("pthread_testcancel");
  if (!entry.fiber() && sched::started()) return libc::pthread_testcancel();
  shim::cancellation_point(entry.fiber());
}

}  // extern "C"
