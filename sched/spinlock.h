// The runtime's only lock: a test-and-test-and-set spinlock for short critical sections (run queues,
// timer heaps, parking-lot buckets, fiber lifecycle). It never calls into the shim and never blocks a
// fiber; after a burst of spinning it gives the CPU back with a raw sched_yield, so a carrier
// descheduled while holding it does not make the others burn a whole time slice.
#ifndef VTHREAD_SCHED_SPINLOCK_H_
#define VTHREAD_SCHED_SPINLOCK_H_

#include <atomic>

#include <sys/syscall.h>

#include "arch/raw_syscall.h"

namespace vthread::sched {

inline void cpu_relax() { __builtin_ia32_pause(); }

class Spinlock {
 public:
  void lock() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire); ) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 128) {
          cpu_relax();
        } else {
          arch::raw_syscall(SYS_sched_yield);
          spins = 0;
        }
      }
    }
  }
  bool try_lock() {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() { locked_.store(false, std::memory_order_release); }
  bool is_locked() const { return locked_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

class SpinlockGuard {
 public:
  explicit SpinlockGuard(Spinlock& lock) : lock_(lock) { lock_.lock(); }
  ~SpinlockGuard() { lock_.unlock(); }
  SpinlockGuard(const SpinlockGuard&) = delete;
  SpinlockGuard& operator=(const SpinlockGuard&) = delete;

 private:
  Spinlock& lock_;
};

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_SPINLOCK_H_
