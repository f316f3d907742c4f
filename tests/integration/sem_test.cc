// POSIX semaphores inside one process: counting, error codes (EAGAIN, ETIMEDOUT, EINVAL,
// EOVERFLOW), timeouts on both clocks, blocking waits woken by a post after a sleep, a bounded
// buffer, and the named-semaphore calls' errors. Sharing with a forked child is in
// pshared_fork_test.cc.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::DeadlineIn;
using vthread_test::kNsPerMs;
using vthread_test::NowNs;

int Value(sem_t* s) {
  int v = -12345;
  EXPECT_EQ(sem_getvalue(s, &v), 0);
  return v;
}

// sem_* report errors through errno; returns 0 or the errno of a -1 return.
int Err(int r) { return r == 0 ? 0 : (r == -1 ? errno : -1000 - r); }

TEST(Sem, CountsPostsAndWaits) {
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 2), 0);
  EXPECT_EQ(Value(&s), 2);
  EXPECT_EQ(Err(sem_wait(&s)), 0);
  EXPECT_EQ(Err(sem_trywait(&s)), 0);
  EXPECT_EQ(Value(&s), 0);
  EXPECT_EQ(Err(sem_trywait(&s)), EAGAIN);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Err(sem_post(&s)), 0);
  EXPECT_EQ(Value(&s), 5);
  std::thread([&] {
    for (int i = 0; i < 5; ++i) EXPECT_EQ(Err(sem_trywait(&s)), 0);
    EXPECT_EQ(Err(sem_trywait(&s)), EAGAIN);
  }).join();
  EXPECT_EQ(Value(&s), 0);
  EXPECT_EQ(sem_destroy(&s), 0);
}

TEST(Sem, InitBeyondMaxIsInvalidAndPostOverflows) {
  sem_t s;
  errno = 0;
  EXPECT_EQ(sem_init(&s, 0, static_cast<unsigned>(SEM_VALUE_MAX) + 1u), -1);
  EXPECT_EQ(errno, EINVAL);
  ASSERT_EQ(sem_init(&s, 0, SEM_VALUE_MAX - 1), 0);
  EXPECT_EQ(Err(sem_post(&s)), 0);
  EXPECT_EQ(Value(&s), SEM_VALUE_MAX);
  EXPECT_EQ(Err(sem_post(&s)), EOVERFLOW);
  EXPECT_EQ(Value(&s), SEM_VALUE_MAX);  // the failed post changed nothing
  EXPECT_EQ(Err(sem_trywait(&s)), 0);
  EXPECT_EQ(Value(&s), SEM_VALUE_MAX - 1);
  EXPECT_EQ(sem_destroy(&s), 0);
}

TEST(Sem, TimedWaitsTimeOutOnBothClocks) {
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 0), 0);
  int64_t start = NowNs();
  timespec d = DeadlineIn(30 * kNsPerMs);
  EXPECT_EQ(Err(sem_timedwait(&s, &d)), ETIMEDOUT);
  EXPECT_GE(NowNs() - start, 29 * kNsPerMs);
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    start = NowNs();
    d = DeadlineIn(30 * kNsPerMs, clock);
    EXPECT_EQ(Err(sem_clockwait(&s, clock, &d)), ETIMEDOUT);
    EXPECT_GE(NowNs() - start, 29 * kNsPerMs);
  }
  // A deadline already in the past fails at once; it still takes an available unit first.
  timespec past = {1, 0};
  EXPECT_EQ(Err(sem_timedwait(&s, &past)), ETIMEDOUT);
  ASSERT_EQ(sem_post(&s), 0);
  EXPECT_EQ(Err(sem_timedwait(&s, &past)), 0);
  EXPECT_EQ(Value(&s), 0);
  EXPECT_EQ(sem_destroy(&s), 0);
}

TEST(Sem, BadTimespecOrClockIsInvalidEvenWhenAUnitIsAvailable) {
  // glibc validates tv_nsec and the clock before looking at the count.
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 1), 0);
  for (long nsec : {-1L, 1000000000L}) {
    timespec bad = DeadlineIn(kNsPerMs);
    bad.tv_nsec = nsec;
    EXPECT_EQ(Err(sem_timedwait(&s, &bad)), EINVAL);
    EXPECT_EQ(Err(sem_clockwait(&s, CLOCK_MONOTONIC, &bad)), EINVAL);
  }
  timespec ok = DeadlineIn(kNsPerMs, CLOCK_MONOTONIC);
  for (clockid_t clock : {CLOCK_PROCESS_CPUTIME_ID, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW}) {
    EXPECT_EQ(Err(sem_clockwait(&s, clock, &ok)), EINVAL) << clock;
  }
  EXPECT_EQ(Value(&s), 1);
  EXPECT_EQ(sem_destroy(&s), 0);
}

TEST(Sem, BlockedWaitersAreWokenByPostsAfterASleep) {
  // Every kind of wait blocks first and is woken by a post from a thread that slept.
  constexpr int kWaiters = 6;
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 0), 0);
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      timespec d;
      int r;
      switch (i % 3) {
        case 0:
          r = sem_wait(&s);
          break;
        case 1:
          d = DeadlineIn(10 * vthread_test::kNsPerSec);
          r = sem_timedwait(&s, &d);
          break;
        default:
          d = DeadlineIn(10 * vthread_test::kNsPerSec, CLOCK_MONOTONIC);
          r = sem_clockwait(&s, CLOCK_MONOTONIC, &d);
          break;
      }
      EXPECT_EQ(Err(r), 0) << "waiter " << i;
      woken++;
    });
  }
  usleep(30000);
  EXPECT_EQ(woken.load(), 0);
  EXPECT_EQ(Value(&s), 0);  // glibc reports 0, never a negative count, while threads wait
  std::thread poster([&] {
    for (int i = 0; i < kWaiters; ++i) {
      usleep(2000);
      ASSERT_EQ(sem_post(&s), 0);
    }
  });
  poster.join();
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), kWaiters);
  EXPECT_EQ(Value(&s), 0);
  EXPECT_EQ(sem_destroy(&s), 0);
}

TEST(Sem, BoundedBufferLosesAndDuplicatesNothing) {
  // Classic three-semaphore ring buffer: `slots` and `items` count, `lock` is a binary semaphore.
  constexpr int kSize = 4, kProducers = 4, kConsumers = 4, kItems = 4000;
  long ring[kSize];
  int head = 0, tail = 0;
  sem_t slots, items, lock;
  ASSERT_EQ(sem_init(&slots, 0, kSize), 0);
  ASSERT_EQ(sem_init(&items, 0, 0), 0);
  ASSERT_EQ(sem_init(&lock, 0, 1), 0);
  std::vector<std::atomic<int>> seen(kProducers * kItems);
  std::atomic<int> in_lock{0}, violations{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kItems; ++i) {
        sem_wait(&slots);
        sem_wait(&lock);
        if (in_lock.fetch_add(1) != 0) violations++;
        ring[tail] = long{p} * kItems + i;
        tail = (tail + 1) % kSize;
        in_lock--;
        sem_post(&lock);
        sem_post(&items);
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      for (int i = 0; i < kItems; ++i) {  // consumers take exactly as many as producers make
        sem_wait(&items);
        sem_wait(&lock);
        if (in_lock.fetch_add(1) != 0) violations++;
        long v = ring[head];
        head = (head + 1) % kSize;
        in_lock--;
        sem_post(&lock);
        sem_post(&slots);
        seen[v]++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  int missing = 0, duplicated = 0;
  for (auto& n : seen) {
    missing += n.load() == 0;
    duplicated += n.load() > 1;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(Value(&slots), kSize);
  EXPECT_EQ(Value(&items), 0);
  EXPECT_EQ(Value(&lock), 1);
  for (sem_t* s : {&slots, &items, &lock}) EXPECT_EQ(sem_destroy(s), 0);
}

TEST(Sem, ManyPostersAndWaitersConserveUnits) {
  // 8 threads post 5000 units each while 8 threads take 5000 each with trywait/wait mixed.
  constexpr int kThreads = 8, kUnits = 5000;
  sem_t s;
  ASSERT_EQ(sem_init(&s, 0, 0), 0);
  std::atomic<long> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kUnits; ++i) sem_post(&s);
    });
    threads.emplace_back([&] {
      for (int i = 0; i < kUnits; ++i) {
        if (sem_trywait(&s) != 0) {
          ASSERT_EQ(errno, EAGAIN);
          ASSERT_EQ(sem_wait(&s), 0);
        }
        taken++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), long{kThreads} * kUnits);
  EXPECT_EQ(Value(&s), 0);
  EXPECT_EQ(sem_destroy(&s), 0);
}

// A name no other test process uses (the native and vthread variants may run at the same time).
std::string UniqueName(const char* what) {
  return "/vthread_sem_test_" + std::to_string(getpid()) + "_" + what;
}

TEST(NamedSem, OpenCreateExclusiveCloseUnlinkAndTheirErrors) {
  const std::string name = UniqueName("errors");
  sem_unlink(name.c_str());
  errno = 0;
  EXPECT_EQ(sem_open(name.c_str(), 0), SEM_FAILED);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(sem_unlink(name.c_str()), -1);
  EXPECT_EQ(errno, ENOENT);

  sem_t* s = sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 3);
  ASSERT_NE(s, SEM_FAILED) << strerror(errno);
  errno = 0;
  EXPECT_EQ(sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 0), SEM_FAILED);
  EXPECT_EQ(errno, EEXIST);
  // Creating with a value beyond SEM_VALUE_MAX fails (glibc checks it only when it creates).
  const std::string other = UniqueName("toobig");
  errno = 0;
  EXPECT_EQ(sem_open(other.c_str(), O_CREAT | O_EXCL, 0600, SEM_VALUE_MAX + 1u), SEM_FAILED);
  EXPECT_EQ(errno, EINVAL);

  // Opening it again (O_CREAT alone ignores the value, even an invalid one) gives the same
  // semaphore.
  sem_t* again = sem_open(name.c_str(), O_CREAT, 0600, SEM_VALUE_MAX + 1u);
  ASSERT_NE(again, SEM_FAILED);
  EXPECT_EQ(Value(again), 3);
  EXPECT_EQ(Err(sem_wait(s)), 0);
  EXPECT_EQ(Value(again), 2);
  std::thread([&] { EXPECT_EQ(Err(sem_trywait(again)), 0); }).join();
  EXPECT_EQ(Value(s), 1);
  EXPECT_EQ(sem_close(again), 0);

  EXPECT_EQ(sem_unlink(name.c_str()), 0);
  EXPECT_EQ(Value(s), 1);  // still usable through the open handle after unlink
  errno = 0;
  EXPECT_EQ(sem_open(name.c_str(), 0), SEM_FAILED);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(sem_close(s), 0);
}

TEST(NamedSem, ThreadsBlockAndWakeThroughANamedSemaphore) {
  const std::string name = UniqueName("wake");
  sem_unlink(name.c_str());
  sem_t* s = sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 0);
  ASSERT_NE(s, SEM_FAILED) << strerror(errno);
  ASSERT_EQ(sem_unlink(name.c_str()), 0);
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      timespec d = DeadlineIn(10 * vthread_test::kNsPerSec);
      EXPECT_EQ(Err(sem_timedwait(s, &d)), 0);
      woken++;
    });
  }
  usleep(20000);
  EXPECT_EQ(woken.load(), 0);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(sem_post(s), 0);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), 4);
  EXPECT_EQ(sem_close(s), 0);
}

}  // namespace
