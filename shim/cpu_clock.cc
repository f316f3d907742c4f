// CPU-time clocks of fibers: clock_gettime and clock_getres on CLOCK_THREAD_CPUTIME_ID and on the
// clocks pthread_getcpuclockid makes, which read sched::cpu_time() instead of the carrier's. The
// runtime measures fibers' CPU time only from the first such request on (sched/cpu_time.h), so
// a fiber's clock leaves out what it ran before that.
//
// clock_gettime is hot (every std::chrono::steady_clock::now()), so every other clock goes
// straight to the real one after two compares, without entering the shim: that path must also
// work before the runtime starts, on threads that are not fibers, and in signal handlers.
//
// glibc makes a thread's CPU clock from its kernel tid t as ((~t) << 3) | 6 (per-thread, "sched"
// CPU clock), and the kernel decodes it the same way. Real tids are at most 2^22 (PID_MAX_LIMIT);
// a fiber's clock has the same form with t = 2^27 | (5 bits of its id) << 22 | its table index,
// so it can never be taken for a kernel thread's (the kernel answers EINVAL for it), and a clock
// kept after its fiber was reaped is refused unless the slot's new fiber happens to share those
// 5 bits of id (one chance in 32; a kernel tid reused has the same problem, rarer).
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

constexpr uint32_t kClockTidBase = 1u << 27;
constexpr int kIndexBits = 22;
constexpr uint32_t kIndexMask = (1u << kIndexBits) - 1;
constexpr uint32_t kGenerationMask = 31;
constexpr uint32_t kPerThreadSchedClock = 6;

uint32_t clock_tid(clockid_t clock) { return ~(static_cast<uint32_t>(clock) >> 3) & ((1u << 29) - 1); }

clockid_t clock_of(sched::Fiber* fiber) {
  auto index = static_cast<uint32_t>(fiber - sched::FiberTable::base());
  uint32_t tid = kClockTidBase | static_cast<uint32_t>(fiber->id & kGenerationMask) << kIndexBits | index;
  return static_cast<clockid_t>((~tid << 3) | kPerThreadSchedClock);
}

// The fiber whose CPU time `clock` reads for the caller, or nullptr if it is not a fiber's clock
// (then the real function answers). *bad is set for a fiber clock that no longer names a fiber.
sched::Fiber* reader_target(clockid_t clock, bool* bad) {
  *bad = false;
  if (clock == CLOCK_THREAD_CPUTIME_ID) return sched::current();
  if (!is_fiber_cpu_clock(clock)) return nullptr;
  sched::Fiber* fiber = fiber_of_cpu_clock(clock);
  *bad = !fiber;
  return fiber;
}

}  // namespace

bool is_fiber_cpu_clock(clockid_t clock) {
  if (clock >= 0 || (static_cast<uint32_t>(clock) & 7) != kPerThreadSchedClock) return false;
  uint32_t tid = clock_tid(clock);
  return tid >= kClockTidBase && tid < 2 * kClockTidBase;
}

sched::Fiber* fiber_of_cpu_clock(clockid_t clock) {
  if (!sched::started()) return nullptr;
  uint32_t tid = clock_tid(clock);
  uint32_t index = tid & kIndexMask;
  if (index >= sched::FiberTable::high_water()) return nullptr;
  sched::Fiber* fiber = sched::FiberTable::lookup(reinterpret_cast<uintptr_t>(sched::FiberTable::base() + index));
  if (!fiber || fiber->exited.load(std::memory_order_acquire) ||
      (fiber->id & kGenerationMask) != ((tid >> kIndexBits) & kGenerationMask)) {
    return nullptr;
  }
  return fiber;
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

static int __attribute__((noinline)) cpu_clock_gettime(clockid_t clock, struct timespec* ts) {
  bool bad;
  sched::Fiber* target = shim::reader_target(clock, &bad);
  if (bad) {
    errno = EINVAL;
    return -1;
  }
  if (!target) return libc::clock_gettime(clock, ts);
  ShimEntry entry("clock_gettime");
  *ts = sched::nanos_to_timespec(sched::cpu_time(target));
  return 0;
}

extern "C" {

int clock_gettime(clockid_t clock, struct timespec* ts) {
  if (__builtin_expect(clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID, 1)) return libc::clock_gettime(clock, ts);
  return cpu_clock_gettime(clock, ts);
}

int clock_getres(clockid_t clock, struct timespec* res) {
  if (__builtin_expect(clock >= 0 && clock != CLOCK_THREAD_CPUTIME_ID, 1)) return libc::clock_getres(clock, res);
  bool bad;
  sched::Fiber* target = shim::reader_target(clock, &bad);
  if (bad) {
    errno = EINVAL;
    return -1;
  }
  if (!target) return libc::clock_getres(clock, res);
  // What the kernel reports for its per-thread "sched" CPU clocks.
  if (res) *res = timespec{0, 1};
  return 0;
}

int pthread_getcpuclockid(pthread_t thread, clockid_t* clock) {
  ShimEntry entry("pthread_getcpuclockid");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_getcpuclockid(thread, clock);
  // Whoever asks for a CPU clock means to read it: count from now on.
  sched::measure_cpu_time();
  // glibc: ESRCH once the kernel has cleared the thread's tid, i.e. once it has exited.
  return shim::with_live_state(fiber, [&](shim::ThreadState*) {
    *clock = shim::clock_of(fiber);
    return 0;
  });
}

}  // extern "C"
