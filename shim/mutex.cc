// pthread mutexes, on the program's own pthread_mutex_t bytes, so static initializers and glibc's
// pthread_mutex_init/pthread_mutexattr_* (left to glibc: they only write the object) just work.
//
// __lock holds the classic three-state futex word (0 free, 1 locked, 2 locked with waiters);
// __owner the owner_id(), __count the recursion depth, __kind glibc's type bits, and __nusers how
// many threads that are not fibers sleep on the word in the kernel. A fiber waits in the parking
// lot: it never blocks its carrier.
//
// Robust, priority-inheritance/-protect and process-shared mutexes stay glibc's (the kernel and
// other processes take part in those); a fiber blocking on one blocks its carrier until the
// carrier hand-off lands.
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/sync.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

// glibc's __kind bits (nptl/pthreadP.h).
constexpr int kKindTypeMask = 3;               // PTHREAD_MUTEX_KIND_MASK_NP
constexpr int kKindKernelManaged = 16 | 32 | 64 | 128;  // ROBUST, PRIO_INHERIT, PRIO_PROTECT, PSHARED
constexpr int kAdaptiveSpins = 100;

// Takes the lock word, waiting until `deadline` (kTryOnly: not at all). Returns 0, EBUSY, ETIMEDOUT.
// `contended`: take it in state 2 even if it is free, because other waiters may be queued on it
// without having marked it (condition-variable waiters a broadcast moved onto the mutex).
int acquire(pthread_mutex_t* mutex, sched::Nanos deadline, const struct timespec* abstime_to_validate,
            bool contended = false) {
  int* word = &mutex->__data.__lock;
  int expected = 0;
  if (!contended && __atomic_compare_exchange_n(word, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
    return 0;
  }
  if (deadline == kTryOnly) return EBUSY;
  // As glibc, a bad timeout is reported only when the call would have to wait.
  if (abstime_to_validate && !valid_timespec(*abstime_to_validate)) return EINVAL;
  if ((mutex->__data.__kind & kKindTypeMask) == PTHREAD_MUTEX_ADAPTIVE_NP) {
    for (int i = 0; i < kAdaptiveSpins && __atomic_load_n(word, __ATOMIC_RELAXED) != 0; ++i) sched::cpu_relax();
  }
  while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) {
    if (deadline != sched::kNoDeadline && sched::monotonic_now() >= deadline) return ETIMEDOUT;
    wait_on_word(word, 2, &mutex->__data.__nusers, sched::WaitReason::kMutex, deadline);
  }
  return 0;
}

void release(pthread_mutex_t* mutex) {
  int* word = &mutex->__data.__lock;
  if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2) wake_word_one(word, &mutex->__data.__nusers);
}

// Lock with the type's rules. `deadline`: kNoDeadline, kTryOnly or a monotonic time.
int lock(pthread_mutex_t* mutex, sched::Nanos deadline, const struct timespec* abstime) {
  int type = mutex->__data.__kind & kKindTypeMask;
  int self = owner_id();
  if (mutex->__data.__owner == self) {
    if (type == PTHREAD_MUTEX_RECURSIVE_NP) {
      if (mutex->__data.__count == UINT_MAX) return EAGAIN;
      ++mutex->__data.__count;
      return 0;
    }
    if (type == PTHREAD_MUTEX_ERRORCHECK_NP) return deadline == kTryOnly ? EBUSY : EDEADLK;
  }
  int err = acquire(mutex, deadline, abstime);
  if (err) return err;
  mutex->__data.__owner = self;
  mutex->__data.__count = 1;
  return 0;
}

}  // namespace

bool mutex_is_kernel_managed(const pthread_mutex_t* mutex) { return mutex->__data.__kind & kKindKernelManaged; }

int mutex_lock(pthread_mutex_t* mutex) { return lock(mutex, sched::kNoDeadline, nullptr); }

void mutex_relock_after_wait(pthread_mutex_t* mutex) {
  acquire(mutex, sched::kNoDeadline, nullptr, /*contended=*/true);
  mutex->__data.__owner = owner_id();
  mutex->__data.__count = 1;
}

int mutex_unlock(pthread_mutex_t* mutex) {
  int type = mutex->__data.__kind & kKindTypeMask;
  if (type == PTHREAD_MUTEX_RECURSIVE_NP || type == PTHREAD_MUTEX_ERRORCHECK_NP) {
    if (mutex->__data.__owner != owner_id() || __atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) == 0) {
      return EPERM;
    }
    if (type == PTHREAD_MUTEX_RECURSIVE_NP && --mutex->__data.__count != 0) return 0;
  }
  // Normal and adaptive mutexes may be unlocked by any thread, as in glibc (binary-semaphore use).
  mutex->__data.__owner = 0;
  release(mutex);
  return 0;
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_mutex_lock(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_lock");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_lock(mutex);
  return shim::mutex_lock(mutex);
}

int pthread_mutex_trylock(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_trylock");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_trylock(mutex);
  return shim::lock(mutex, shim::kTryOnly, nullptr);
}

int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime) {
  ShimEntry entry("pthread_mutex_clocklock");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_clocklock(mutex, clock, abstime);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  sched::Nanos deadline = shim::valid_timespec(*abstime) ? shim::monotonic_deadline(clock, *abstime) : 0;
  return shim::lock(mutex, deadline, abstime);
}

int pthread_mutex_timedlock(pthread_mutex_t* mutex, const struct timespec* abstime) {
  ShimEntry entry("pthread_mutex_timedlock");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_timedlock(mutex, abstime);
  sched::Nanos deadline = shim::valid_timespec(*abstime) ? shim::monotonic_deadline(CLOCK_REALTIME, *abstime) : 0;
  return shim::lock(mutex, deadline, abstime);
}

int pthread_mutex_unlock(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_unlock");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_unlock(mutex);
  return shim::mutex_unlock(mutex);
}

int pthread_mutex_destroy(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_destroy");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_destroy(mutex);
  if (__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) != 0) return EBUSY;
  mutex->__data.__kind = -1;  // as glibc: any later use reports EINVAL (through glibc's own checks)
  return 0;
}

}  // extern "C"
