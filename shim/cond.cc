// pthread condition variables, on the program's own pthread_cond_t bytes (static initializer and
// glibc's pthread_cond_init/pthread_condattr_* left to glibc). A wait remembers the condition's
// sequence number (kept in __g_signals[0]), unlocks the mutex and parks unless the number has moved;
// signal and broadcast move it and wake. __g_signals[1] counts waiting non-fibers. The clock a
// condattr chose is glibc's bit in __wrefs. Waiters record their mutex in __g1_start, so that a
// broadcast wakes one waiter and moves the others onto the mutex's queue: they are woken one at a
// time as the mutex is released, instead of all at once to fight over it.
//
// Process-shared condition variables, and waits with a mutex glibc manages (see mutex.cc), stay
// glibc's.
//
// The waits are cancellation points. A cancel acts with the mutex held again, as POSIX requires:
// on entry before the mutex is released, or after pthread_cancel ended the park and the mutex was
// re-taken. A wait that was woken normally returns normally; the cancel stays pending.
//
// A signal sent to a waiting fiber ends the park too: its handler runs at once, without the mutex
// (as natively), and the fiber waits again for the same sequence number, so a signal or broadcast
// that came meanwhile still ends the wait. It could return 0 instead (POSIX allows spurious
// wake-ups), but glibc goes on waiting, and programs tuned on glibc see no extra wake-ups.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "sched/libc.h"
#include "sched/parking_lot.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sync.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

constexpr unsigned kWrefsProcessShared = 1;  // glibc: __wrefs bit 0
constexpr unsigned kWrefsMonotonic = 2;      // glibc: __wrefs bit 1

int* sequence(pthread_cond_t* cond) { return reinterpret_cast<int*>(&cond->__data.__g_signals[0]); }
unsigned* foreign_waiters(pthread_cond_t* cond) { return &cond->__data.__g_signals[1]; }
pthread_mutex_t** waiters_mutex(pthread_cond_t* cond) {
  static_assert(sizeof cond->__data.__g1_start >= sizeof(pthread_mutex_t*));
  return reinterpret_cast<pthread_mutex_t**>(&cond->__data.__g1_start);
}

// Requeue precondition, run with both wait queues locked: the mutex is held, and is now marked as
// having waiters so its unlock wakes the ones we move. An unlocked mutex would never wake them.
bool mark_mutex_contended(void* mutex) {
  int* word = &static_cast<pthread_mutex_t*>(mutex)->__data.__lock;
  int v = __atomic_load_n(word, __ATOMIC_RELAXED);
  while (v != 0) {
    if (v == 2 || __atomic_compare_exchange_n(word, &v, 2, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return true;
  }
  return false;
}

bool kernel_managed(pthread_cond_t* cond, pthread_mutex_t* mutex) {
  return (cond->__data.__wrefs & kWrefsProcessShared) || (mutex && mutex_is_kernel_managed(mutex));
}

clockid_t clock_of(pthread_cond_t* cond) {
  return (cond->__data.__wrefs & kWrefsMonotonic) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

int wait(pthread_cond_t* cond, pthread_mutex_t* mutex, sched::Nanos deadline) {
  sched::Fiber* self = sched::current();
  int seen = __atomic_load_n(sequence(cond), __ATOMIC_ACQUIRE);
  __atomic_store_n(waiters_mutex(cond), mutex, __ATOMIC_RELAXED);
  if (int err = mutex_unlock(mutex)) return err;
  WaitResult r = WaitResult::kWoken;
  for (;;) {
    if (arm_cancel(self, /*by_signals=*/true)) {
      r = WaitResult::kInterrupted;
      break;
    }
    bool signalled = interrupting_signal_pending(self);
    if (signalled) {
      sched::deliver_pending_signals(self);
    } else {
      r = wait_on_word(sequence(cond), seen, foreign_waiters(cond), sched::WaitReason::kCondition, deadline);
    }
    disarm_cancel(self);
    if (!signalled && r != WaitResult::kInterrupted) break;
    // Ended by a handler, which ran: wait again. By a cancel: the next arm_cancel says so.
  }
  int relocked = mutex_relock_after_wait(mutex);
  if (r == WaitResult::kInterrupted) act_on_cancel(self);  // with the mutex held again
  if (relocked) return relocked;  // as glibc: the robust mutex's news wins over a timeout
  return r == WaitResult::kTimedOut ? ETIMEDOUT : 0;
}

int timed_wait(pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime) {
  if (!valid_timespec(*abstime)) return EINVAL;
  return wait(cond, mutex, monotonic_deadline(clock, *abstime));
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_cond_wait(pthread_cond_t* cond, pthread_mutex_t* mutex) {
  ShimEntry entry("pthread_cond_wait");
  if (shim::kernel_managed(cond, mutex)) {
    shim::cancellation_point(entry.fiber());  // glibc's wait cannot see our cancel; check on entry
    return libc::pthread_cond_wait(cond, mutex);
  }
  return shim::wait(cond, mutex, sched::kNoDeadline);
}

int pthread_cond_timedwait(pthread_cond_t* cond, pthread_mutex_t* mutex, const struct timespec* abstime) {
  ShimEntry entry("pthread_cond_timedwait");
  if (shim::kernel_managed(cond, mutex)) {
    shim::cancellation_point(entry.fiber());
    return libc::pthread_cond_timedwait(cond, mutex, abstime);
  }
  return shim::timed_wait(cond, mutex, shim::clock_of(cond), abstime);
}

int pthread_cond_clockwait(pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock,
                           const struct timespec* abstime) {
  ShimEntry entry("pthread_cond_clockwait");
  if (shim::kernel_managed(cond, mutex)) {
    shim::cancellation_point(entry.fiber());
    return libc::pthread_cond_clockwait(cond, mutex, clock, abstime);
  }
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  return shim::timed_wait(cond, mutex, clock, abstime);
}

int pthread_cond_signal(pthread_cond_t* cond) {
  ShimEntry entry("pthread_cond_signal");
  if (shim::kernel_managed(cond, nullptr)) return libc::pthread_cond_signal(cond);
  __atomic_fetch_add(shim::sequence(cond), 1, __ATOMIC_RELEASE);
  shim::wake_word_one(shim::sequence(cond), shim::foreign_waiters(cond));
  return 0;
}

int pthread_cond_broadcast(pthread_cond_t* cond) {
  ShimEntry entry("pthread_cond_broadcast");
  if (shim::kernel_managed(cond, nullptr)) return libc::pthread_cond_broadcast(cond);
  __atomic_fetch_add(shim::sequence(cond), 1, __ATOMIC_RELEASE);
  pthread_mutex_t* mutex = __atomic_load_n(shim::waiters_mutex(cond), __ATOMIC_RELAXED);
  if (mutex && !shim::mutex_is_kernel_managed(mutex)) {
    sched::parking_lot::requeue(shim::sequence(cond), &mutex->__data.__lock, 1, SIZE_MAX,
                                shim::mark_mutex_contended, mutex);
  }
  // Whoever is left: non-fibers, or every fiber if the mutex was free and nothing was moved.
  shim::wake_word_all(shim::sequence(cond), shim::foreign_waiters(cond));
  return 0;
}

}  // extern "C"
