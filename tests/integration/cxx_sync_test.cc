// The C++20 standard library's synchronisation, which libstdc++ builds on pthread mutexes, condition
// variables and rwlocks, and on the futex syscall (atomic wait/notify, semaphores, barriers,
// __cxa_guard for function-local statics). Built with -std=c++20.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <semaphore>
#include <shared_mutex>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <typename Fn>
void RunThreads(int n, Fn fn) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
}

TEST(CxxMutex, StdMutexCounterAndTryLock) {
  std::mutex m;
  long counter = 0;
  RunThreads(8, [&](int) {
    for (int i = 0; i < 10000; ++i) {
      std::lock_guard<std::mutex> g(m);
      long v = counter;
      if (i % 1000 == 0) std::this_thread::yield();
      counter = v + 1;
    }
  });
  EXPECT_EQ(counter, 80000);
  std::unique_lock<std::mutex> held(m);
  std::thread([&] { EXPECT_FALSE(m.try_lock()); }).join();
}

TEST(CxxMutex, TimedMutexTryLockForTimesOutWhileHeldAndSucceedsWhenReleased) {
  std::timed_mutex m;
  m.lock();
  std::thread([&] {
    auto start = Clock::now();
    EXPECT_FALSE(m.try_lock_for(30ms));
    EXPECT_GE(Clock::now() - start, 29ms);
    start = Clock::now();
    EXPECT_FALSE(m.try_lock_until(std::chrono::system_clock::now() + 20ms));
    EXPECT_GE(Clock::now() - start, 19ms);
  }).join();
  // A try_lock_for that is waiting when the holder unlocks gets the mutex.
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    if (m.try_lock_for(10s)) {
      got = true;
      m.unlock();
    }
  });
  usleep(20000);
  EXPECT_FALSE(got.load());
  m.unlock();
  waiter.join();
  EXPECT_TRUE(got.load());
}

TEST(CxxMutex, RecursiveMutexNestsAndExcludesOtherThreads) {
  std::recursive_mutex m;
  m.lock();
  m.lock();
  EXPECT_TRUE(m.try_lock());
  std::thread([&] { EXPECT_FALSE(m.try_lock()); }).join();
  m.unlock();
  m.unlock();
  std::thread([&] { EXPECT_FALSE(m.try_lock()); }).join();  // still held once
  m.unlock();
  std::thread([&] {
    EXPECT_TRUE(m.try_lock());
    m.unlock();
  }).join();

  long counter = 0;
  RunThreads(8, [&](int) {
    for (int i = 0; i < 5000; ++i) {
      std::lock_guard<std::recursive_mutex> outer(m);
      std::lock_guard<std::recursive_mutex> inner(m);
      ++counter;
    }
  });
  EXPECT_EQ(counter, 40000);
}

TEST(CxxSharedMutex, ReadersShareWritersExclude) {
  std::shared_mutex m;
  std::atomic<int> readers_in{0}, violations{0};
  std::atomic<bool> writer_in{false};
  long written = 0;
  RunThreads(12, [&](int id) {
    for (int i = 0; i < 2000; ++i) {
      if (id < 4) {
        std::unique_lock<std::shared_mutex> w(m);
        if (writer_in.exchange(true) || readers_in.load() != 0) violations++;
        ++written;
        writer_in = false;
      } else {
        std::shared_lock<std::shared_mutex> r(m);
        readers_in++;
        if (writer_in.load()) violations++;
        if (i % 200 == 0) std::this_thread::yield();
        readers_in--;
      }
    }
  });
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(written, 4 * 2000);

  // Deterministically: a shared holder admits another reader and refuses a writer.
  std::shared_lock<std::shared_mutex> r(m);
  std::thread([&] {
    EXPECT_TRUE(m.try_lock_shared());
    m.unlock_shared();
    EXPECT_FALSE(m.try_lock());
  }).join();
}

TEST(CxxSharedMutex, SharedTimedMutexTimesOutBothWays) {
  std::shared_timed_mutex m;
  m.lock();
  std::thread([&] {
    auto start = Clock::now();
    EXPECT_FALSE(m.try_lock_shared_for(20ms));
    EXPECT_FALSE(m.try_lock_for(20ms));
    EXPECT_GE(Clock::now() - start, 39ms);
  }).join();
  m.unlock();
  m.lock_shared();
  std::thread([&] {
    EXPECT_FALSE(m.try_lock_until(std::chrono::system_clock::now() + 20ms));
    EXPECT_TRUE(m.try_lock_shared_for(20ms));
    m.unlock_shared();
  }).join();
  m.unlock_shared();
}

TEST(CxxCondVar, WaitForTimesOutAndWaitUntilReturnsThePredicate) {
  std::mutex m;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(m);
  auto start = Clock::now();
  EXPECT_EQ(cv.wait_for(lock, 30ms), std::cv_status::timeout);
  EXPECT_GE(Clock::now() - start, 29ms);
  EXPECT_TRUE(lock.owns_lock());
  start = Clock::now();
  EXPECT_FALSE(cv.wait_until(lock, std::chrono::system_clock::now() + 20ms, [] { return false; }));
  EXPECT_GE(Clock::now() - start, 19ms);

  // A wait_for that is notified before its timeout reports no_timeout-or-predicate-true.
  bool ready = false;
  std::thread notifier([&] {
    usleep(20000);
    std::lock_guard<std::mutex> g(m);
    ready = true;
    cv.notify_one();
  });
  EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return ready; }));
  lock.unlock();
  notifier.join();
}

TEST(CxxCondVar, ConditionVariableAnyWithSharedLocksAndTimeout) {
  std::shared_mutex m;
  std::condition_variable_any cv;
  bool go = false;
  std::atomic<int> woken{0};
  // Readers wait holding shared locks; the writer can only set `go` once they released them in
  // wait, which condition_variable_any must do.
  std::vector<std::thread> readers;
  for (int i = 0; i < 6; ++i) {
    readers.emplace_back([&] {
      std::shared_lock<std::shared_mutex> r(m);
      cv.wait(r, [&] { return go; });
      woken++;
    });
  }
  usleep(20000);
  {
    std::unique_lock<std::shared_mutex> w(m);
    EXPECT_EQ(woken.load(), 0);
    go = true;
  }
  cv.notify_all();
  for (auto& t : readers) t.join();
  EXPECT_EQ(woken.load(), 6);

  std::unique_lock<std::shared_mutex> w(m);
  auto start = Clock::now();
  EXPECT_EQ(cv.wait_for(w, 30ms), std::cv_status::timeout);
  EXPECT_GE(Clock::now() - start, 29ms);
}

TEST(CxxBarrier, CompletionRunsOncePerPhaseAfterEveryArrival) {
  constexpr int kThreads = 8, kPhases = 200;
  std::atomic<int> arrived{0}, completions{0}, bad{0};
  auto on_completion = [&]() noexcept {
    // Runs once per phase, after all threads arrived and before any leaves.
    if (arrived.load() != kThreads * (completions.load() + 1)) bad++;
    completions++;
  };
  std::barrier sync(kThreads, on_completion);
  RunThreads(kThreads, [&](int id) {
    for (int p = 0; p < kPhases; ++p) {
      arrived++;
      if ((p + id) % 40 == 0) usleep(200);
      sync.arrive_and_wait();
      if (completions.load() < p + 1) bad++;  // left before the phase completed
    }
  });
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(completions.load(), kPhases);
}

TEST(CxxBarrier, ArriveAndDropShrinksTheBarrier) {
  std::barrier sync(4);
  std::atomic<int> phases_done{0};
  RunThreads(4, [&](int id) {
    if (id == 0) {
      sync.arrive_and_drop();  // leaves after the first phase's arrival
      return;
    }
    for (int p = 0; p < 50; ++p) sync.arrive_and_wait();
    phases_done++;
  });
  EXPECT_EQ(phases_done.load(), 3);
}

TEST(CxxSemaphore, CountingSemaphoreBoundedBuffer) {
  constexpr int kSize = 4, kItems = 20000;
  std::counting_semaphore<kSize> slots(kSize), items(0);
  long ring[kSize];
  std::atomic<long> sum{0};
  std::thread producer([&] {
    for (int i = 1; i <= kItems; ++i) {
      slots.acquire();
      ring[i % kSize] = i;
      items.release();
    }
  });
  std::thread consumer([&] {
    for (int i = 1; i <= kItems; ++i) {
      items.acquire();
      if (ring[i % kSize] != i) sum = -1000000000;  // out of order or torn
      sum += ring[i % kSize];
      slots.release();
    }
  });
  producer.join();
  consumer.join();
  EXPECT_EQ(sum.load(), long{kItems} * (kItems + 1) / 2);
  for (int i = 0; i < kSize; ++i) EXPECT_TRUE(slots.try_acquire());
  EXPECT_FALSE(slots.try_acquire());
}

TEST(CxxSemaphore, TryAcquireForTimesOutAndIsWokenByRelease) {
  std::counting_semaphore<> s(0);
  auto start = Clock::now();
  EXPECT_FALSE(s.try_acquire_for(30ms));
  EXPECT_GE(Clock::now() - start, 29ms);
  EXPECT_FALSE(s.try_acquire_until(std::chrono::system_clock::now() + 20ms));
  std::atomic<int> got{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (s.try_acquire_for(10s)) got++;
    });
  }
  usleep(20000);
  EXPECT_EQ(got.load(), 0);
  s.release(4);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(got.load(), 4);
  EXPECT_FALSE(s.try_acquire());
}

TEST(CxxSemaphore, BinarySemaphorePingPong) {
  std::binary_semaphore ping(0), pong(0);
  constexpr int kRounds = 10000;
  int ball = 0;  // handed over by the semaphores only
  std::thread other([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.acquire();
      ++ball;
      pong.release();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    ++ball;
    ping.release();
    pong.acquire();
  }
  other.join();
  EXPECT_EQ(ball, 2 * kRounds);
}

TEST(CxxAtomicWait, NotifyOneWakesAWaiterBlockedOnTheValue) {
  std::atomic<int> v{0};
  std::atomic<bool> returned{false};
  std::thread waiter([&] {
    v.wait(0);
    returned = true;
  });
  usleep(30000);
  EXPECT_FALSE(returned.load());
  v.store(1);
  v.notify_one();
  waiter.join();
  EXPECT_TRUE(returned.load());
  v.wait(0);  // the value differs already: returns at once
}

TEST(CxxAtomicWait, NotifyAllWakesEveryWaiterAndHandsOffASequence) {
  std::atomic<int> v{0};
  std::atomic<int> woken{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 16; ++i) {
    waiters.emplace_back([&] {
      v.wait(0);
      woken++;
    });
  }
  usleep(20000);
  EXPECT_EQ(woken.load(), 0);
  v.store(1);
  v.notify_all();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(woken.load(), 16);

  // Two threads take turns through a single word: each waits until it is its turn.
  std::atomic<int> turn{0};
  constexpr int kRounds = 5000;
  auto player = [&](int me) {
    for (int i = 0; i < kRounds; ++i) {
      int t;
      while ((t = turn.load()) % 2 != me) turn.wait(t);
      turn.store(t + 1);
      turn.notify_one();
    }
  };
  std::thread a(player, 0), b(player, 1);
  a.join();
  b.join();
  EXPECT_EQ(turn.load(), 2 * kRounds);
}

TEST(CxxCallOnce, RunsOnceUnderContentionAndOthersWaitForIt) {
  std::once_flag flag;
  std::atomic<int> calls{0}, saw_unfinished{0};
  std::atomic<bool> finished{false};
  RunThreads(32, [&](int) {
    std::call_once(flag, [&] {
      calls++;
      usleep(20000);  // the others must block, not skip ahead
      finished = true;
    });
    if (!finished.load()) saw_unfinished++;
  });
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(saw_unfinished.load(), 0);
}

std::atomic<int> constructions{0};

struct Slow {
  Slow() {
    constructions++;
    usleep(20000);  // the racing threads must wait in __cxa_guard_acquire
    value = 42;
  }
  int value = 0;
};

template <int N>
Slow& Instance() {
  static Slow s;
  return s;
}

TEST(CxxStatics, FunctionLocalStaticIsConstructedOnceWhileManyThreadsRace) {
  std::atomic<int> wrong{0};
  std::atomic<Slow*> first{nullptr};
  RunThreads(32, [&](int id) {
    Slow& s = id % 2 ? Instance<1>() : Instance<2>();
    if (s.value != 42) wrong++;
    if (id == 1) first = &s;
  });
  EXPECT_EQ(constructions.load(), 2);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(first.load(), &Instance<1>());
  EXPECT_NE(&Instance<1>(), &Instance<2>());
}

}  // namespace
