// The monitor: one kernel thread (not a carrier; it runs no fibers) that watches the carriers and
// sends preemption ticks (Go's sysmon). See monitor.cc.
#ifndef VTHREAD_SCHED_MONITOR_H_
#define VTHREAD_SCHED_MONITOR_H_

#include "sched/clock.h"

namespace vthread::sched::monitor {

// Starts the monitor thread, which ticks a carrier whose dispatch has used `quantum` of CPU while
// fibers wait for it, or at once when a waiting fiber outranks the running one (0: preemption is
// off, no ticks), and hands off blocked carriers.
void start(Nanos quantum);

// A carrier stopped idling or left a blocking call: wakes the monitor if it went to sleep because
// no carrier ran a fiber. A fence and a load when the monitor is awake.
void notify_busy();

// In a fork child: the monitor thread did not survive the fork; starts a new one.
void after_fork_in_child();

}  // namespace vthread::sched::monitor

#endif  // VTHREAD_SCHED_MONITOR_H_
