// Abseil's synchronisation (Debian's libabsl 20220623). absl::Mutex spins and then parks threads in
// its own futex-based waiter (FUTEX_WAIT_BITSET with FUTEX_CLOCK_REALTIME for timeouts), so these
// exercise the futex syscall as a real library uses it, under contention from 16 threads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace {

constexpr int kThreads = 16;

template <typename Fn>
void RunThreads(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
}

TEST(AbslMutex, LockUnlockCounterUnderContention) {
  absl::Mutex mu;
  long counter = 0;
  std::atomic<int> inside{0}, violations{0};
  RunThreads(kThreads, [&](int) {
    for (int i = 0; i < 5000; ++i) {
      mu.Lock();
      if (inside.fetch_add(1) != 0) violations++;
      long v = counter;
      if (i % 500 == 0) std::this_thread::yield();
      if (i % 2500 == 0) usleep(200);  // long enough that waiters stop spinning and park
      counter = v + 1;
      inside--;
      mu.Unlock();
    }
  });
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(counter, long{kThreads} * 5000);
  EXPECT_TRUE(mu.TryLock());
  std::thread([&] { EXPECT_FALSE(mu.TryLock()); }).join();
  mu.Unlock();
}

TEST(AbslMutex, ReaderLocksShareAndWriterLocksExclude) {
  absl::Mutex mu;
  std::atomic<int> readers_in{0}, violations{0};
  std::atomic<bool> writer_in{false};
  long written = 0;
  RunThreads(kThreads, [&](int id) {
    for (int i = 0; i < 2000; ++i) {
      if (id % 4 == 0) {
        absl::MutexLock l(&mu);
        if (writer_in.exchange(true) || readers_in.load() != 0) violations++;
        ++written;
        writer_in = false;
      } else {
        absl::ReaderMutexLock l(&mu);
        readers_in++;
        if (writer_in.load()) violations++;
        if (i % 200 == 0) std::this_thread::yield();
        readers_in--;
      }
    }
  });
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(written, 4 * 2000);

  // Deterministically: a reader admits another reader and refuses a writer.
  mu.ReaderLock();
  std::thread([&] {
    EXPECT_TRUE(mu.ReaderTryLock());
    mu.ReaderUnlock();
    EXPECT_FALSE(mu.TryLock());
  }).join();
  mu.ReaderUnlock();
}

TEST(AbslMutex, AwaitConditionHandsTurnsAroundARing) {
  // Each thread waits for its turn with Await; any lost wake-up stalls the ring.
  absl::Mutex mu;
  int turn = 0;
  constexpr int kRounds = 200;
  RunThreads(kThreads, [&](int id) {
    for (int r = 0; r < kRounds; ++r) {
      absl::MutexLock l(&mu);
      std::pair<int*, int> want(&turn, r * kThreads + id);
      mu.Await(absl::Condition(
          +[](std::pair<int*, int>* p) { return *p->first == p->second; }, &want));
      ++turn;
    }
  });
  EXPECT_EQ(turn, kThreads * kRounds);
}

TEST(AbslMutex, LockWhenWithTimeoutReturnsFalseButHoldsTheLock) {
  absl::Mutex mu;
  bool ready = false;
  absl::Time start = absl::Now();
  EXPECT_FALSE(mu.LockWhenWithTimeout(absl::Condition(&ready), absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  mu.AssertHeld();
  std::thread([&] { EXPECT_FALSE(mu.TryLock()); }).join();
  mu.Unlock();

  // Made true by another thread before the timeout: returns true.
  std::thread setter([&] {
    usleep(20000);
    absl::MutexLock l(&mu);
    ready = true;
  });
  EXPECT_TRUE(mu.LockWhenWithTimeout(absl::Condition(&ready), absl::Seconds(10)));
  EXPECT_TRUE(ready);
  mu.Unlock();
  setter.join();

  mu.Lock();
  ready = false;
  start = absl::Now();
  EXPECT_FALSE(mu.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(19));
  mu.Unlock();
}

TEST(AbslCondVar, WaitWithTimeoutTimesOutAndSignalWakes) {
  absl::Mutex mu;
  absl::CondVar cv;
  absl::MutexLock l(&mu);
  absl::Time start = absl::Now();
  EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Milliseconds(30)));  // true means timed out
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  EXPECT_TRUE(cv.WaitWithDeadline(&mu, absl::Now() + absl::Milliseconds(10)));

  bool ready = false;
  std::thread signaller([&] {
    usleep(20000);
    absl::MutexLock l2(&mu);
    ready = true;
    cv.Signal();
  });
  while (!ready) EXPECT_FALSE(cv.WaitWithTimeout(&mu, absl::Seconds(10)));
  signaller.join();  // it released mu before we could see `ready`
}

TEST(AbslCondVar, ProducerConsumerWithSignalAll) {
  absl::Mutex mu;
  absl::CondVar not_empty, not_full;
  std::deque<int> q;
  constexpr int kProducers = 8, kItems = 2000;
  long sum = 0;
  int taken = 0;
  RunThreads(kThreads, [&](int id) {
    if (id < kProducers) {
      for (int i = 1; i <= kItems; ++i) {
        absl::MutexLock l(&mu);
        while (q.size() >= 8) not_full.Wait(&mu);
        q.push_back(i);
        not_empty.Signal();
      }
    } else {
      for (;;) {
        absl::MutexLock l(&mu);
        while (q.empty() && taken < kProducers * kItems) not_empty.Wait(&mu);
        if (q.empty()) return;
        sum += q.front();
        q.pop_front();
        if (++taken == kProducers * kItems) not_empty.SignalAll();
        not_full.Signal();
      }
    }
  });
  EXPECT_EQ(taken, kProducers * kItems);
  EXPECT_EQ(sum, long{kProducers} * kItems * (kItems + 1) / 2);
}

TEST(AbslNotification, WaitWithTimeoutThenNotifyReleasesEveryWaiter) {
  absl::Notification n;
  absl::Time start = absl::Now();
  EXPECT_FALSE(n.WaitForNotificationWithTimeout(absl::Milliseconds(30)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(29));
  EXPECT_FALSE(n.HasBeenNotified());
  std::atomic<int> released{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kThreads; ++i) {
    waiters.emplace_back([&, i] {
      if (i % 2) {
        n.WaitForNotification();
        released++;
      } else if (n.WaitForNotificationWithTimeout(absl::Seconds(10))) {
        released++;
      }
    });
  }
  usleep(20000);
  EXPECT_EQ(released.load(), 0);
  n.Notify();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(released.load(), kThreads);
  EXPECT_TRUE(n.HasBeenNotified());
  EXPECT_TRUE(n.WaitForNotificationWithTimeout(absl::ZeroDuration()));
}

TEST(AbslBlockingCounter, WaitReturnsOnlyAfterEveryDecrement) {
  for (int round = 0; round < 20; ++round) {
    absl::BlockingCounter counter(kThreads);
    std::atomic<int> done{0};
    std::vector<std::thread> workers;
    for (int i = 0; i < kThreads; ++i) {
      workers.emplace_back([&, i] {
        if (i % 5 == round % 5) usleep(1000);
        done++;
        counter.DecrementCount();
      });
    }
    counter.Wait();
    EXPECT_EQ(done.load(), kThreads) << "round " << round;
    for (auto& t : workers) t.join();
  }
}

}  // namespace
