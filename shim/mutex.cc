// pthread mutexes, on the program's own pthread_mutex_t bytes, so static initializers and glibc's
// pthread_mutex_init/pthread_mutexattr_* (glibc's: they only write the object) just work.
//
// __lock holds the classic three-state futex word (0 free, 1 locked, 2 locked with waiters);
// __owner the owner_id(), __count the recursion depth, __kind glibc's type bits, and __nusers how
// many threads that are not fibers sleep on the word in the kernel. A fiber waits in the parking
// lot: it never blocks its carrier.
//
// Robust mutexes are ours too (unless process-shared): glibc's rely on the kernel walking a
// thread's robust list when the kernel thread dies, and a fiber's death is invisible to the
// kernel. Each thread keeps the robust mutexes it holds on a list threaded through the mutexes'
// own __list fields, as glibc does; a fiber that exits holding some marks each owner-dead and
// releases it, so the next locker gets EOWNERDEAD (see "Robust mutexes" below).
//
// Priority-inheritance mutexes are ours too (unless process-shared): glibc's hand the kernel the
// owner's thread id (FUTEX_LOCK_PI), and a fiber's is not a kernel thread's. A fiber about to wait
// on one lends its run-queue level to the holder if that is lower; the holder takes back its own
// level when it next unlocks a priority-inheritance mutex (see "Priority inheritance" below).
//
// Priority-protect and process-shared mutexes stay glibc's (the kernel and other processes take
// part in those); a fiber blocking on one blocks its carrier until the carrier hand-off lands.
//
// A signal sent to a fiber that waits for a lock ends the park: its handler runs at once, and the
// fiber tries the lock again (cancel.h).
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "sched/libc.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/sync.h"
#include "shim/thread_state.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

// glibc's __kind bits (nptl/pthreadP.h).
constexpr int kKindTypeMask = 3;               // PTHREAD_MUTEX_KIND_MASK_NP
constexpr int kKindRobust = 16;                // PTHREAD_MUTEX_ROBUST_NORMAL_NP
constexpr int kKindPrioInherit = 32;           // PTHREAD_MUTEX_PRIO_INHERIT_NP
constexpr int kKindProcessShared = 128;        // PTHREAD_MUTEX_PSHARED_BIT
constexpr int kKindKernelManaged = 64 | kKindProcessShared;  // PRIO_PROTECT (its ceiling is in __lock), PSHARED
constexpr int kAdaptiveSpins = 100;

// ---- Priority inheritance ------------------------------------------------------------------------
//
// Simpler than the kernel's PI chains, on purpose: a waiter raises the holder's level to its own
// (never lowers it), and the holder drops back to its policy's level at its next unlock of any
// priority-inheritance mutex, rather than to the highest level still waiting on others it holds.
// A holder that is itself waiting passes nothing on.

void lend_priority_to_holder(pthread_mutex_t* mutex) {
  sched::Fiber* self = sched::current();
  sched::Fiber* holder = fiber_of_owner_id(__atomic_load_n(&mutex->__data.__owner, __ATOMIC_RELAXED));
  if (!self || !holder || holder == self) return;
  int level = self->next_priority.load(std::memory_order_relaxed);
  sched::SpinlockGuard hold(holder->lifecycle_lock);
  auto* state = static_cast<ThreadState*>(holder->user_data);
  if (!state || holder->next_priority.load(std::memory_order_relaxed) >= level) return;
  state->priority_lent = true;
  sched::set_priority(holder, level);
}

void take_back_own_priority(sched::Fiber* self) {
  sched::SpinlockGuard hold(self->lifecycle_lock);
  auto* state = static_cast<ThreadState*>(self->user_data);
  if (!state || !state->priority_lent) return;
  state->priority_lent = false;
  sched::set_priority(self, run_queue_level(state->sched_policy, state->sched_priority));
}

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
    if (mutex->__data.__kind & kKindPrioInherit) lend_priority_to_holder(mutex);
    wait_on_word_or_signal(word, 2, &mutex->__data.__nusers, sched::WaitReason::kMutex, deadline);
  }
  return 0;
}

void release(pthread_mutex_t* mutex) {
  int* word = &mutex->__data.__lock;
  if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2) wake_word_one(word, &mutex->__data.__nusers);
}

// ---- Robust mutexes ----------------------------------------------------------------------------
//
// __owner tells the story, with glibc's values where glibc has them (pthread_mutex_consistent and
// the program may look): the holder's owner_id(); kOwnerDied while the mutex is free after its
// holder exited holding it; PTHREAD_MUTEX_INCONSISTENT while held by the thread that was told
// EOWNERDEAD and has not called pthread_mutex_consistent; kNotRecoverable for good once that
// thread unlocked it without doing so. The lock word itself stays the three-state word.

constexpr int kInconsistent = INT_MAX;         // glibc's PTHREAD_MUTEX_INCONSISTENT
constexpr int kNotRecoverable = INT_MAX - 1;   // glibc's PTHREAD_MUTEX_NOTRECOVERABLE
constexpr int kOwnerDied = 0x40000000;         // FUTEX_OWNER_DIED: no thread id or owner_id() is this

bool is_robust(const pthread_mutex_t* mutex) { return mutex->__data.__kind & kKindRobust; }

pthread_mutex_t* mutex_of(__pthread_list_t* node) {
  return reinterpret_cast<pthread_mutex_t*>(reinterpret_cast<char*>(node) - offsetof(pthread_mutex_t, __data.__list));
}

void link_held(ThreadState* state, pthread_mutex_t* mutex) {
  __pthread_list_t* node = &mutex->__data.__list;
  node->__prev = nullptr;
  node->__next = state->robust_held;
  if (state->robust_held) state->robust_held->__prev = node;
  state->robust_held = node;
}

void unlink_held(ThreadState* state, pthread_mutex_t* mutex) {
  __pthread_list_t* node = &mutex->__data.__list;
  if (node->__prev) {
    node->__prev->__next = node->__next;
  } else {
    state->robust_held = node->__next;
  }
  if (node->__next) node->__next->__prev = node->__prev;
  node->__prev = node->__next = nullptr;
}

// Whether the caller holds `mutex`. Only an inconsistent mutex needs the list: its __owner no
// longer names the holder.
bool held_by_caller(const pthread_mutex_t* mutex, int self) {
  int owner = mutex->__data.__owner;
  if (owner == self) return true;
  if (owner != kInconsistent || !is_robust(mutex)) return false;
  ThreadState* state = thread_state();
  for (__pthread_list_t* node = state ? state->robust_held : nullptr; node; node = node->__next) {
    if (mutex_of(node) == mutex) return true;
  }
  return false;
}

// Completes a lock the caller just acquired the word of: records ownership, and for a robust
// mutex deals with a dead or unrecoverable previous owner. Returns 0, EOWNERDEAD (locked, and
// inconsistent) or ENOTRECOVERABLE (not locked).
int take_ownership(pthread_mutex_t* mutex, ThreadState* robust_state) {
  mutex->__data.__count = 1;
  if (!robust_state) {
    mutex->__data.__owner = owner_id();
    return 0;
  }
  int previous = mutex->__data.__owner;
  if (previous == kNotRecoverable) {
    release(mutex);
    return ENOTRECOVERABLE;
  }
  link_held(robust_state, mutex);
  if (previous == kOwnerDied) {
    mutex->__data.__owner = kInconsistent;
    return EOWNERDEAD;
  }
  mutex->__data.__owner = owner_id();
  return 0;
}

// Lock with the type's rules. `deadline`: kNoDeadline, kTryOnly or a monotonic time.
int lock(pthread_mutex_t* mutex, sched::Nanos deadline, const struct timespec* abstime) {
  int type = mutex->__data.__kind & kKindTypeMask;
  int self = owner_id();
  if (held_by_caller(mutex, self)) {
    if (type == PTHREAD_MUTEX_RECURSIVE_NP) {
      if (mutex->__data.__count == UINT_MAX) return EAGAIN;
      ++mutex->__data.__count;
      return 0;
    }
    if (type == PTHREAD_MUTEX_ERRORCHECK_NP) return deadline == kTryOnly ? EBUSY : EDEADLK;
  }
  ThreadState* robust_state = nullptr;
  if (is_robust(mutex)) {
    if (mutex->__data.__owner == kNotRecoverable) return ENOTRECOVERABLE;
    if (!(robust_state = thread_state())) return EAGAIN;  // no memory to track what the thread holds
  }
  if (int err = acquire(mutex, deadline, abstime)) return err;
  return take_ownership(mutex, robust_state);
}

}  // namespace

bool mutex_is_kernel_managed(const pthread_mutex_t* mutex) { return mutex->__data.__kind & kKindKernelManaged; }

int mutex_lock(pthread_mutex_t* mutex) { return lock(mutex, sched::kNoDeadline, nullptr); }

int mutex_relock_after_wait(pthread_mutex_t* mutex) {
  // The thread state exists: the caller unlocked this mutex, so it locked it first.
  ThreadState* robust_state = is_robust(mutex) ? thread_state() : nullptr;
  acquire(mutex, sched::kNoDeadline, nullptr, /*contended=*/true);
  return take_ownership(mutex, robust_state);
}

int mutex_unlock(pthread_mutex_t* mutex) {
  int type = mutex->__data.__kind & kKindTypeMask;
  bool robust = is_robust(mutex);
  int new_owner = 0;
  if (robust || type == PTHREAD_MUTEX_RECURSIVE_NP || type == PTHREAD_MUTEX_ERRORCHECK_NP) {
    // As glibc, only the holder may unlock these (robust ones of every type).
    if (!held_by_caller(mutex, owner_id()) || __atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) == 0) {
      return EPERM;
    }
    bool inconsistent = mutex->__data.__owner == kInconsistent;
    if (type == PTHREAD_MUTEX_RECURSIVE_NP && --mutex->__data.__count != 0) return inconsistent ? ENOTRECOVERABLE : 0;
    // Unlocked without pthread_mutex_consistent after EOWNERDEAD: no one may use it again.
    if (inconsistent) new_owner = kNotRecoverable;
  }
  // Normal and adaptive mutexes may be unlocked by any thread, as in glibc (binary-semaphore use).
  if (robust) unlink_held(thread_state(), mutex);
  bool inherits = mutex->__data.__kind & kKindPrioInherit;  // read before the mutex may be freed
  mutex->__data.__owner = new_owner;
  release(mutex);
  if (inherits) {
    if (sched::Fiber* self = sched::current()) take_back_own_priority(self);
  }
  return 0;
}

int mutex_consistent(pthread_mutex_t* mutex) {
  if (!is_robust(mutex) || mutex->__data.__owner != kInconsistent) return EINVAL;
  mutex->__data.__owner = owner_id();
  return 0;
}

void mark_robust_mutexes_owner_dead(ThreadState* state) {
  while (__pthread_list_t* node = state->robust_held) {
    pthread_mutex_t* mutex = mutex_of(node);
    unlink_held(state, mutex);
    mutex->__data.__owner = kOwnerDied;
    mutex->__data.__count = 0;
    release(mutex);
  }
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

// glibc's, except that a robust mutex that is not process-shared loses the process-shared bit
// glibc gives every robust mutex (its robust mutexes always use shared futex operations, because
// the kernel wakes them that way when a holder dies). Without it, the mutex is ours (see the top).
int pthread_mutex_init(pthread_mutex_t* mutex, const pthread_mutexattr_t* attr) {
  ShimEntry entry("pthread_mutex_init");
  int err = libc::pthread_mutex_init(mutex, attr);
  int robust = PTHREAD_MUTEX_STALLED, pshared = PTHREAD_PROCESS_PRIVATE;
  if (err == 0 && attr) {
    pthread_mutexattr_getrobust(attr, &robust);
    pthread_mutexattr_getpshared(attr, &pshared);
    if (robust == PTHREAD_MUTEX_ROBUST && pshared == PTHREAD_PROCESS_PRIVATE) {
      mutex->__data.__kind &= ~shim::kKindProcessShared;
    }
  }
  return err;
}

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

int pthread_mutex_consistent(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_consistent");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_consistent(mutex);
  return shim::mutex_consistent(mutex);
}

// The pre-POSIX-2008 name, still exported by glibc for old binaries. (glibc's header redirects
// the _np name to pthread_mutex_consistent, hence the assembler name.)
int mutex_consistent_np(pthread_mutex_t* mutex) __asm__("pthread_mutex_consistent_np");
int mutex_consistent_np(pthread_mutex_t* mutex) { return pthread_mutex_consistent(mutex); }

int pthread_mutex_destroy(pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_mutex_destroy");
  if (shim::mutex_is_kernel_managed(mutex)) return libc::pthread_mutex_destroy(mutex);
  if (__atomic_load_n(&mutex->__data.__lock, __ATOMIC_RELAXED) != 0) return EBUSY;
  mutex->__data.__kind = -1;  // as glibc: any later use reports EINVAL (through glibc's own checks)
  return 0;
}

}  // extern "C"
