// Read-write locks, barriers and spinlocks: glibc's initializers and error codes, the exclusion
// invariants under contention, writer preference, barrier serial threads over many cycles, and
// holders that sleep or yield (which would deadlock a carrier-blocking implementation on one
// carrier). Mutexes and condition variables are covered by sync_test.cc.
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::DeadlineIn;
using vthread_test::kNsPerMs;
using vthread_test::NowNs;
using vthread_test::PollUntil;

// Runs `fn` on a new thread and returns its result: a lock attempt "from another thread".
int FromOtherThread(const std::function<int()>& fn) {
  int r = -1;
  std::thread([&] { r = fn(); }).join();
  return r;
}

// --- rwlocks -------------------------------------------------------------------------------------

TEST(RwLock, StaticInitializersReadRecursivelyAndWrite) {
  pthread_rwlock_t plain = PTHREAD_RWLOCK_INITIALIZER;
  pthread_rwlock_t writer = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  for (pthread_rwlock_t* l : {&plain, &writer}) {
    EXPECT_EQ(pthread_rwlock_rdlock(l), 0);
    EXPECT_EQ(pthread_rwlock_rdlock(l), 0);  // no writer waits, so a second read lock is fine
    EXPECT_EQ(pthread_rwlock_tryrdlock(l), 0);
    EXPECT_EQ(FromOtherThread([l] { return pthread_rwlock_trywrlock(l); }), EBUSY);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(pthread_rwlock_unlock(l), 0);
    EXPECT_EQ(pthread_rwlock_wrlock(l), 0);
    EXPECT_EQ(pthread_rwlock_unlock(l), 0);
    EXPECT_EQ(pthread_rwlock_trywrlock(l), 0);
    EXPECT_EQ(pthread_rwlock_unlock(l), 0);
    EXPECT_EQ(pthread_rwlock_destroy(l), 0);
  }
}

TEST(RwLock, WriterOwnerGetsEdeadlkAndOthersGetEbusyOrTimeout) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(pthread_rwlock_wrlock(&l), 0);
  // glibc remembers the writer's tid and reports its own deadlocks, including the timed forms.
  EXPECT_EQ(pthread_rwlock_wrlock(&l), EDEADLK);
  EXPECT_EQ(pthread_rwlock_rdlock(&l), EDEADLK);
  timespec far = DeadlineIn(10 * vthread_test::kNsPerSec);
  EXPECT_EQ(pthread_rwlock_timedwrlock(&l, &far), EDEADLK);
  EXPECT_EQ(pthread_rwlock_timedrdlock(&l, &far), EDEADLK);
  EXPECT_EQ(pthread_rwlock_trywrlock(&l), EBUSY);
  EXPECT_EQ(pthread_rwlock_tryrdlock(&l), EBUSY);
  std::thread([&] {
    EXPECT_EQ(pthread_rwlock_trywrlock(&l), EBUSY);
    EXPECT_EQ(pthread_rwlock_tryrdlock(&l), EBUSY);
    for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
      int64_t start = NowNs();
      timespec d = DeadlineIn(30 * kNsPerMs, clock);
      EXPECT_EQ(pthread_rwlock_clockrdlock(&l, clock, &d), ETIMEDOUT);
      d = DeadlineIn(30 * kNsPerMs, clock);
      EXPECT_EQ(pthread_rwlock_clockwrlock(&l, clock, &d), ETIMEDOUT);
      EXPECT_GE(NowNs() - start, 59 * kNsPerMs);
    }
    timespec d = DeadlineIn(10 * kNsPerMs);
    EXPECT_EQ(pthread_rwlock_timedrdlock(&l, &d), ETIMEDOUT);
    d = DeadlineIn(10 * kNsPerMs);
    EXPECT_EQ(pthread_rwlock_timedwrlock(&l, &d), ETIMEDOUT);
  }).join();
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
  EXPECT_EQ(pthread_rwlock_destroy(&l), 0);
}

TEST(RwLock, ReaderHeldLockTimesOutWritersButAdmitsReaders) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
  std::thread([&] {
    EXPECT_EQ(pthread_rwlock_trywrlock(&l), EBUSY);
    timespec d = DeadlineIn(20 * kNsPerMs, CLOCK_MONOTONIC);
    EXPECT_EQ(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &d), ETIMEDOUT);
    d = DeadlineIn(20 * kNsPerMs);
    EXPECT_EQ(pthread_rwlock_timedwrlock(&l, &d), ETIMEDOUT);
    d = DeadlineIn(20 * kNsPerMs);
    EXPECT_EQ(pthread_rwlock_timedrdlock(&l, &d), 0);
    EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
  }).join();
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
}

TEST(RwLock, TimedFormsRejectBadClockAndNanosecondsEvenWhenFree) {
  // glibc checks the clock and the timespec before trying the lock, unlike pthread_mutex_timedlock.
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  timespec ok = DeadlineIn(10 * kNsPerMs, CLOCK_MONOTONIC);
  for (long nsec : {-1L, 1000000000L}) {
    timespec bad = {ok.tv_sec, nsec};
    EXPECT_EQ(pthread_rwlock_timedrdlock(&l, &bad), EINVAL);
    EXPECT_EQ(pthread_rwlock_timedwrlock(&l, &bad), EINVAL);
    EXPECT_EQ(pthread_rwlock_clockrdlock(&l, CLOCK_MONOTONIC, &bad), EINVAL);
    EXPECT_EQ(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &bad), EINVAL);
  }
  for (clockid_t clock : {CLOCK_PROCESS_CPUTIME_ID, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW}) {
    EXPECT_EQ(pthread_rwlock_clockrdlock(&l, clock, &ok), EINVAL) << clock;
    EXPECT_EQ(pthread_rwlock_clockwrlock(&l, clock, &ok), EINVAL) << clock;
  }
  // None of the failures left the lock held.
  EXPECT_EQ(pthread_rwlock_trywrlock(&l), 0);
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
}

TEST(RwLock, ReadersHoldTheLockTogether) {
  // Every reader waits inside the read lock until all of them are inside: a lock that admitted
  // only one reader at a time would never get there.
  constexpr int kReaders = 8;
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  std::atomic<int> inside{0};
  std::atomic<int> all_met{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) {
    threads.emplace_back([&] {
      ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
      inside++;
      if (PollUntil([&] { return inside.load() == kReaders; }, 10000)) all_met++;
      ASSERT_EQ(pthread_rwlock_unlock(&l), 0);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(all_met.load(), kReaders);
}

// 8 readers and 4 writers; a writer must be alone, a reader must never see a writer inside.
void ReadersAndWritersExclude(pthread_rwlock_t* l) {
  constexpr int kReaders = 8, kWriters = 4, kIters = 3000;
  std::atomic<int> readers_in{0};
  std::atomic<bool> writer_in{false};
  std::atomic<int> violations{0};
  long written = 0;  // protected by the write lock only
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        ASSERT_EQ(pthread_rwlock_wrlock(l), 0);
        if (writer_in.exchange(true) || readers_in.load() != 0) violations++;
        long v = written;
        if (i % 100 == 0) sched_yield();  // hold it across a switch now and then
        written = v + 1;
        writer_in.store(false);
        ASSERT_EQ(pthread_rwlock_unlock(l), 0);
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        ASSERT_EQ(pthread_rwlock_rdlock(l), 0);
        readers_in++;
        if (writer_in.load()) violations++;
        if (i % 100 == 0) sched_yield();
        if (writer_in.load()) violations++;
        readers_in--;
        ASSERT_EQ(pthread_rwlock_unlock(l), 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(written, long{kWriters} * kIters);
}

TEST(RwLock, ReadersAndWritersExcludeUnderContentionDefaultKind) {
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ReadersAndWritersExclude(&l);
  EXPECT_EQ(pthread_rwlock_destroy(&l), 0);
}

TEST(RwLock, ReadersAndWritersExcludeUnderContentionPreferWriter) {
  pthread_rwlockattr_t attr;
  ASSERT_EQ(pthread_rwlockattr_init(&attr), 0);
  ASSERT_EQ(pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), 0);
  pthread_rwlock_t l;
  ASSERT_EQ(pthread_rwlock_init(&l, &attr), 0);
  ReadersAndWritersExclude(&l);
  EXPECT_EQ(pthread_rwlock_destroy(&l), 0);
  pthread_rwlockattr_destroy(&attr);
}

TEST(RwLock, DefaultKindLetsNewReadersPassAWaitingWriter) {
  // glibc's default is PTHREAD_RWLOCK_PREFER_READER_NP: a waiting writer does not stop new readers.
  pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
  std::atomic<bool> wrote{false};
  std::thread writer([&] {
    ASSERT_EQ(pthread_rwlock_wrlock(&l), 0);
    wrote = true;
    ASSERT_EQ(pthread_rwlock_unlock(&l), 0);
  });
  usleep(30000);  // let the writer block
  EXPECT_EQ(FromOtherThread([&] {
              int r = pthread_rwlock_tryrdlock(&l);
              if (r == 0) pthread_rwlock_unlock(&l);
              return r;
            }),
            0);
  EXPECT_FALSE(wrote.load());
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
  writer.join();
  EXPECT_TRUE(wrote.load());
}

TEST(RwLock, PreferWriterStopsNewReadersOnceAWriterWaits) {
  pthread_rwlockattr_t attr;
  ASSERT_EQ(pthread_rwlockattr_init(&attr), 0);
  ASSERT_EQ(pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP), 0);
  int kind = -1;
  ASSERT_EQ(pthread_rwlockattr_getkind_np(&attr, &kind), 0);
  EXPECT_EQ(kind, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_t l;
  ASSERT_EQ(pthread_rwlock_init(&l, &attr), 0);

  ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
  std::atomic<int> order{0}, writer_pos{0}, reader_pos{0};
  std::thread writer([&] {
    ASSERT_EQ(pthread_rwlock_wrlock(&l), 0);
    writer_pos = ++order;
    usleep(10000);
    ASSERT_EQ(pthread_rwlock_unlock(&l), 0);
  });
  // Until the writer waits, a new reader gets in; afterwards it must be refused.
  auto try_read = [&] {
    int r = pthread_rwlock_tryrdlock(&l);
    if (r == 0) pthread_rwlock_unlock(&l);
    return r;
  };
  EXPECT_TRUE(PollUntil([&] { return FromOtherThread(try_read) == EBUSY; }, 10000));
  // A blocking reader queues behind the writer.
  std::thread reader([&] {
    ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
    reader_pos = ++order;
    ASSERT_EQ(pthread_rwlock_unlock(&l), 0);
  });
  usleep(20000);
  EXPECT_EQ(order.load(), 0);  // nobody got past the reader we still hold
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
  writer.join();
  reader.join();
  EXPECT_EQ(writer_pos.load(), 1);
  EXPECT_EQ(reader_pos.load(), 2);
  EXPECT_EQ(pthread_rwlock_destroy(&l), 0);
  pthread_rwlockattr_destroy(&attr);
}

TEST(RwLock, WriterThatTimesOutStopsBlockingReaders) {
  // With writer preference, a waiting writer holds readers back; once it gives up, they pass again.
  pthread_rwlock_t l = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  ASSERT_EQ(pthread_rwlock_rdlock(&l), 0);
  std::thread([&] {
    timespec d = DeadlineIn(30 * kNsPerMs, CLOCK_MONOTONIC);
    EXPECT_EQ(pthread_rwlock_clockwrlock(&l, CLOCK_MONOTONIC, &d), ETIMEDOUT);
  }).join();
  EXPECT_EQ(FromOtherThread([&] {
              int r = pthread_rwlock_tryrdlock(&l);
              if (r == 0) pthread_rwlock_unlock(&l);
              return r;
            }),
            0);
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
  EXPECT_EQ(pthread_rwlock_trywrlock(&l), 0);
  EXPECT_EQ(pthread_rwlock_unlock(&l), 0);
}

// --- barriers ------------------------------------------------------------------------------------

TEST(Barrier, CountZeroIsInvalidAndCountOneNeverWaits) {
  pthread_barrier_t b;
  EXPECT_EQ(pthread_barrier_init(&b, nullptr, 0), EINVAL);
  ASSERT_EQ(pthread_barrier_init(&b, nullptr, 1), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(pthread_barrier_wait(&b), PTHREAD_BARRIER_SERIAL_THREAD);
  EXPECT_EQ(pthread_barrier_destroy(&b), 0);
}

TEST(Barrier, ExactlyOneSerialThreadPerCycleAndNobodyLeavesEarly) {
  constexpr int kThreads = 8, kCycles = 300;
  pthread_barrier_t b;
  ASSERT_EQ(pthread_barrier_init(&b, nullptr, kThreads), 0);
  std::vector<std::atomic<int>> arrived(kCycles), serial(kCycles);
  std::atomic<int> early{0}, bad_return{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCycles; ++c) {
        arrived[c]++;
        if ((c + t) % 50 == 0) usleep(200);  // a straggler now and then
        int r = pthread_barrier_wait(&b);
        if (r == PTHREAD_BARRIER_SERIAL_THREAD) {
          serial[c]++;
        } else if (r != 0) {
          bad_return++;
        }
        if (arrived[c].load() != kThreads) early++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(early.load(), 0);
  EXPECT_EQ(bad_return.load(), 0);
  for (int c = 0; c < kCycles; ++c) ASSERT_EQ(serial[c].load(), 1) << "cycle " << c;
  EXPECT_EQ(pthread_barrier_destroy(&b), 0);
}

TEST(Barrier, WaitersBlockUntilTheSleepingLastArrival) {
  constexpr int kThreads = 5;
  pthread_barrier_t b;
  ASSERT_EQ(pthread_barrier_init(&b, nullptr, kThreads), 0);
  std::atomic<int> passed_early{0};
  std::atomic<bool> last_arrived{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads - 1; ++i) {
    threads.emplace_back([&] {
      pthread_barrier_wait(&b);
      if (!last_arrived.load()) passed_early++;
    });
  }
  usleep(50000);
  last_arrived = true;
  pthread_barrier_wait(&b);
  for (auto& t : threads) t.join();
  EXPECT_EQ(passed_early.load(), 0);
  EXPECT_EQ(pthread_barrier_destroy(&b), 0);
}

// --- spinlocks -----------------------------------------------------------------------------------

TEST(Spinlock, TrylockReportsBusyAndLockIsExclusive) {
  for (int pshared : {PTHREAD_PROCESS_PRIVATE, PTHREAD_PROCESS_SHARED}) {
    pthread_spinlock_t s;
    ASSERT_EQ(pthread_spin_init(&s, pshared), 0);
    EXPECT_EQ(pthread_spin_trylock(&s), 0);
    EXPECT_EQ(pthread_spin_trylock(&s), EBUSY);
    EXPECT_EQ(FromOtherThread([&] { return pthread_spin_trylock(&s); }), EBUSY);
    EXPECT_EQ(pthread_spin_unlock(&s), 0);
    EXPECT_EQ(FromOtherThread([&] {
                int r = pthread_spin_trylock(&s);
                if (r == 0) pthread_spin_unlock(&s);
                return r;
              }),
              0);
    EXPECT_EQ(pthread_spin_lock(&s), 0);
    EXPECT_EQ(pthread_spin_unlock(&s), 0);
    EXPECT_EQ(pthread_spin_destroy(&s), 0);
  }
}

TEST(Spinlock, ContendedCounterLosesNoUpdatesEvenWhenHoldersYield) {
  pthread_spinlock_t s;
  ASSERT_EQ(pthread_spin_init(&s, PTHREAD_PROCESS_PRIVATE), 0);
  constexpr int kThreads = 8, kIters = 20000;
  long counter = 0;
  std::atomic<int> inside{0}, violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        pthread_spin_lock(&s);
        if (inside.fetch_add(1) != 0) violations++;
        long v = counter;
        if (i % 2000 == 0) sched_yield();  // on one carrier the spinners must let us run again
        counter = v + 1;
        inside--;
        pthread_spin_unlock(&s);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(counter, long{kThreads} * kIters);
  EXPECT_EQ(pthread_spin_destroy(&s), 0);
}

TEST(Spinlock, HolderThatSleepsDoesNotDeadlockSpinners) {
  // With one carrier, spinners that never gave up the carrier would keep the sleeping holder from
  // ever waking to unlock.
  pthread_spinlock_t s;
  ASSERT_EQ(pthread_spin_init(&s, PTHREAD_PROCESS_PRIVATE), 0);
  std::atomic<int> done{0};
  std::atomic<bool> released{false};
  std::atomic<int> too_early{0};
  ASSERT_EQ(pthread_spin_lock(&s), 0);
  std::vector<std::thread> spinners;
  for (int i = 0; i < 4; ++i) {
    spinners.emplace_back([&] {
      pthread_spin_lock(&s);
      if (!released.load()) too_early++;
      usleep(1000);  // sleep while holding, too
      done++;
      pthread_spin_unlock(&s);
    });
  }
  usleep(30000);
  released = true;
  pthread_spin_unlock(&s);
  for (auto& t : spinners) t.join();
  EXPECT_EQ(done.load(), 4);
  EXPECT_EQ(too_early.load(), 0);
  EXPECT_EQ(pthread_spin_destroy(&s), 0);
}

}  // namespace
