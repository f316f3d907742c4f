// Spinlocks and barriers. pthread_spin_init/trylock/unlock/destroy stay glibc's (they only touch
// the object); pthread_barrier_init is glibc's plus clearing the padding we use.
//
// A spinlock spins briefly, then yields the fiber between attempts: spinning a carrier forever
// against a holder that is not running (parked, or queued behind the spinner on the same carrier)
// would never end. glibc's x86 encoding: 1 is free, 0 (or less) is held.
//
// Barriers keep glibc's fields (in, current_round, count, shared) and park on current_round.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "sched/libc.h"
#include "sched/spinlock.h"
#include "shim/entry.h"
#include "shim/sync.h"

namespace vthread::shim {
namespace {

constexpr int kSpinsBeforeYield = 100;

// glibc's struct pthread_barrier (sysdeps/nptl/internaltypes.h), plus our use of its padding.
struct GlibcBarrier {
  unsigned in;             // arrivals in the current round
  unsigned current_round;  // bumped when a round completes; waiters park on it
  unsigned count;
  int shared;
  unsigned out;            // glibc's; unused here
  unsigned guard;          // padding: our lock word for `in`
  unsigned foreign;        // padding: threads that are not fibers sleeping in the kernel
};
static_assert(sizeof(GlibcBarrier) <= sizeof(pthread_barrier_t));

GlibcBarrier* state(pthread_barrier_t* barrier) { return reinterpret_cast<GlibcBarrier*>(barrier); }

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_barrier_init(pthread_barrier_t* barrier, const pthread_barrierattr_t* attr, unsigned count) {
  ShimEntry entry("pthread_barrier_init");
  int r = libc::pthread_barrier_init(barrier, attr, count);
  if (r == 0) {
    shim::state(barrier)->guard = 0;
    shim::state(barrier)->foreign = 0;
  }
  return r;
}

int pthread_spin_lock(pthread_spinlock_t* lock) {
  ShimEntry entry("pthread_spin_lock");
  for (int spins = 0;; ++spins) {
    int expected = 1;
    if (__atomic_load_n(lock, __ATOMIC_RELAXED) == 1 &&
        __atomic_compare_exchange_n(lock, &expected, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      return 0;
    }
    if (spins < shim::kSpinsBeforeYield) {
      sched::cpu_relax();
    } else if (entry.fiber()) {
      sched::yield();
    } else {
      libc::sched_yield();
    }
  }
}

int pthread_barrier_wait(pthread_barrier_t* barrier) {
  ShimEntry entry("pthread_barrier_wait");
  shim::GlibcBarrier* b = shim::state(barrier);
  if (b->shared) return libc::pthread_barrier_wait(barrier);
  shim::WordGuard guard(&b->guard);
  unsigned round = __atomic_load_n(&b->current_round, __ATOMIC_RELAXED);
  if (++b->in == b->count) {
    b->in = 0;
    __atomic_store_n(&b->current_round, round + 1, __ATOMIC_RELEASE);
    guard.unlock();
    shim::wake_word_all(reinterpret_cast<int*>(&b->current_round), &b->foreign);
    return PTHREAD_BARRIER_SERIAL_THREAD;
  }
  guard.unlock();
  while (__atomic_load_n(&b->current_round, __ATOMIC_ACQUIRE) == round) {
    shim::wait_on_word_or_signal(reinterpret_cast<int*>(&b->current_round), static_cast<int>(round), &b->foreign,
                                 sched::WaitReason::kBarrier, sched::kNoDeadline);
  }
  return 0;
}

int pthread_barrier_destroy(pthread_barrier_t* barrier) {
  ShimEntry entry("pthread_barrier_destroy");
  shim::GlibcBarrier* b = shim::state(barrier);
  if (b->shared) return libc::pthread_barrier_destroy(barrier);
  shim::WordGuard guard(&b->guard);
  return b->in != 0 ? EBUSY : 0;
}

}  // extern "C"
