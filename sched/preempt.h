// Asynchronous preemption: a fiber that runs past its quantum without entering the shim is
// switched out from inside a signal handler. See preempt.cc for the design.
//
// The runtime owns the decision and the switch; the shim owns the process's signal disposition
// (shim/sigaction.cc): its handler asks is_tick() and, if so, calls on_tick(); any other instance
// of the signal is the program's.
#ifndef VTHREAD_SCHED_PREEMPT_H_
#define VTHREAD_SCHED_PREEMPT_H_

#include <signal.h>
#include <stdint.h>

#include "sched/fiber.h"

namespace vthread::sched::preempt {

// The tick signal if start() will turn preemption on (VTHREAD_PREEMPT, VTHREAD_QUANTUM and the
// assembly switch backend; valid once the runtime started), else 0. The shim installs its handler
// for this signal before calling start().
int configured_signal();

// True if preemption is configured on (VTHREAD_PREEMPT, the switch backend) and start() ran.
bool enabled();
// The tick signal (VTHREAD_PREEMPT_SIGNAL, SIGALRM by default), or 0 while preemption is off.
int tick_signal();

// Called by the shim once the runtime started and its handler for configured_signal() (if any) is
// installed: builds the table of code that must not be preempted and starts the monitor, which also
// drives the hand-off of blocked carriers (handoff.h), so it runs even with preemption off.
void start();

// True if `info` is a tick the monitor sent: our private negative si_code, our pid and the
// process's random cookie in si_value. Async-signal-safe.
bool is_tick(const siginfo_t* info);

// The body of the tick handler (`uc` is its third argument). If the interrupted fiber is at a safe
// point and a fiber of at least its priority waits, switches to the next fiber and returns when the fiber is resumed, with
// the signal frame patched for the carrier it now runs on; at an unsafe point it marks the
// preemption pending (taken at the fiber's next shim entry or the next tick). Preserves errno.
// Async-signal-safe.
void on_tick(void* uc);

// Sends a tick to the carrier with kernel thread id `tid` (rt_tgsigqueueinfo).
void send_tick(int tid);

// What the shim does for a fiber the moment a tick finds it running, before any switch: at a safe
// point, act on an asynchronous cancel; anywhere, act on a cancel of a thread blocked in a
// cancellation point's system call (`at_safe_point` false). The hook may not return (it unwinds
// the fiber's stack through the signal frame, as glibc's SIGCANCEL handler does). Set once, before
// start().
void set_tick_hook(void (*hook)(Fiber* self, bool at_safe_point));
// Ticks the carrier running `target`, if it is running, so that it reaches a safe point (and the
// hook) within a tick even when no other fiber waits, or is interrupted in a system call. No-op
// with preemption off.
void interrupt_running(Fiber* target);

// Takes a pending preemption of `self` (shim entry): yields if a fiber of at least its priority
// is waiting on its carrier. Fiber context, no runtime lock held.
void take_pending(Fiber* self);

// The runtime calls this after making `f` runnable on `target` (a wake or a spawn): if `f`
// outranks what `target` runs, or that is a CPU-bound fiber of its priority, `target` is ticked at
// once rather than at the end of the quantum.
void on_runnable(struct Carrier* target, Fiber* f);

// Counters for Stats.
uint64_t ticks_sent();

// Marks that the program's handler for the tick signal is running on `self`, whose handler frame
// is at `frame` (ticks are then deferred). Returns the previous mark, for end_app_handler().
uintptr_t begin_app_handler(Fiber* self, void* frame);
void end_app_handler(Fiber* self, uintptr_t previous);

// Unblocks the tick signal on the calling kernel thread (a carrier starting: it inherited the mask
// of the thread that created it, which the program may have made block the signal).
void unblock_tick_signal();

// The monitor calls this every period: rebuilds the table of non-preemptible code if a tick found
// code it does not know (a library loaded since the last build).
void refresh_code_map_if_stale();

// In a fork child, after the scheduler was reset: the monitor thread did not survive the fork.
void after_fork_in_child();

}  // namespace vthread::sched::preempt

#endif  // VTHREAD_SCHED_PREEMPT_H_
