// Helpers shared by the synchronization primitives (mutex.cc, cond.cc, rwlock.cc, ...): waiting on a 32-bit word of
// a glibc object, the same way for fibers (the parking lot) and for threads that are not fibers
// (the kernel futex), and thread identity for lock ownership.
#ifndef VTHREAD_SHIM_SYNC_H_
#define VTHREAD_SHIM_SYNC_H_

#include <pthread.h>

#include "sched/parking_lot.h"
#include "sched/sched.h"
#include "sched/spinlock.h"

namespace vthread::shim {

// A deadline meaning "do not wait at all" (the try-lock forms).
constexpr sched::Nanos kTryOnly = INT64_MIN;

// How often a fiber waiting on a word that another process may change (a shared futex or
// semaphore) re-checks it: such wakes only reach the kernel's sleepers.
constexpr sched::Nanos kSharedRecheck = 10 * 1000 * 1000;

// What a wait on a word ended with.
// kInterrupted: pthread_cancel or a signal ended the wait (only waits armed for it, see cancel.h).
enum class WaitResult { kWoken, kTimedOut, kValueChanged, kInterrupted };

// Waits while *word == expected (checked atomically with going to sleep), until woken through
// wake_word_*, or the monotonic deadline. `foreign_waiters` counts waiting non-fibers so that wakers
// make a futex system call only when one may be asleep in the kernel. A fiber's wait carries `tag`
// (futex bitsets). Spurious returns happen.
WaitResult wait_on_word(int* word, int expected, unsigned* foreign_waiters, sched::WaitReason reason,
                        sched::Nanos deadline, uint32_t tag = sched::parking_lot::kAnyTag);

// wait_on_word for a wait that is no cancellation point but that a signal's handler interrupts, as
// a futex wait is natively (locks, barriers, pthread_once, syscall futex waits): in a fiber, a
// signal sent to it runs its handler at once, as it resumes (cancel.h), and the result is then
// kInterrupted; the caller checks its condition again and waits again, as glibc's loops do.
WaitResult wait_on_word_or_signal(int* word, int expected, unsigned* foreign_waiters, sched::WaitReason reason,
                                  sched::Nanos deadline, uint32_t tag = sched::parking_lot::kAnyTag);

// Wakes one (or all) waiters of `word`. Returns true if a fiber was woken.
bool wake_word_one(int* word, const unsigned* foreign_waiters);
void wake_word_all(int* word, const unsigned* foreign_waiters);

// A spin lock on a 32-bit word in a glibc object's padding, for the few instructions of rwlock and
// barrier bookkeeping; never held across a switch. Unlocks on destruction if still held.
class WordGuard {
 public:
  explicit WordGuard(unsigned* word) : word_(word) { lock(); }
  ~WordGuard() {
    if (held_) unlock();
  }
  WordGuard(const WordGuard&) = delete;
  WordGuard& operator=(const WordGuard&) = delete;
  void lock() {
    while (__atomic_exchange_n(word_, 1, __ATOMIC_ACQUIRE)) sched::cpu_relax();
    held_ = true;
  }
  void unlock() {
    held_ = false;
    __atomic_store_n(word_, 0, __ATOMIC_RELEASE);
  }

 private:
  unsigned* word_;
  bool held_ = false;
};

// The lock-owner id of the calling thread: for a fiber the thread id glibc sees in its TCB (fake,
// unique, above any real thread id and below FUTEX_OWNER_DIED; the main fiber keeps its kernel
// one), the kernel thread id for anything else. And back: the fiber with that id, if any.
int owner_id();
sched::Fiber* fiber_of_owner_id(int id);

// Our implementation of the mutex operations, for cond.cc. Return errno values.
int mutex_lock(pthread_mutex_t* mutex);
int mutex_unlock(pthread_mutex_t* mutex);
// Re-takes a mutex released by a condition wait (the caller owned it before the wait). Returns 0,
// or for a robust mutex EOWNERDEAD (taken, inconsistent) or ENOTRECOVERABLE (not taken).
int mutex_relock_after_wait(pthread_mutex_t* mutex);
int mutex_consistent(pthread_mutex_t* mutex);
// True for mutexes glibc keeps handling (priority-inheritance or -protect, process-shared): they live in kernel futexes another process or the kernel itself may touch.
bool mutex_is_kernel_managed(const pthread_mutex_t* mutex);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_SYNC_H_
