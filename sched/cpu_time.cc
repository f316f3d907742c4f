// The cycle counter's rate is measured, not looked up: the kernel knows it but does not export it
// (short of perf_event_open), and CPUID reports it only on some CPUs and hypervisors. The runtime
// notes the counter and CLOCK_MONOTONIC when it starts, and the first conversion divides the two
// spans, waiting until they are at least kCalibrationSpan long so that the error of reading the
// two clocks a few nanoseconds apart is below 1e-5. The rate is then fixed for the life of the
// process, so that a fiber's clock can never run backwards because the estimate moved.
#include "sched/cpu_time.h"

#include <time.h>

#include "sched/libc.h"
#include "sched/sched.h"
#include "sched/spinlock.h"

namespace vthread::sched {
namespace {

constexpr Nanos kCalibrationSpan = 10 * 1000 * 1000;

uint64_t g_anchor_ticks;
Nanos g_anchor_nanos;
// Nanoseconds per tick in 32.32 fixed point; 0 until measured.
std::atomic<uint64_t> g_nanos_per_tick{0};

uint64_t nanos_per_tick() {
  uint64_t rate = g_nanos_per_tick.load(std::memory_order_acquire);
  if (rate) return rate;
  Nanos now;
  while ((now = monotonic_now()) - g_anchor_nanos < kCalibrationSpan) cpu_relax();
  uint64_t ticks = arch::cycle_counter() - g_anchor_ticks;
  rate = static_cast<uint64_t>((static_cast<unsigned __int128>(now - g_anchor_nanos) << 32) / (ticks ? ticks : 1));
  if (!rate) rate = 1;
  uint64_t unset = 0;
  // Whoever measured first sets the rate for everyone.
  if (!g_nanos_per_tick.compare_exchange_strong(unset, rate, std::memory_order_acq_rel)) return unset;
  return rate;
}

}  // namespace

std::atomic<bool> cpu_account::g_measuring{false};

void cpu_account::start_main(Fiber* main) {
  struct timespec used;
  if (libc::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used) == 0) main->cpu_base = timespec_to_nanos(used);
  g_anchor_nanos = monotonic_now();
  g_anchor_ticks = arch::cycle_counter();
}

// Fibers running on other carriers at this moment start counting at their next dispatch. The
// caller starts its own run now, unless its carrier already did (another thread turned measuring on
// first): only its own carrier writes its word, and that is the one running this.
void measure_cpu_time() {
  if (cpu_account::g_measuring.load(std::memory_order_acquire)) return;
  Fiber* self = current();
  if (self && !(self->cpu_clock.load(std::memory_order_relaxed) & 1)) {
    cpu_account::start_run(self, arch::cycle_counter());
  }
  cpu_account::g_measuring.store(true, std::memory_order_release);
}

Nanos cpu_time(const Fiber* fiber) {
  measure_cpu_time();
  uint64_t word = fiber->cpu_clock.load(std::memory_order_acquire);
  int64_t ticks = (word & 1) ? cpu_account::ticks_since(arch::cycle_counter(), word >> 1) : static_cast<int64_t>(word >> 1);
  if (ticks <= 0) return fiber->cpu_base;
  return fiber->cpu_base + static_cast<Nanos>((static_cast<unsigned __int128>(ticks) * nanos_per_tick()) >> 32);
}

}  // namespace vthread::sched
