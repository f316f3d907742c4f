// The sleep family and yields. A fiber sleeps by parking until a deadline; only threads that are not
// fibers (or any thread before the runtime starts) reach the real calls, which keeps a
// single-threaded program exactly as it was.
//
// A signal sent to the sleeping fiber (pthread_kill) that runs a handler ends the sleep after the
// handler ran: EINTR and the time left, as natively (signal.cc, cancel.h). All four sleeps are
// cancellation points, as in glibc: they act on a pending cancel on entry, even for a zero delay,
// and pthread_cancel ends the sleep.
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "sched/libc.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/time_convert.h"

namespace sched = vthread::sched;
namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

namespace {

// Clocks a fiber can sleep on by parking: those whose time passes at the rate of CLOCK_MONOTONIC.
// Fibers' CPU-time clocks are polled (sleep_on_cpu_clock); the process's and kernel threads' CPU
// clocks (and the _ALARM clocks, which need privileges the kernel checks) go to the kernel.
bool sleeps_on_monotonic(clockid_t clock) {
  return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC || clock == CLOCK_BOOTTIME || clock == CLOCK_TAI;
}

// sched::sleep_until, as a cancellation point that signals interrupt: each park may be ended by
// pthread_cancel (acted on here) or by a signal whose handler ran as the fiber resumed. Returns 0,
// or EINTR with *left set to the time that was left.
int sleep_until(sched::Fiber* self, sched::Nanos deadline, sched::Nanos* left = nullptr) {
  for (sched::Nanos now; (now = sched::monotonic_now()) < deadline;) {
    bool interrupted = shim::park_interruptibly(self, [deadline] {
      return sched::park(sched::WaitReason::kSleep, deadline, nullptr, nullptr) == sched::WakeReason::kInterrupted;
    });
    if (interrupted) {
      shim::cancellation_point(self);  // a cancel wins over the signal
      if (left) *left = deadline - std::min(deadline, sched::monotonic_now());
      return EINTR;
    }
  }
  return 0;
}

int sleep_for(sched::Fiber* self, sched::Nanos delay, sched::Nanos* left = nullptr) {
  return sleep_until(self, sched::deadline_after(sched::monotonic_now(), delay), left);
}

void store_left(sched::Nanos left, struct timespec* remaining) {
  if (remaining) *remaining = sched::nanos_to_timespec(left);
}

// Sleeps until another fiber's CPU clock reads `goal`. A fiber's CPU time grows no faster than
// the wall clock, so sleeping for the difference never overshoots; at least kCpuClockPoll at a
// time, so that a target that rarely runs is not polled ever faster. Ends with EINVAL if the
// target exits first, as reading its clock then would.
constexpr sched::Nanos kCpuClockPoll = 1000 * 1000;

int sleep_on_cpu_clock(sched::Fiber* self, clockid_t clock, sched::Nanos goal) {
  for (;;) {
    sched::Fiber* target = shim::fiber_of_cpu_clock(clock);
    if (!target) return EINVAL;
    sched::Nanos left = goal - sched::cpu_time(target);
    if (left <= 0) return 0;
    if (left < kCpuClockPoll) left = kCpuClockPoll;
    if (self) {
      if (int err = sleep_for(self, left)) return err;  // a handler ran: EINTR
    } else {
      struct timespec pause = sched::nanos_to_timespec(left);
      libc::nanosleep(&pause, nullptr);
    }
  }
}

}  // namespace

extern "C" {

int clock_nanosleep(clockid_t clock, int flags, const struct timespec* request, struct timespec* remaining) {
  ShimEntry entry("clock_nanosleep");
  if (clock == CLOCK_THREAD_CPUTIME_ID) return EINVAL;  // glibc refuses it before the kernel sees it
  if (shim::is_fiber_cpu_clock(clock)) {
    // The kernel refuses a sleep on the caller's own CPU clock, and one on a thread that is gone.
    sched::Fiber* target = shim::fiber_of_cpu_clock(clock);
    if (!target || target == entry.fiber()) return EINVAL;
    shim::cancellation_point(entry.fiber());
    if (!shim::valid_timespec(*request) || request->tv_sec < 0) return EINVAL;
    sched::Nanos goal = sched::timespec_to_nanos(*request);
    if (!(flags & TIMER_ABSTIME)) goal = sched::deadline_after(sched::cpu_time(target), goal);
    return sleep_on_cpu_clock(entry.fiber(), clock, goal);
  }
  shim::cancellation_point(entry.fiber());
  if (!entry.fiber() || !sleeps_on_monotonic(clock)) return libc::clock_nanosleep(clock, flags, request, remaining);
  if (!shim::valid_timespec(*request) || request->tv_sec < 0) return EINVAL;
  if (flags & TIMER_ABSTIME) return sleep_until(entry.fiber(), shim::monotonic_deadline(clock, *request));
  sched::Nanos left;
  if (sleep_for(entry.fiber(), sched::timespec_to_nanos(*request), &left) == 0) return 0;
  store_left(left, remaining);
  return EINTR;
}

int nanosleep(const struct timespec* request, struct timespec* remaining) {
  ShimEntry entry("nanosleep");
  shim::cancellation_point(entry.fiber());
  if (!entry.fiber()) return libc::nanosleep(request, remaining);
  if (!shim::valid_timespec(*request) || request->tv_sec < 0) {
    errno = EINVAL;
    return -1;
  }
  sched::Nanos left;
  if (sleep_for(entry.fiber(), sched::timespec_to_nanos(*request), &left) == 0) return 0;
  store_left(left, remaining);
  errno = EINTR;
  return -1;
}

unsigned int sleep(unsigned int seconds) {
  ShimEntry entry("sleep");
  shim::cancellation_point(entry.fiber());
  if (!entry.fiber()) {
    struct timespec request = {static_cast<time_t>(seconds), 0};
    struct timespec remaining = {0, 0};
    if (libc::nanosleep(&request, &remaining) == 0) return 0;
    return static_cast<unsigned>(remaining.tv_sec) + (remaining.tv_nsec > 0);
  }
  sched::Nanos left;
  if (sleep_for(entry.fiber(), sched::Nanos{seconds} * sched::kNanosPerSecond, &left) == 0) return 0;
  // As glibc: the seconds left, rounded up.
  return static_cast<unsigned>((left + sched::kNanosPerSecond - 1) / sched::kNanosPerSecond);
}

int usleep(useconds_t microseconds) {
  ShimEntry entry("usleep");
  shim::cancellation_point(entry.fiber());
  if (!entry.fiber()) {
    struct timespec request = {static_cast<time_t>(microseconds / 1000000), static_cast<long>(microseconds % 1000000) * 1000};
    return libc::nanosleep(&request, nullptr);
  }
  if (sleep_for(entry.fiber(), sched::Nanos{microseconds} * 1000) == 0) return 0;
  errno = EINTR;
  return -1;
}

}  // extern "C"

static int yield_from(const ShimEntry& entry) {
  if (!entry.fiber()) return libc::sched_yield();
  sched::yield();
  return 0;
}

extern "C" {

int sched_yield(void) {
  ShimEntry entry("sched_yield");
  return yield_from(entry);
}

// <pthread.h> redirects pthread_yield to sched_yield for new code; old binaries still import the
// deprecated name, so it is defined under its own symbol.
int vthread_pthread_yield(void) __asm__("pthread_yield");
int vthread_pthread_yield(void) {
  ShimEntry entry("pthread_yield");
  return yield_from(entry);
}

}  // extern "C"
