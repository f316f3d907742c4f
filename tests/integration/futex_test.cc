// The futex system call made directly by program code (as hand-written locks, libstdc++'s
// atomic waits and Abseil do): return values of the wake and requeue operations, EAGAIN when the
// word differs, timeouts on both clocks, EINVAL for bad arguments, and a hand-rolled mutex and
// event used by many threads.
//
// Counting woken threads exactly needs the waiters to be asleep on the futex first. Instead of
// sleeping and hoping, the tests park waiters on a "lobby" word and move them with
// FUTEX_CMP_REQUEUE(nr_wake = 0) until the requeue has counted all of them: a waiter is only
// counted once it is really asleep, and it is then asleep on the target word.
#include <errno.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::DeadlineIn;
using vthread_test::kNsPerMs;
using vthread_test::kNsPerSec;
using vthread_test::NowNs;
using vthread_test::ToTimespec;

using Word = std::atomic<uint32_t>;
static_assert(sizeof(Word) == 4, "futex words are 32 bits");

uint32_t* Addr(Word& w) { return reinterpret_cast<uint32_t*>(&w); }

// Returns the syscall's result, or -errno.
long Futex(Word& w, int op, uint32_t val, const timespec* ts = nullptr, Word* w2 = nullptr,
           uint32_t val3 = 0) {
  long r = syscall(SYS_futex, Addr(w), op, val, ts, w2 == nullptr ? nullptr : Addr(*w2), val3);
  return r == -1 ? -errno : r;
}

// The operations whose fourth argument is a count (val2), not a timeout.
long FutexVal2(Word& w, int op, uint32_t val, uint32_t val2, Word& w2, uint32_t val3 = 0) {
  long r = syscall(SYS_futex, Addr(w), op, val, reinterpret_cast<void*>(uintptr_t{val2}), Addr(w2),
                   val3);
  return r == -1 ? -errno : r;
}

long Wake(Word& w, int n) { return Futex(w, FUTEX_WAKE_PRIVATE, n); }

// Starts `n` threads that each make one FUTEX_WAIT on `lobby` (expecting 0) and record its result.
// Returns once all of them sleep on `target`, moved there by requeues that count them.
void ParkOn(Word& lobby, Word& target, int n, std::vector<std::thread>* threads,
            std::atomic<int>* returned_zero, std::atomic<int>* returned_other) {
  for (int i = 0; i < n; ++i) {
    threads->emplace_back([&lobby, returned_zero, returned_other] {
      long r = Futex(lobby, FUTEX_WAIT_PRIVATE, 0);
      (r == 0 ? *returned_zero : *returned_other)++;
    });
  }
  long moved = 0;
  const int64_t deadline = NowNs() + 10 * kNsPerSec;
  while (moved < n && NowNs() < deadline) {
    long r = FutexVal2(lobby, FUTEX_CMP_REQUEUE_PRIVATE, 0, INT_MAX, target, 0);
    ASSERT_GE(r, 0) << strerror(static_cast<int>(-r));
    moved += r;
    if (moved < n) usleep(1000);
  }
  ASSERT_EQ(moved, n) << "waiters never went to sleep on the futex";
}

TEST(Futex, WaitReturnsEagainWhenTheWordDiffers) {
  Word w{5};
  EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 4), -EAGAIN);
  EXPECT_EQ(Futex(w, FUTEX_WAIT_BITSET_PRIVATE, 4, nullptr, nullptr, FUTEX_BITSET_MATCH_ANY),
            -EAGAIN);
  EXPECT_EQ(Wake(w, 1), 0);  // nobody waits
  EXPECT_EQ(Wake(w, INT_MAX), 0);
}

TEST(Futex, RelativeWaitTimesOut) {
  Word w{0};
  int64_t start = NowNs();
  timespec rel = ToTimespec(30 * kNsPerMs);
  EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 0, &rel), -ETIMEDOUT);
  EXPECT_GE(NowNs() - start, 29 * kNsPerMs);
  timespec zero = {0, 0};
  EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 0, &zero), -ETIMEDOUT);
}

TEST(Futex, BitsetWaitTakesAnAbsoluteDeadlineOnEitherClock) {
  Word w{0};
  for (int clock_flag : {0, FUTEX_CLOCK_REALTIME}) {
    clockid_t clock = clock_flag ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    int64_t start = NowNs();
    timespec abs = DeadlineIn(30 * kNsPerMs, clock);
    EXPECT_EQ(Futex(w, FUTEX_WAIT_BITSET_PRIVATE | clock_flag, 0, &abs, nullptr,
                    FUTEX_BITSET_MATCH_ANY),
              -ETIMEDOUT);
    EXPECT_GE(NowNs() - start, 29 * kNsPerMs) << "clock " << clock;
    // A deadline in the past (an absolute time that is small as a relative one) is immediate.
    timespec past = {1, 0};
    start = NowNs();
    EXPECT_EQ(Futex(w, FUTEX_WAIT_BITSET_PRIVATE | clock_flag, 0, &past, nullptr,
                    FUTEX_BITSET_MATCH_ANY),
              -ETIMEDOUT);
    EXPECT_LT(NowNs() - start, 500 * kNsPerMs);
  }
}

TEST(Futex, BadArgumentsAreInvalid) {
  Word w{0};
  for (long nsec : {-1L, 1000000000L}) {
    timespec bad = {0, nsec};
    EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 0, &bad), -EINVAL);
    EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 1, &bad), -EINVAL);  // checked before the word
    EXPECT_EQ(Futex(w, FUTEX_WAIT_BITSET_PRIVATE, 0, &bad, nullptr, FUTEX_BITSET_MATCH_ANY),
              -EINVAL);
  }
  timespec neg = {-1, 0};
  EXPECT_EQ(Futex(w, FUTEX_WAIT_PRIVATE, 0, &neg), -EINVAL);
  // A zero bitset matches nothing, so waiting or waking with it is an error.
  EXPECT_EQ(Futex(w, FUTEX_WAIT_BITSET_PRIVATE, 0, nullptr, nullptr, 0), -EINVAL);
  EXPECT_EQ(Futex(w, FUTEX_WAKE_BITSET_PRIVATE, 1, nullptr, nullptr, 0), -EINVAL);
  // FUTEX_CLOCK_REALTIME is only for the bitset wait (and FUTEX_WAIT since Linux 4.5): with WAKE
  // it is rejected.
  EXPECT_EQ(Futex(w, FUTEX_WAKE_PRIVATE | FUTEX_CLOCK_REALTIME, 1), -ENOSYS);
  // Misaligned word.
  alignas(8) char buf[8] = {};
  long r = syscall(SYS_futex, buf + 1, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  EXPECT_EQ(r, -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Futex, WakeReturnsTheNumberWokenAndWakesNoMore) {
  constexpr int kWaiters = 6;
  Word lobby{0}, w{0};
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> threads;
  ParkOn(lobby, w, kWaiters, &threads, &ok, &other);
  EXPECT_EQ(Wake(w, 2), 2);
  EXPECT_EQ(Wake(w, 1), 1);
  EXPECT_EQ(Wake(lobby, INT_MAX), 0);  // nobody is left on the lobby word
  EXPECT_EQ(Wake(w, INT_MAX), kWaiters - 3);
  EXPECT_EQ(Wake(w, INT_MAX), 0);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWaiters);
  EXPECT_EQ(other.load(), 0);
}

TEST(Futex, WakeBitsetWakesOnlyMatchingWaiters) {
  Word w{0};
  std::atomic<long> result{1};
  std::thread waiter(
      [&] { result = Futex(w, FUTEX_WAIT_BITSET_PRIVATE, 0, nullptr, nullptr, 0x1); });
  usleep(20000);
  EXPECT_EQ(Futex(w, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, nullptr, nullptr, 0x6), 0);
  // The waiter may not have slept yet; keep waking with a matching bitset until one is woken.
  long woken = 0;
  const int64_t deadline = NowNs() + 10 * kNsPerSec;
  while (woken == 0 && NowNs() < deadline) {
    woken = Futex(w, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, nullptr, nullptr, 0x3);
    if (woken == 0) usleep(1000);
  }
  EXPECT_EQ(woken, 1);
  waiter.join();
  EXPECT_EQ(result.load(), 0);
}

TEST(Futex, PlainWakeWakesBitsetWaitersAndBitsetWakeWakesPlainWaiters) {
  // FUTEX_WAIT is FUTEX_WAIT_BITSET with all bits set, and FUTEX_WAKE likewise.
  Word lobby{0}, w{0};
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> threads;
  ParkOn(lobby, w, 2, &threads, &ok, &other);
  EXPECT_EQ(Futex(w, FUTEX_WAKE_BITSET_PRIVATE, 1, nullptr, nullptr, 0x40), 1);
  EXPECT_EQ(Futex(w, FUTEX_WAKE_BITSET_PRIVATE, 1, nullptr, nullptr, FUTEX_BITSET_MATCH_ANY), 1);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 2);
}

TEST(Futex, RequeueWakesSomeAndMovesTheRest) {
  constexpr int kWaiters = 5;
  Word lobby{0}, a{0}, b{0};
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> threads;
  ParkOn(lobby, a, kWaiters, &threads, &ok, &other);
  // FUTEX_REQUEUE: wake 1, move at most 2 of the rest; returns woken + moved.
  EXPECT_EQ(FutexVal2(a, FUTEX_REQUEUE_PRIVATE, 1, 2, b), 3);
  // FUTEX_CMP_REQUEUE refuses when the word differs from val3.
  EXPECT_EQ(FutexVal2(a, FUTEX_CMP_REQUEUE_PRIVATE, 1, INT_MAX, b, 7), -EAGAIN);
  // a holds 2 waiters, b holds 2: move everything left on a to b without waking.
  EXPECT_EQ(FutexVal2(a, FUTEX_CMP_REQUEUE_PRIVATE, 0, INT_MAX, b, 0), 2);
  EXPECT_EQ(Wake(a, INT_MAX), 0);
  EXPECT_EQ(Wake(b, INT_MAX), 4);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWaiters);
  EXPECT_EQ(other.load(), 0);
}

TEST(Futex, WakeOpWakesBothWordsAndUpdatesTheSecond) {
  constexpr int kOnA = 3, kOnB = 2;
  Word lobby_a{0}, lobby_b{0}, a{0}, b{0};
  std::atomic<int> ok{0}, other{0};
  std::vector<std::thread> threads;
  ParkOn(lobby_a, a, kOnA, &threads, &ok, &other);
  ParkOn(lobby_b, b, kOnB, &threads, &ok, &other);
  // *b = 1 atomically; wake up to 1 on a, and up to INT_MAX on b if the old *b was 0.
  const uint32_t set1_if_was0 = FUTEX_OP(FUTEX_OP_SET, 1, FUTEX_OP_CMP_EQ, 0);
  EXPECT_EQ(FutexVal2(a, FUTEX_WAKE_OP_PRIVATE, 1, INT_MAX, b, set1_if_was0), 1 + kOnB);
  EXPECT_EQ(b.load(), 1u);
  // Again: the old *b is 1 now, so only a is woken; FUTEX_OP_ADD makes *b 3.
  const uint32_t add2_if_was0 = FUTEX_OP(FUTEX_OP_ADD, 2, FUTEX_OP_CMP_EQ, 0);
  EXPECT_EQ(FutexVal2(a, FUTEX_WAKE_OP_PRIVATE, INT_MAX, INT_MAX, b, add2_if_was0), kOnA - 1);
  EXPECT_EQ(b.load(), 3u);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kOnA + kOnB);
  EXPECT_EQ(other.load(), 0);
}

TEST(Futex, EventWaiterIsWokenByAThreadThatSlept) {
  Word event{0};
  std::atomic<int> wakeups{0};
  int64_t start = NowNs();
  std::thread waiter([&] {
    while (event.load() == 0) {
      long r = Futex(event, FUTEX_WAIT_PRIVATE, 0);
      ASSERT_TRUE(r == 0 || r == -EAGAIN) << r;
      wakeups++;
    }
  });
  std::thread setter([&] {
    usleep(40000);
    event.store(1);
    Wake(event, INT_MAX);
  });
  setter.join();
  waiter.join();
  EXPECT_GE(NowNs() - start, 39 * kNsPerMs);
  EXPECT_GE(wakeups.load(), 1);
  EXPECT_LE(wakeups.load(), 2);  // no busy loop: at most one spurious return
}

// Drepper's "Futexes Are Tricky" mutex 2: 0 unlocked, 1 locked, 2 locked with waiters.
class FutexMutex {
 public:
  void Lock() {
    uint32_t c = 0;
    if (w_.compare_exchange_strong(c, 1)) return;
    if (c != 2) c = w_.exchange(2);
    while (c != 0) {
      long r = Futex(w_, FUTEX_WAIT_PRIVATE, 2);
      if (r != 0 && r != -EAGAIN) errors_++;
      c = w_.exchange(2);
    }
  }
  void Unlock() {
    if (w_.exchange(0) == 2) {
      if (Wake(w_, 1) < 0) errors_++;
    }
  }
  int errors() const { return errors_.load(); }

 private:
  Word w_{0};
  std::atomic<int> errors_{0};
};

TEST(Futex, HandRolledMutexLosesNoUpdatesUnderContention) {
  constexpr int kThreads = 16, kIters = 10000;
  FutexMutex m;
  long counter = 0;
  std::atomic<int> inside{0}, violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        m.Lock();
        if (inside.fetch_add(1) != 0) violations++;
        long v = counter;
        if (i % 500 == 0) sched_yield();  // let waiters pile up on the futex
        if (i % 2500 == 0) usleep(200);
        counter = v + 1;
        inside--;
        m.Unlock();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(m.errors(), 0);
  EXPECT_EQ(counter, long{kThreads} * kIters);
}

TEST(Futex, BroadcastEventReleasesManyWaiters) {
  constexpr int kWaiters = 32;
  Word event{0};
  std::atomic<int> released{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&] {
      timespec rel = ToTimespec(10 * kNsPerSec);
      while (event.load() == 0) Futex(event, FUTEX_WAIT_PRIVATE, 0, &rel);
      released++;
    });
  }
  usleep(20000);
  EXPECT_EQ(released.load(), 0);
  event.store(1);
  EXPECT_GE(Wake(event, INT_MAX), 0);
  for (auto& t : threads) t.join();
  EXPECT_EQ(released.load(), kWaiters);
}

}  // namespace
