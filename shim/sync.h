// Helpers shared by the synchronization primitives (mutex.cc, cond.cc): waiting on a 32-bit word of
// a glibc object, the same way for fibers (the parking lot) and for threads that are not fibers
// (the kernel futex), and thread identity for lock ownership.
#ifndef VTHREAD_SHIM_SYNC_H_
#define VTHREAD_SHIM_SYNC_H_

#include <pthread.h>

#include "sched/sched.h"

namespace vthread::shim {

// A deadline meaning "do not wait at all" (the try-lock forms).
constexpr sched::Nanos kTryOnly = INT64_MIN;

// How often a fiber waiting on a word that another process may change (a shared futex or
// semaphore) re-checks it: such wakes only reach the kernel's sleepers.
constexpr sched::Nanos kSharedRecheck = 10 * 1000 * 1000;

// What a wait on a word ended with.
enum class WaitResult { kWoken, kTimedOut };

// Waits while *word == expected (checked atomically with going to sleep), until woken through
// wake_word_*, or the monotonic deadline. `foreign_waiters` counts waiting non-fibers so that wakers
// make a futex system call only when one may be asleep in the kernel. Spurious returns happen.
WaitResult wait_on_word(int* word, int expected, unsigned* foreign_waiters, sched::WaitReason reason,
                        sched::Nanos deadline);

// Wakes one (or all) waiters of `word`. Returns true if a fiber was woken.
bool wake_word_one(int* word, const unsigned* foreign_waiters);
void wake_word_all(int* word, const unsigned* foreign_waiters);

// The lock-owner id of the calling thread: a fake, unique, non-zero id for a fiber (above any real
// thread id and below FUTEX_OWNER_DIED), the kernel thread id for anything else.
int owner_id();

// Our implementation of the mutex operations, for cond.cc. Return errno values.
int mutex_lock(pthread_mutex_t* mutex);
int mutex_unlock(pthread_mutex_t* mutex);
// Re-takes a mutex released by a condition wait (the caller owned it before the wait).
void mutex_relock_after_wait(pthread_mutex_t* mutex);
// True for mutexes glibc keeps handling (robust, priority-inheritance or -protect, process-shared,
// destroyed): they live in kernel futexes another process or the kernel itself may touch.
bool mutex_is_kernel_managed(const pthread_mutex_t* mutex);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_SYNC_H_
