// Hand-off of blocked carriers: while a carrier's kernel thread is stuck in the kernel (a blocking
// system call, or a glibc-internal lock held by a preempted fiber), a spare kernel thread runs the
// fibers that would otherwise wait for it. See handoff.cc.
#ifndef VTHREAD_SCHED_HANDOFF_H_
#define VTHREAD_SCHED_HANDOFF_H_

#include "sched/clock.h"

namespace vthread::sched {

struct Carrier;

// Brackets a system call that may block, made by the running fiber (fiber context; the shim's
// blocking wrappers). A store and a clock read each, no system call: what Go's entersyscall and
// exitsyscall do.
void enter_blocking();
void exit_blocking();
// Around a signal handler that runs in the middle of such a call (a signal interrupted it): the
// handler is ordinary code that may park or move, so its carrier is not marked as blocked meanwhile
// (it would get no ticks, lose its queue to the hand-off, and take signals in runtime code); the
// mark goes back on whatever carrier the fiber is on when the handler returns and the call goes on.
// Returns the mark (0: none), for resume.
Nanos suspend_blocking();
void resume_blocking(Nanos since);

namespace handoff {

// On the thread that started the runtime, before the monitor: remembers its signal mask, which
// spare carriers get (the monitor, which starts them, blocks every signal).
void start();

// The monitor, every period: notices carriers blocked in the kernel for longer than the hand-off
// threshold while fibers wait, moves their queues to the shared queue, and starts or wakes spare
// carriers for them; lets spares retire when fewer carriers are blocked. `now` is monotonic.
void retake(Nanos now);

// True if `c` is a spare that should go dormant now (more spares run than carriers are blocked).
// The carrier calls it at its scheduling points.
bool should_retire(Carrier* c);

// The spare `c` gives its fibers to the shared queue and sleeps until the monitor needs it again.
// Carrier context.
void go_dormant(Carrier* c);

// Spares asleep (not in the idle list, and not to be counted as running).
int dormant_spares();

// In a fork child: no spare survived, and the carriers were reset.
void after_fork_in_child();

}  // namespace handoff
}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_HANDOFF_H_
