// Internal to sched/: CPU-time accounting of fibers (the public reader is sched::cpu_time()).
//
// A fiber's CPU time is the time carriers spent running it, counted in cycle-counter ticks at
// every switch: one counter read per switch serves both the fiber leaving and the one arriving.
// The count lives in one word of the fiber record (Fiber::cpu_clock) so that any thread can read
// a consistent value with one load, even while the fiber runs on another carrier.
//
// Why not the kernel's clocks: a carrier's CLOCK_THREAD_CPUTIME_ID is not in the vDSO, and a
// system call at every switch would cost several times the switch itself. The price of the cycle
// counter is that time the kernel takes the carrier away from a running fiber (preemption by
// other processes, a blocking system call the fiber makes) counts as the fiber's.
//
// Even the counter read is not free (about 15 ns a switch on the 2-core VM the benchmarks run on,
// a quarter of a yield switch), and most programs never read a thread's CPU clock. So nothing is
// measured until the first request for one (measure_cpu_time()): a fiber's clock counts the time it
// ran from then on, plus, for the main fiber, what its kernel thread had used when the runtime
// started.
#ifndef VTHREAD_SCHED_CPU_TIME_H_
#define VTHREAD_SCHED_CPU_TIME_H_

#include <stdint.h>

#include <atomic>

#include "arch/cycle_counter.h"
#include "sched/fiber.h"

namespace vthread::sched::cpu_account {

// The word holds 63-bit tick values: (total << 1) while the fiber is off carrier, and
// ((dispatch tick - total) << 1) | 1 while it runs, so that its total is then now - that.

// now - start, both taken modulo 2^63, as a signed difference.
inline int64_t ticks_since(uint64_t now, uint64_t start) {
  return static_cast<int64_t>((now << 1) - (start << 1)) >> 1;
}

// Set once, by measure_cpu_time(); read at every switch.
extern std::atomic<bool> g_measuring;

// The carrier starts running `f` at tick `now`. Only the carrier dispatching `f` writes its word.
inline void start_run(Fiber* f, uint64_t now) {
  uint64_t total = f->cpu_clock.load(std::memory_order_relaxed) >> 1;
  f->cpu_clock.store(((now - total) << 1) | 1, std::memory_order_release);
}

// The carrier stops running `f` at tick `now`. A fiber dispatched before measuring began has no
// run in progress to end.
inline void stop_run(Fiber* f, uint64_t now) {
  uint64_t word = f->cpu_clock.load(std::memory_order_relaxed);
  if (!(word & 1)) return;
  int64_t total = ticks_since(now, word >> 1);
  f->cpu_clock.store(static_cast<uint64_t>(total < 0 ? 0 : total) << 1, std::memory_order_release);
}

// A switch on the calling carrier from `out` to `in` (either null: the carrier context).
inline void account_switch(Fiber* out, Fiber* in) {
  if (!g_measuring.load(std::memory_order_relaxed)) return;
  uint64_t now = arch::cycle_counter();
  if (out) stop_run(out, now);
  if (in) start_run(in, now);
}

// At start(): the main fiber's clock begins at the CPU time its kernel thread had used, and the
// cycle counter's rate is measured from here on.
void start_main(Fiber* main);

}  // namespace vthread::sched::cpu_account

#endif  // VTHREAD_SCHED_CPU_TIME_H_
