// Time inside the runtime: nanoseconds of CLOCK_MONOTONIC in a signed 64-bit integer (292 years).
// Every deadline the scheduler keeps is on this clock; other clocks are converted at the shim boundary.
#ifndef VTHREAD_SCHED_CLOCK_H_
#define VTHREAD_SCHED_CLOCK_H_

#include <stdint.h>
#include <time.h>

#include "sched/libc.h"

namespace vthread::sched {

using Nanos = int64_t;

constexpr Nanos kNoDeadline = INT64_MAX;
constexpr Nanos kNanosPerSecond = 1000000000;

inline Nanos timespec_to_nanos(const struct timespec& ts) {
  // Saturate instead of overflowing: a sleep of 10^12 seconds is "forever" for our purposes.
  if (ts.tv_sec >= INT64_MAX / kNanosPerSecond - 1) return kNoDeadline;
  return Nanos{ts.tv_sec} * kNanosPerSecond + ts.tv_nsec;
}

inline struct timespec nanos_to_timespec(Nanos ns) {
  struct timespec ts;
  ts.tv_sec = ns / kNanosPerSecond;
  ts.tv_nsec = ns % kNanosPerSecond;
  return ts;
}

inline Nanos clock_nanos(clockid_t clock) {
  struct timespec ts;
  libc::clock_gettime(clock, &ts);  // the vDSO's, not the shim's
  return timespec_to_nanos(ts);
}

inline Nanos monotonic_now() { return clock_nanos(CLOCK_MONOTONIC); }

// Adds without overflowing past kNoDeadline.
inline Nanos deadline_after(Nanos now, Nanos delay) {
  return delay >= kNoDeadline - now ? kNoDeadline : now + delay;
}

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_CLOCK_H_
