// Mutexes and condition variables: glibc's static initializers and error codes, no lost updates or
// wake-ups under contention, timeouts on both clocks, and the case a carrier-blocking mutex would
// deadlock (a holder that sleeps, with one carrier).
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace {

struct timespec after_ms(clockid_t clock, long ms) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  return ts;
}

double ms_since(const struct timespec& start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start.tv_sec) * 1e3 + (now.tv_nsec - start.tv_nsec) / 1e6;
}

TEST(Mutex, StaticInitializersOfEveryType) {
  pthread_mutex_t normal = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_t recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  pthread_mutex_t errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
  for (pthread_mutex_t* m : {&normal, &recursive, &errorcheck, &adaptive}) {
    EXPECT_EQ(pthread_mutex_lock(m), 0);
    EXPECT_EQ(pthread_mutex_unlock(m), 0);
    EXPECT_EQ(pthread_mutex_trylock(m), 0);
    EXPECT_EQ(pthread_mutex_unlock(m), 0);
    EXPECT_EQ(pthread_mutex_destroy(m), 0);
  }
}

TEST(Mutex, RecursiveCountsAndErrorcheckReportsMisuse) {
  pthread_mutex_t r = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
  EXPECT_EQ(pthread_mutex_lock(&r), 0);
  EXPECT_EQ(pthread_mutex_lock(&r), 0);
  EXPECT_EQ(pthread_mutex_trylock(&r), 0);
  EXPECT_EQ(pthread_mutex_unlock(&r), 0);
  EXPECT_EQ(pthread_mutex_unlock(&r), 0);
  std::thread([&] { EXPECT_EQ(pthread_mutex_trylock(&r), EBUSY); }).join();
  EXPECT_EQ(pthread_mutex_unlock(&r), 0);
  EXPECT_EQ(pthread_mutex_unlock(&r), EPERM);

  pthread_mutex_t e = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
  EXPECT_EQ(pthread_mutex_unlock(&e), EPERM);
  EXPECT_EQ(pthread_mutex_lock(&e), 0);
  EXPECT_EQ(pthread_mutex_lock(&e), EDEADLK);
  EXPECT_EQ(pthread_mutex_trylock(&e), EBUSY);
  std::thread([&] { EXPECT_EQ(pthread_mutex_unlock(&e), EPERM); }).join();
  EXPECT_EQ(pthread_mutex_destroy(&e), EBUSY);
  EXPECT_EQ(pthread_mutex_unlock(&e), 0);
  EXPECT_EQ(pthread_mutex_destroy(&e), 0);
}

TEST(Mutex, NormalMutexMayBeUnlockedByAnotherThread) {
  // Programs (threadring) use a default mutex as a binary semaphore; glibc allows it.
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  ASSERT_EQ(pthread_mutex_lock(&m), 0);
  std::thread([&] { EXPECT_EQ(pthread_mutex_unlock(&m), 0); }).join();
  EXPECT_EQ(pthread_mutex_trylock(&m), 0);
  EXPECT_EQ(pthread_mutex_unlock(&m), 0);
}

TEST(Mutex, TimedLockTimesOutOnBothClocksAndValidatesOnlyWhenWaiting) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  struct timespec bad = {0, 2000000000};
  EXPECT_EQ(pthread_mutex_timedlock(&m, &bad), 0);  // free: glibc does not look at the timeout
  EXPECT_EQ(pthread_mutex_timedlock(&m, &bad), EINVAL);
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timespec deadline = after_ms(clock, 30);
    EXPECT_EQ(pthread_mutex_clocklock(&m, clock, &deadline), ETIMEDOUT);
    EXPECT_GE(ms_since(start), 29.0);
  }
  struct timespec deadline = after_ms(CLOCK_REALTIME, 10);
  EXPECT_EQ(pthread_mutex_timedlock(&m, &deadline), ETIMEDOUT);
  EXPECT_EQ(pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &deadline), EINVAL);
  EXPECT_EQ(pthread_mutex_unlock(&m), 0);
}

TEST(Mutex, ContendedCounterLosesNoUpdates) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        pthread_mutex_lock(&m);
        long v = counter;
        if (i % 1000 == 0) sched_yield();  // hold the lock across a switch now and then
        counter = v + 1;
        pthread_mutex_unlock(&m);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 16 * 20000);
}

TEST(Mutex, HolderThatSleepsDoesNotStallOtherThreads) {
  // With one carrier, a kernel-blocking lock here would deadlock: the holder could never run again.
  std::mutex m;
  std::atomic<int> done{0};
  std::thread holder([&] {
    std::lock_guard<std::mutex> hold(m);
    usleep(50000);
  });
  usleep(5000);
  std::vector<std::thread> waiters;
  for (int i = 0; i < 10; ++i) {
    waiters.emplace_back([&] {
      std::lock_guard<std::mutex> hold(m);
      done++;
    });
  }
  holder.join();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 10);
}

TEST(Cond, ProducerConsumerLosesAndDuplicatesNothing) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
  pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
  std::deque<long> queue;
  constexpr int kProducers = 4, kConsumers = 4, kItems = 5000;
  std::atomic<long> sum{0}, taken{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (long i = 1; i <= kItems; ++i) {
        pthread_mutex_lock(&m);
        while (queue.size() >= 8) pthread_cond_wait(&not_full, &m);
        queue.push_back(i + p * 1000000L);
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&m);
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      for (;;) {
        pthread_mutex_lock(&m);
        while (queue.empty() && taken.load() < kProducers * kItems) pthread_cond_wait(&not_empty, &m);
        if (queue.empty()) {
          pthread_mutex_unlock(&m);
          return;
        }
        sum += queue.front();
        queue.pop_front();
        if (++taken == kProducers * kItems) pthread_cond_broadcast(&not_empty);
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&m);
      }
    });
  }
  for (auto& t : threads) t.join();
  long expected = 0;
  for (int p = 0; p < kProducers; ++p) expected += kItems * (kItems + 1L) / 2 + kItems * (p * 1000000L);
  EXPECT_EQ(taken.load(), kProducers * kItems);
  EXPECT_EQ(sum.load(), expected);
}

TEST(Cond, BroadcastWakesEveryWaiter) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  bool go = false;
  std::atomic<int> woken{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&] {
      pthread_mutex_lock(&m);
      while (!go) pthread_cond_wait(&c, &m);
      pthread_mutex_unlock(&m);
      woken++;
    });
  }
  usleep(20000);
  pthread_mutex_lock(&m);
  go = true;
  pthread_cond_broadcast(&c);
  pthread_mutex_unlock(&m);
  for (auto& t : threads) t.join();
  EXPECT_EQ(woken.load(), 50);
}

TEST(Cond, TimedWaitUsesTheAttributeClockAndReacquiresTheMutex) {
  for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC}) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, clock);
    pthread_cond_t c;
    pthread_cond_init(&c, &attr);
    pthread_mutex_t m = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
    pthread_mutex_lock(&m);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timespec deadline = after_ms(clock, 30);
    EXPECT_EQ(pthread_cond_timedwait(&c, &m, &deadline), ETIMEDOUT);
    EXPECT_GE(ms_since(start), 29.0);
    EXPECT_EQ(pthread_mutex_lock(&m), EDEADLK);  // we hold it again
    deadline = after_ms(CLOCK_MONOTONIC, 10);
    EXPECT_EQ(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &deadline), ETIMEDOUT);
    EXPECT_EQ(pthread_cond_clockwait(&c, &m, CLOCK_BOOTTIME, &deadline), EINVAL);
    struct timespec bad = {0, -1};
    EXPECT_EQ(pthread_cond_timedwait(&c, &m, &bad), EINVAL);
    pthread_mutex_unlock(&m);
    pthread_cond_destroy(&c);
    pthread_condattr_destroy(&attr);
  }
}

TEST(Cond, StdConditionVariablePingPong) {
  std::mutex m;
  std::condition_variable cv;
  int turn = 0;
  constexpr int kRounds = 20000;
  auto player = [&](int me) {
    for (int i = 0; i < kRounds; ++i) {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return turn == me; });
      turn = 1 - me;
      cv.notify_one();
    }
  };
  std::thread a(player, 0), b(player, 1);
  a.join();
  b.join();
  EXPECT_EQ(turn, 0);
}

}  // namespace
