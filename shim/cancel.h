// Thread cancellation (cancel.cc): the per-thread state and what cancellation points call.
//
// State. ThreadState::cancel holds the facts glibc keeps in struct pthread's cancelhandling:
// disabled (PTHREAD_CANCEL_DISABLE), asynchronous (PTHREAD_CANCEL_ASYNCHRONOUS), pending (someone
// called pthread_cancel) and exiting (the thread is in pthread_exit, or already acting on a
// cancel: it never acts again, so cancellation points in cleanup handlers do not re-cancel).
// Only the thread itself changes disabled/asynchronous; pthread_cancel sets pending from anywhere.
//
// Acting on a cancellation is pthread_exit(PTHREAD_CANCELED): the same forced unwind, so C cleanup
// buffers, -fexceptions cleanups and C++ destructors run exactly as for pthread_exit, and C++ sees
// abi::__forced_unwind.
//
// Waking a parked thread. A cancellation point publishes the park it is about to make
// (ThreadState::cancel_park = its park sequence number) before it looks at `pending` one last time;
// pthread_cancel sets `pending` before it looks at cancel_park. Both are sequentially consistent,
// so either the thread sees the request and acts, or pthread_cancel sees the park and ends it with
// sched::interrupt() (if the thread has not switched out yet, pthread_cancel waits the few
// instructions until it has: nothing between publishing and parking can switch). The ticket's
// sequence number pins that one park, so a later, non-cancellable park (the mutex a condition wait
// re-takes) is never interrupted.
//
// Signals use the same publication: a wait that a signal handler ends (the sleep family, the
// semaphore waits, pause, sigsuspend, joins and condition waits, and mutex locks, which are no
// cancellation points and arm for signals only) adds a bit to the published mark, and pthread_kill
// or the router of process-directed signals ends such a park (interrupt_park_for_signal) when the
// thread does not block the signal and its disposition is not to ignore it; pthread_cancel ends
// only parks marked as cancellable. After kInterrupted, a due cancel wins; otherwise it was a
// signal, whose handler ran as the fiber resumed: the wait fails with EINTR or waits again.
//
// Asynchronous cancellation is accepted and recorded, and acted on at once where glibc acts at once
// (pthread_setcanceltype/pthread_setcancelstate making a pending cancel due, pthread_cancel of the
// calling thread), at any cancellation point, and at the entry of every interposed call
// (ShimEntry), and at a preemption safe point: pthread_cancel ticks the target's carrier if the
// target is running, and the tick handler acts there (sched/preempt.h's tick hook), unwinding
// through the signal frame as glibc's SIGCANCEL handler does. A tick that lands at an unsafe point
// (in libc) leaves the cancel to the thread's next shim entry or safe-point tick.
//
// Blocking system calls. The blocking calls that are cancellation points (read, poll, accept, ...;
// shim/blocking.cc) hold their carrier in the kernel. Around the call they set kCancelInSyscall,
// glibc's asynchronous window (__pthread_enable_asynccancel): pthread_cancel, finding it set, ticks
// the carrier, whose signal interrupts the call, and the tick hook acts on the cancel from there,
// even in libc. Both sides use one atomic word, so either the thread sees the cancel before the
// call or pthread_cancel sees the window. As in glibc 2.36 (2.40 closed this with
// __syscall_cancel), a cancel that lands just as the call completes still acts, and its result
// is lost.
#ifndef VTHREAD_SHIM_CANCEL_H_
#define VTHREAD_SHIM_CANCEL_H_

#include <stdint.h>

#include "sched/sched.h"
#include "shim/thread_state.h"

namespace vthread::shim {

constexpr uint32_t kCancelDisabled = 1;  // PTHREAD_CANCEL_DISABLE
constexpr uint32_t kCancelAsync = 2;     // PTHREAD_CANCEL_ASYNCHRONOUS
constexpr uint32_t kCancelPending = 4;   // pthread_cancel was called
constexpr uint32_t kCancelExiting = 8;   // exiting: never act (again)
constexpr uint32_t kCancelInSyscall = 16;  // in a cancellation point's blocking system call

// A pending cancel that a cancellation point acts on.
inline bool cancel_due(uint32_t bits) {
  return (bits & (kCancelDisabled | kCancelPending | kCancelExiting)) == kCancelPending;
}
// A pending cancel that must be acted on at once (asynchronous type).
inline bool async_cancel_due(uint32_t bits) {
  return (bits & (kCancelDisabled | kCancelAsync | kCancelPending | kCancelExiting)) ==
         (kCancelAsync | kCancelPending);
}

// Acts on the cancel: pthread_exit(PTHREAD_CANCELED) for the calling thread, whose state is `state`.
[[noreturn]] void act_on_cancel(ThreadState* state);

// A cancellation point without a wait (pthread_testcancel, and the start of the ones that check
// before waiting): acts if a cancel is due. `self` is the calling fiber (nullptr: not a fiber,
// whose cancellation points are glibc's own).
void cancellation_point(sched::Fiber* self);

// Brackets each park of a cancellation point. arm_cancel() returns true if a cancel is due (the
// caller undoes what it must, then calls act_on_cancel(self)); otherwise the fiber's next park may
// be ended by pthread_cancel with WakeReason::kInterrupted (the caller then undoes what it must and
// acts). disarm_cancel() must follow the park before anything else may park.
bool arm_cancel(sched::Fiber* self, bool by_signals = false);
// Brackets a park that signal handlers end but pthread_cancel does not (not a cancellation point).
void arm_signals(sched::Fiber* self);
void disarm_cancel(sched::Fiber* self);

// pthread_kill's half: ends the park of `target` if it is at a wait armed with `by_signals`.
// Call after sched::post_signal, with a signal for which interrupts_waits() holds.
void interrupt_park_for_signal(sched::Fiber* target);
// False if `fiber` is parked at a wait that signals do not end (one the runtime makes for itself,
// not for the program): a handler would wait for that wait to end.
// Any thread, async-signal-safe.
bool signals_end_wait(const sched::Fiber* fiber);

// Whether `sig`, not blocked, ends a wait as natively: its handler runs (the wait then fails with
// EINTR), or its default action ends the process. Not for ignored signals, nor for stop signals
// (after which the kernel resumes the wait). Defined in signal.cc.
bool interrupts_waits(int sig);
// Whether a signal sent to `self` that it does not block and that interrupts waits is pending: a
// wait armed with `by_signals` checks this after arming and fails with EINTR if so.
bool interrupting_signal_pending(sched::Fiber* self);
[[noreturn]] void act_on_cancel(sched::Fiber* self);

// Bracket a cancellation point's blocking system call (see "Blocking system calls"). The first
// acts on a cancel already due, as glibc's cancellation points do on entry.
void enter_cancellable_syscall(sched::Fiber* self);
void leave_cancellable_syscall(sched::Fiber* self);

// The tick hook (sched/preempt.h): acts on a cancel that is due for `self` right where the tick
// found it, if that is safe.
void act_on_cancel_at_tick(sched::Fiber* self, bool at_safe_point);

// For ShimEntry: acts if an asynchronous cancel is due for `self`.
inline void async_cancellation_point(sched::Fiber* self) {
  auto* state = static_cast<ThreadState*>(self->user_data);
  if (__builtin_expect(state && async_cancel_due(state->cancel.load(std::memory_order_acquire)), 0)) {
    act_on_cancel(state);
  }
}

// One park of a wait that signal handlers end, and pthread_cancel too if `cancellable` (the sleeps,
// the semaphore waits, joins; mutex locks are not): arms (acting on a due cancel), then either
// raises a pending signal at once or makes the park, `park()` returning true if it was interrupted.
// Returns true if the wait was ended by a cancel or a handler: the caller tells which (a due
// cancel wins) and undoes what it must.
template <typename Park>
bool park_interruptibly(sched::Fiber* self, Park park, bool cancellable = true) {
  if (!cancellable) {
    arm_signals(self);
  } else if (arm_cancel(self, /*by_signals=*/true)) {
    act_on_cancel(self);
  }
  bool interrupted = interrupting_signal_pending(self);
  if (interrupted) {
    sched::deliver_pending_signals(self);
  } else {
    interrupted = park();
  }
  disarm_cancel(self);
  return interrupted;
}

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_CANCEL_H_
