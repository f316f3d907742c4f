// The CPU's cycle counter, for measuring short intervals where a clock_gettime call would cost
// too much (the scheduler reads it at every switch). x86_64: the time-stamp counter, which on every
// CPU Linux calls constant_tsc ticks at a fixed rate whatever the frequency, and in step on all
// cores; its rate is found by measuring it against CLOCK_MONOTONIC (sched/cpu_time.cc).
#ifndef VTHREAD_ARCH_CYCLE_COUNTER_H_
#define VTHREAD_ARCH_CYCLE_COUNTER_H_

#include <stdint.h>

namespace vthread::arch {

// Not serializing: it may be read a few instructions early or late, which is noise at the scale
// it is used for.
inline uint64_t cycle_counter() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (uint64_t{hi} << 32) | lo;
}

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_CYCLE_COUNTER_H_
