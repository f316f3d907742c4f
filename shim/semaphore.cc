// POSIX semaphores on the program's own sem_t, in glibc's layout: the value in the low 32 bits of
// the first word, the number of threads sleeping in the kernel in the high 32 bits, and `private`,
// which is 0 for process-private semaphores and non-zero for process-shared and named ones.
// sem_getvalue, sem_destroy and the named-semaphore calls stay glibc's; sem_init is glibc's plus
// clearing the padding we use.
//
// A fiber waits in the parking lot on the value word. For a shared semaphore a post may come from
// another process, which only wakes the kernel's sleepers: a fiber waiting on one re-checks the
// value every kSharedRecheck, and our posts also wake the kernel's sleepers as glibc's do. Threads
// that are not fibers use glibc's own calls on shared semaphores.
//
// sem_wait, sem_timedwait and sem_clockwait are cancellation points: as glibc, they act on a pending
// cancel on entry (after validating the timeout) whether or not they would wait, and pthread_cancel
// ends the wait. A wait that took a unit returns normally; the cancel stays pending. A signal sent
// to the waiting fiber that runs a handler ends the wait with EINTR, as natively.
#include <errno.h>
#include <limits.h>  // SEM_VALUE_MAX
#include <linux/futex.h>
#include <semaphore.h>
#include <stdint.h>
#include <sys/syscall.h>

#include <algorithm>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sync.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

// glibc's struct new_sem on 64-bit targets (nptl/semaphoreP.h, sysdeps/nptl/internaltypes.h).
struct GlibcSemaphore {
  uint32_t value;       // low half of `data`
  uint32_t nwaiters;    // high half of `data`: threads in glibc's sem_wait, asleep in the kernel
  int shared;           // glibc's `private`: 0 when process-private
  unsigned foreign;     // glibc's padding: threads that are not fibers sleeping in the kernel
};
static_assert(sizeof(GlibcSemaphore) <= sizeof(sem_t));

GlibcSemaphore* state(sem_t* sem) { return reinterpret_cast<GlibcSemaphore*>(sem); }
bool is_shared(sem_t* sem) { return state(sem)->shared != 0; }
// Whether glibc handles this wait: a shared semaphore and a thread that is not a fiber. (Posts are
// always ours: they wake fibers and the kernel's sleepers alike.)
bool left_to_glibc(sem_t* sem) { return is_shared(sem) && !sched::current(); }

bool try_take(GlibcSemaphore* s) {
  uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
  while (v > 0) {
    if (__atomic_compare_exchange_n(&s->value, &v, v - 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
  }
  return false;
}

int fail(int err) {
  errno = err;
  return -1;
}

// Takes one unit, waiting until `deadline`. Returns 0 or -1 with errno, as sem_wait does.
int take(sem_t* sem, sched::Nanos deadline) {
  GlibcSemaphore* s = state(sem);
  sched::Fiber* self = sched::current();
  cancellation_point(self);
  while (!try_take(s)) {
    sched::Nanos now = sched::monotonic_now();
    if (deadline != sched::kNoDeadline && now >= deadline) return fail(ETIMEDOUT);
    sched::Nanos until = is_shared(sem) ? std::min(deadline, sched::deadline_after(now, kSharedRecheck)) : deadline;
    bool interrupted = park_interruptibly(self, [s, until] {
      return wait_on_word(reinterpret_cast<int*>(&s->value), 0, &s->foreign, sched::WaitReason::kSemaphore, until) ==
             WaitResult::kInterrupted;
    });
    if (interrupted) {
      // A cancel acts at the next lap's arm_cancel (unless a unit came); a handler ran: EINTR.
      if (try_take(s)) return 0;
      auto* thread = static_cast<ThreadState*>(self->user_data);
      if (!thread || !cancel_due(thread->cancel.load(std::memory_order_acquire))) return fail(EINTR);
    }
  }
  return 0;
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int sem_init(sem_t* sem, int pshared, unsigned value) {
  ShimEntry entry("sem_init");
  int r = libc::sem_init(sem, pshared, value);
  if (r == 0) shim::state(sem)->foreign = 0;
  return r;
}

int sem_wait(sem_t* sem) {
  ShimEntry entry("sem_wait");
  if (shim::left_to_glibc(sem)) return libc::sem_wait(sem);  // glibc's own cancellation point
  return shim::take(sem, sched::kNoDeadline);
}

int sem_trywait(sem_t* sem) {
  ShimEntry entry("sem_trywait");
  if (shim::left_to_glibc(sem)) return libc::sem_trywait(sem);
  return shim::try_take(shim::state(sem)) ? 0 : shim::fail(EAGAIN);
}

int sem_clockwait(sem_t* sem, clockid_t clock, const struct timespec* abstime) {
  ShimEntry entry("sem_clockwait");
  if (shim::left_to_glibc(sem)) return libc::sem_clockwait(sem, clock, abstime);
  // As glibc: the clock and the timeout are checked before trying to take.
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return shim::fail(EINVAL);
  if (!shim::valid_timespec(*abstime)) return shim::fail(EINVAL);
  return shim::take(sem, shim::monotonic_deadline(clock, *abstime));
}

int sem_timedwait(sem_t* sem, const struct timespec* abstime) {
  ShimEntry entry("sem_timedwait");
  if (shim::left_to_glibc(sem)) return libc::sem_timedwait(sem, abstime);
  if (!shim::valid_timespec(*abstime)) return shim::fail(EINVAL);
  return shim::take(sem, shim::monotonic_deadline(CLOCK_REALTIME, *abstime));
}

int sem_post(sem_t* sem) {
  ShimEntry entry("sem_post");
  shim::GlibcSemaphore* s = shim::state(sem);
  uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
  do {
    if (v >= SEM_VALUE_MAX) return shim::fail(EOVERFLOW);
  } while (!__atomic_compare_exchange_n(&s->value, &v, v + 1, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  shim::wake_word_one(reinterpret_cast<int*>(&s->value), &s->foreign);
  if (shim::is_shared(sem) && __atomic_load_n(&s->nwaiters, __ATOMIC_SEQ_CST) > 0) {
    vthread::arch::raw_syscall(SYS_futex, &s->value, FUTEX_WAKE, 1);  // as glibc's sem_post
  }
  return 0;
}

}  // extern "C"
