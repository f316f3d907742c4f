// Timeouts as the program gives them (a timespec on some clock, relative or absolute) turned into
// the runtime's monotonic deadlines.
#ifndef VTHREAD_SHIM_TIME_CONVERT_H_
#define VTHREAD_SHIM_TIME_CONVERT_H_

#include <time.h>

#include "sched/clock.h"

namespace vthread::shim {

inline bool valid_timespec(const struct timespec& ts) {
  return ts.tv_nsec >= 0 && ts.tv_nsec < sched::kNanosPerSecond;
}

// The monotonic deadline at which `clock` will read `abstime`. A clock that is stepped later
// (settimeofday) does not move the deadline: the wait keeps its length as of the call.
//
// `clock` is read before the monotonic clock, never after: if the caller is descheduled between
// the two reads, the remaining time is then measured from an earlier point of `clock` and the
// deadline errs late, which POSIX allows; the other order would make it early, which it does not.
inline sched::Nanos monotonic_deadline(clockid_t clock, const struct timespec& abstime) {
  sched::Nanos target = sched::timespec_to_nanos(abstime);
  if (clock == CLOCK_MONOTONIC) return target;
  sched::Nanos clock_now = sched::clock_nanos(clock);
  sched::Nanos now = sched::monotonic_now();
  if (target <= clock_now) return now;
  return sched::deadline_after(now, target - clock_now);
}

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_TIME_CONVERT_H_
