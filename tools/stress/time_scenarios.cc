// Scenarios on time: timed waits racing wake-ups, and sleeps. The check is strict: a wait that
// reports ETIMEDOUT, or a sleep that returns, must find its clock at or past the deadline. No slack:
// the kernel never wakes early, so a library that does has a bug (for example an absolute
// CLOCK_REALTIME deadline converted to a monotonic one with the clocks read in the wrong order).

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <unistd.h>

#include <vector>

#include "tools/stress/harness.h"

namespace stress {
namespace {

constexpr clockid_t kWaitClocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC};

const char* ClockName(clockid_t clock) {
  switch (clock) {
    case CLOCK_REALTIME: return "REALTIME";
    case CLOCK_MONOTONIC: return "MONOTONIC";
    case CLOCK_BOOTTIME: return "BOOTTIME";
    case CLOCK_TAI: return "TAI";
    default: return "?";
  }
}

// Checks a wait's outcome: 0 (woken or acquired) or ETIMEDOUT no earlier than the deadline.
void CheckTimedOutcome(Round& round, const char* call, int rc, clockid_t clock, int64_t deadline) {
  const int64_t now = Now(clock);
  if (rc == ETIMEDOUT) {
    if (now < deadline) {
      round.Fail("%s on %s returned ETIMEDOUT %lld ns before its deadline", call, ClockName(clock),
                 static_cast<long long>(deadline - now));
    } else {
      round.Latency(now - deadline);
    }
  } else if (rc != 0) {
    round.Fail("%s on %s: %s", call, ClockName(clock), strerror(rc));
  }
  round.Op();
}

// --- timedwait ------------------------------------------------------------------------------------

// What the waiters wait on; a waker thread signals, posts and releases at random moments, so
// wake-ups race the timeouts.
struct TimedObjects {
  pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond[2];  // cond[i] uses kWaitClocks[i] for pthread_cond_timedwait
  sem_t sem;
  pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;  // the waker holds it for random stretches
  pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;  // likewise, for writing
};

void TimedWaitOnce(Round& round, Rng& r, TimedObjects& o) {
  const int64_t delta = static_cast<int64_t>(r.Below(3000)) * kNsPerUs - 200 * kNsPerUs;  // some past
  const int which_clock = static_cast<int>(r.Below(2));
  const clockid_t clock = kWaitClocks[which_clock];
  const int64_t deadline = Now(clock) + delta;
  const timespec ts = ToTimespec(deadline);
  const bool realtime_api = clock == CLOCK_REALTIME;  // the *timed* calls take REALTIME deadlines
  int rc;
  switch (r.Below(5)) {
    case 0:  // condition variable
      pthread_mutex_lock(&o.cond_mutex);
      if (r.OneIn(2)) {
        rc = pthread_cond_timedwait(&o.cond[which_clock], &o.cond_mutex, &ts);
        pthread_mutex_unlock(&o.cond_mutex);
        CheckTimedOutcome(round, "pthread_cond_timedwait", rc, clock, deadline);
      } else {
        rc = pthread_cond_clockwait(&o.cond[r.Below(2)], &o.cond_mutex, clock, &ts);
        pthread_mutex_unlock(&o.cond_mutex);
        CheckTimedOutcome(round, "pthread_cond_clockwait", rc, clock, deadline);
      }
      return;
    case 1:  // semaphore
      rc = realtime_api && r.OneIn(2) ? sem_timedwait(&o.sem, &ts) : sem_clockwait(&o.sem, clock, &ts);
      CheckTimedOutcome(round, "sem_timedwait/clockwait", rc == 0 ? 0 : errno, clock, deadline);
      return;
    case 2:  // mutex
      rc = realtime_api && r.OneIn(2) ? pthread_mutex_timedlock(&o.held, &ts)
                                      : pthread_mutex_clocklock(&o.held, clock, &ts);
      if (rc == 0) pthread_mutex_unlock(&o.held);
      CheckTimedOutcome(round, "pthread_mutex_timedlock/clocklock", rc, clock, deadline);
      return;
    case 3:  // rwlock, read side against the waker's write lock
      rc = realtime_api && r.OneIn(2) ? pthread_rwlock_timedrdlock(&o.rwlock, &ts)
                                      : pthread_rwlock_clockrdlock(&o.rwlock, clock, &ts);
      if (rc == 0) pthread_rwlock_unlock(&o.rwlock);
      CheckTimedOutcome(round, "pthread_rwlock_timedrdlock/clockrdlock", rc, clock, deadline);
      return;
    default: {  // join of a thread that sleeps around the deadline
      pthread_t t;
      auto* nap = new int64_t(static_cast<int64_t>(r.Below(2000)) * kNsPerUs);
      rc = pthread_create(&t, nullptr, [](void* p) -> void* {
        SleepNs(*static_cast<int64_t*>(p));
        delete static_cast<int64_t*>(p);
        return nullptr;
      }, nap);
      if (rc != 0) {
        delete nap;
        round.Fail("pthread_create: %s", strerror(rc));
        return;
      }
      rc = realtime_api && r.OneIn(2) ? pthread_timedjoin_np(t, nullptr, &ts)
                                      : pthread_clockjoin_np(t, nullptr, clock, &ts);
      CheckTimedOutcome(round, "pthread_timedjoin_np/clockjoin_np", rc, clock, deadline);
      if (rc == ETIMEDOUT) pthread_join(t, nullptr);
      return;
    }
  }
}

void TimedWaitRound(Round& round) {
  Rng rng(round.seed());
  const int waiters = rng.Range(1, std::max(1, round.max_threads() - 1));
  const int ops = rng.Range(20, 200);
  TimedObjects o;
  for (int i = 0; i < 2; ++i) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, kWaitClocks[i]);
    pthread_cond_init(&o.cond[i], &attr);
    pthread_condattr_destroy(&attr);
  }
  sem_init(&o.sem, 0, 0);
  std::atomic<int> waiters_left{waiters};
  RunThreads(round, waiters + 1, [&](int self) {
    Rng r(rng.Fork(self));
    if (self < waiters) {
      for (int op = 0; op < ops && !round.Stopping(); ++op) TimedWaitOnce(round, r, o);
      waiters_left.fetch_sub(1);
      return;
    }
    while (waiters_left.load() > 0) {
      SleepNs(static_cast<int64_t>(r.Below(1500)) * kNsPerUs);
      switch (r.Below(4)) {
        case 0:
          pthread_mutex_lock(&o.cond_mutex);
          pthread_cond_signal(&o.cond[r.Below(2)]);
          pthread_mutex_unlock(&o.cond_mutex);
          break;
        case 1:
          pthread_cond_broadcast(&o.cond[r.Below(2)]);  // without the mutex, as POSIX allows
          break;
        case 2:
          sem_post(&o.sem);
          break;
        default: {
          const bool write = r.OneIn(2);
          write ? pthread_rwlock_wrlock(&o.rwlock) : pthread_mutex_lock(&o.held);
          SleepNs(static_cast<int64_t>(r.Below(2000)) * kNsPerUs);
          write ? pthread_rwlock_unlock(&o.rwlock) : pthread_mutex_unlock(&o.held);
        }
      }
    }
  });
  for (pthread_cond_t& c : o.cond) pthread_cond_destroy(&c);
  sem_destroy(&o.sem);
}

Register timedwait_scenario({"timedwait",
                             "cond timed/clock waits, sem_timedwait/clockwait, mutex/rwlock timed "
                             "and clock locks, timed/clock joins, on REALTIME and MONOTONIC, racing "
                             "a waker: ETIMEDOUT never before the deadline",
                             "overshoot past the deadline on ETIMEDOUT", "", TimedWaitRound});

// --- sleep ----------------------------------------------------------------------------------------

constexpr clockid_t kSleepClocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI};

void SleepOnce(Round& round, Rng& r) {
  const int64_t ns = static_cast<int64_t>(r.Below(2000)) * kNsPerUs + static_cast<int64_t>(r.Below(1000));
  const clockid_t clock = kSleepClocks[r.Below(4)];
  const char* call;
  int64_t late;  // how far past the earliest allowed return; negative = early
  switch (r.Below(4)) {
    case 0: {
      call = "nanosleep";
      const int64_t start = Now();
      timespec ts = ToTimespec(ns);
      if (nanosleep(&ts, nullptr) != 0) round.Fail("nanosleep: %s", strerror(errno));
      late = Now() - start - ns;
      break;
    }
    case 1: {
      call = "usleep";
      const int64_t us = ns / kNsPerUs;
      const int64_t start = Now();
      if (usleep(static_cast<useconds_t>(us)) != 0) round.Fail("usleep: %s", strerror(errno));
      late = Now() - start - us * kNsPerUs;
      break;
    }
    case 2: {
      // Relative sleeps run on the clock's rate, which for all four is the monotonic rate; BOOTTIME
      // also counts suspend, so measure it on itself.
      call = "clock_nanosleep relative";
      const clockid_t measure = clock == CLOCK_BOOTTIME ? CLOCK_BOOTTIME : CLOCK_MONOTONIC;
      const int64_t start = Now(measure);
      timespec ts = ToTimespec(ns);
      if (int rc = clock_nanosleep(clock, 0, &ts, nullptr); rc != 0) {
        round.Fail("clock_nanosleep relative on %s: %s", ClockName(clock), strerror(rc));
      }
      late = Now(measure) - start - ns;
      break;
    }
    default: {
      call = "clock_nanosleep TIMER_ABSTIME";
      const int64_t deadline = Now(clock) + ns;
      timespec ts = ToTimespec(deadline);
      if (int rc = clock_nanosleep(clock, TIMER_ABSTIME, &ts, nullptr); rc != 0) {
        round.Fail("clock_nanosleep absolute on %s: %s", ClockName(clock), strerror(rc));
      }
      late = Now(clock) - deadline;
      break;
    }
  }
  if (late < 0) {
    round.Fail("%s on %s for %lld ns returned %lld ns early", call, ClockName(clock),
               static_cast<long long>(ns), static_cast<long long>(-late));
  } else {
    round.Latency(late);
  }
  round.Op();
}

void SleepRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(1, round.max_threads());
  const int ops = rng.Range(20, 200);
  RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    for (int op = 0; op < ops && !round.Stopping(); ++op) SleepOnce(round, r);
  });
}

Register sleep_scenario({"sleep",
                         "nanosleep, usleep, clock_nanosleep relative and TIMER_ABSTIME on "
                         "REALTIME, MONOTONIC, BOOTTIME and TAI: never returns early",
                         "overshoot past the requested time", "", SleepRound});

}  // namespace
}  // namespace stress
