// Read-write locks on the program's own pthread_rwlock_t (static initializers and glibc's
// pthread_rwlock_init/pthread_rwlockattr_* left to glibc). The state lives in glibc's fields and
// padding under a small lock word; readers park on one sequence word, writers on another, and an
// unlock bumps the word of whoever may go next.
//
// As glibc: readers are preferred (new readers join while writers wait) unless the lock was made
// PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP; re-locking for writing, or reading while writing,
// is EDEADLK. Process-shared rwlocks stay glibc's.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>

#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/sync.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

// Overlays glibc's struct __pthread_rwlock_arch_t (x86_64).
struct RwlockState {
  unsigned readers;          // __readers: readers holding the lock
  unsigned writers_waiting;  // __writers
  unsigned read_seq;         // __wrphase_futex: bumped to let waiting readers in
  unsigned write_seq;        // __writers_futex: bumped to let one waiting writer try
  unsigned guard;            // __pad3: lock word for all of these
  unsigned readers_waiting;  // __pad4
  int writer;                // __cur_writer: owner_id() of the writer, 0 if none
  int shared;                // __shared
  unsigned char elision_and_pad[4];
  unsigned foreign_readers;  // __pad1: non-fibers sleeping in the kernel on read_seq
  unsigned foreign_writers;  // __pad2: ... on write_seq
  unsigned unused;
  unsigned flags;            // __flags: PTHREAD_RWLOCK_PREFER_*
};
static_assert(offsetof(RwlockState, writer) == offsetof(pthread_rwlock_t, __data.__cur_writer));
static_assert(offsetof(RwlockState, shared) == offsetof(pthread_rwlock_t, __data.__shared));
static_assert(offsetof(RwlockState, flags) == offsetof(pthread_rwlock_t, __data.__flags));

RwlockState* state(pthread_rwlock_t* rwlock) { return reinterpret_cast<RwlockState*>(rwlock); }

bool writers_first(const RwlockState* s) { return s->flags == PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP; }

// Who may go now that the lock changed; bumps their sequence word. Call with the guard held, wake
// with wake_released() after dropping it.
struct Release {
  bool writer = false;
  bool readers = false;
};
Release decide_release(RwlockState* s) {
  Release r;
  if (s->writer) return r;
  bool writer_can_go = s->readers == 0 && s->writers_waiting > 0;
  if (writer_can_go && (writers_first(s) || s->readers_waiting == 0)) {
    ++s->write_seq;
    r.writer = true;
  } else if (s->readers_waiting > 0 && !(writers_first(s) && s->writers_waiting > 0)) {
    ++s->read_seq;
    r.readers = true;
  } else if (writer_can_go) {
    ++s->write_seq;
    r.writer = true;
  }
  return r;
}
void wake_released(RwlockState* s, Release r) {
  if (r.writer) wake_word_one(reinterpret_cast<int*>(&s->write_seq), &s->foreign_writers);
  if (r.readers) wake_word_all(reinterpret_cast<int*>(&s->read_seq), &s->foreign_readers);
}

int read_lock(pthread_rwlock_t* rwlock, sched::Nanos deadline) {
  RwlockState* s = state(rwlock);
  int self = owner_id();
  WordGuard guard(&s->guard);
  for (;;) {
    // As glibc: the try forms just fail (EBUSY) where the blocking ones would deadlock.
    if (s->writer == self) return deadline == kTryOnly ? EBUSY : EDEADLK;
    if (!s->writer && !(writers_first(s) && s->writers_waiting > 0)) {
      if (s->readers == UINT_MAX) return EAGAIN;
      ++s->readers;
      return 0;
    }
    if (deadline == kTryOnly) return EBUSY;
    if (deadline != sched::kNoDeadline && sched::monotonic_now() >= deadline) return ETIMEDOUT;
    ++s->readers_waiting;
    unsigned seen = s->read_seq;
    guard.unlock();
    wait_on_word_or_signal(reinterpret_cast<int*>(&s->read_seq), static_cast<int>(seen), &s->foreign_readers,
                           sched::WaitReason::kRwlockRead, deadline);
    guard.lock();
    --s->readers_waiting;
  }
}

int write_lock(pthread_rwlock_t* rwlock, sched::Nanos deadline) {
  RwlockState* s = state(rwlock);
  int self = owner_id();
  WordGuard guard(&s->guard);
  for (;;) {
    if (s->writer == self) return deadline == kTryOnly ? EBUSY : EDEADLK;
    if (!s->writer && s->readers == 0) {
      s->writer = self;
      return 0;
    }
    if (deadline == kTryOnly) return EBUSY;
    if (deadline != sched::kNoDeadline && sched::monotonic_now() >= deadline) {
      return ETIMEDOUT;
    }
    ++s->writers_waiting;
    unsigned seen = s->write_seq;
    guard.unlock();
    auto r = wait_on_word_or_signal(reinterpret_cast<int*>(&s->write_seq), static_cast<int>(seen),
                                    &s->foreign_writers, sched::WaitReason::kRwlockWrite, deadline);
    guard.lock();
    --s->writers_waiting;
    if (r == WaitResult::kTimedOut && !(!s->writer && s->readers == 0)) {
      // Readers held back for us (writer preference) may go now that we leave.
      Release release = decide_release(s);
      guard.unlock();
      wake_released(s, release);
      return ETIMEDOUT;
    }
  }
}

sched::Nanos deadline_of(clockid_t clock, const struct timespec* abstime, int* err) {
  if ((clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) || !valid_timespec(*abstime)) {
    *err = EINVAL;
    return 0;
  }
  *err = 0;
  return monotonic_deadline(clock, *abstime);
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_rwlock_rdlock(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_rdlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_rdlock(rwlock);
  return shim::read_lock(rwlock, sched::kNoDeadline);
}

int pthread_rwlock_tryrdlock(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_tryrdlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_tryrdlock(rwlock);
  return shim::read_lock(rwlock, shim::kTryOnly);
}

int pthread_rwlock_clockrdlock(pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime) {
  ShimEntry entry("pthread_rwlock_clockrdlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_clockrdlock(rwlock, clock, abstime);
  int err;
  sched::Nanos deadline = shim::deadline_of(clock, abstime, &err);
  return err ? err : shim::read_lock(rwlock, deadline);
}

int pthread_rwlock_timedrdlock(pthread_rwlock_t* rwlock, const struct timespec* abstime) {
  ShimEntry entry("pthread_rwlock_timedrdlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_timedrdlock(rwlock, abstime);
  int err;
  sched::Nanos deadline = shim::deadline_of(CLOCK_REALTIME, abstime, &err);
  return err ? err : shim::read_lock(rwlock, deadline);
}

int pthread_rwlock_wrlock(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_wrlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_wrlock(rwlock);
  return shim::write_lock(rwlock, sched::kNoDeadline);
}

int pthread_rwlock_trywrlock(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_trywrlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_trywrlock(rwlock);
  return shim::write_lock(rwlock, shim::kTryOnly);
}

int pthread_rwlock_clockwrlock(pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime) {
  ShimEntry entry("pthread_rwlock_clockwrlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_clockwrlock(rwlock, clock, abstime);
  int err;
  sched::Nanos deadline = shim::deadline_of(clock, abstime, &err);
  return err ? err : shim::write_lock(rwlock, deadline);
}

int pthread_rwlock_timedwrlock(pthread_rwlock_t* rwlock, const struct timespec* abstime) {
  ShimEntry entry("pthread_rwlock_timedwrlock");
  if (shim::state(rwlock)->shared) return libc::pthread_rwlock_timedwrlock(rwlock, abstime);
  int err;
  sched::Nanos deadline = shim::deadline_of(CLOCK_REALTIME, abstime, &err);
  return err ? err : shim::write_lock(rwlock, deadline);
}

int pthread_rwlock_unlock(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_unlock");
  shim::RwlockState* s = shim::state(rwlock);
  if (s->shared) return libc::pthread_rwlock_unlock(rwlock);
  shim::WordGuard guard(&s->guard);
  if (s->writer && s->writer == shim::owner_id()) {
    s->writer = 0;
  } else if (s->readers > 0) {
    --s->readers;
  } else {
    return EPERM;
  }
  shim::Release release = shim::decide_release(s);
  guard.unlock();
  shim::wake_released(s, release);
  return 0;
}

int pthread_rwlock_destroy(pthread_rwlock_t* rwlock) {
  ShimEntry entry("pthread_rwlock_destroy");
  shim::RwlockState* s = shim::state(rwlock);
  if (s->shared) return libc::pthread_rwlock_destroy(rwlock);
  shim::WordGuard guard(&s->guard);
  return (s->writer || s->readers) ? EBUSY : 0;
}

}  // extern "C"
