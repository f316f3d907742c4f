// Raw futex calls for the runtime's own kernel-level waits (idle carriers). Raw syscalls, never the
// interposed syscall() wrapper (see arch/raw_syscall.h).
#ifndef VTHREAD_SCHED_FUTEX_H_
#define VTHREAD_SCHED_FUTEX_H_

#include <atomic>

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#include "arch/raw_syscall.h"

namespace vthread::sched {

// Sleeps while *word == expected, until woken or `timeout` (relative; nullptr = none) passes.
inline void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, const struct timespec* timeout) {
  arch::raw_syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout);
}

inline void futex_wake(std::atomic<uint32_t>* word, int count) {
  arch::raw_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count);
}

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_FUTEX_H_
