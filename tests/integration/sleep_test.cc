// The sleep family (sleep, usleep, nanosleep, clock_nanosleep) and yielding (sched_yield,
// pthread_yield). Sleeps must never return early (measured on CLOCK_MONOTONIC, or on the clock of
// an absolute deadline), must report errors exactly as glibc does, and must not block each other:
// under the shim a sleeping fiber frees its carrier. Expected values are glibc 2.36's.
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

// <pthread.h> of glibc >= 2.34 redirects pthread_yield() to sched_yield(), and libc exports
// pthread_yield only as the compat symbol pthread_yield@GLIBC_2.2.5. Binaries built against older
// glibc call that symbol; bind to it explicitly so the test exercises it.
extern "C" int compat_pthread_yield(void);
__asm__(".symver compat_pthread_yield,pthread_yield@GLIBC_2.2.5");

namespace vthread_test {
namespace {

constexpr int64_t kSleepNs = 30 * kNsPerMs;

const char* ClockName(clockid_t c) {
  switch (c) {
    case CLOCK_REALTIME: return "CLOCK_REALTIME";
    case CLOCK_MONOTONIC: return "CLOCK_MONOTONIC";
    case CLOCK_BOOTTIME: return "CLOCK_BOOTTIME";
    case CLOCK_TAI: return "CLOCK_TAI";
    default: return "other clock";
  }
}

constexpr clockid_t kClocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_TAI};

TEST(ClockNanosleep, RelativeSleepsLastAtLeastTheRequestOnEveryClock) {
  RunHereAndInThread([] {
    for (clockid_t c : kClocks) {
      const timespec req = ToTimespec(kSleepNs);
      const int64_t start = NowNs();
      EXPECT_EQ(0, clock_nanosleep(c, 0, &req, nullptr)) << ClockName(c);
      EXPECT_GE(NowNs() - start, kSleepNs) << ClockName(c);
    }
  });
}

TEST(ClockNanosleep, AbsoluteSleepsEndNoEarlierThanTheDeadlineOnItsClock) {
  RunHereAndInThread([] {
    for (clockid_t c : kClocks) {
      const int64_t deadline = NowNs(c) + kSleepNs;
      const timespec req = ToTimespec(deadline);
      timespec rem{123, 456};
      EXPECT_EQ(0, clock_nanosleep(c, TIMER_ABSTIME, &req, &rem)) << ClockName(c);
      EXPECT_GE(NowNs(c), deadline) << ClockName(c);
    }
  });
}

TEST(ClockNanosleep, DeadlinesInThePastAndZeroDurationsReturnAtOnce) {
  RunHereAndInThread([] {
    const int64_t start = NowNs();
    for (clockid_t c : kClocks) {
      const timespec past = ToTimespec(NowNs(c) - kNsPerSec);
      EXPECT_EQ(0, clock_nanosleep(c, TIMER_ABSTIME, &past, nullptr)) << ClockName(c);
      const timespec epoch{0, 0};
      EXPECT_EQ(0, clock_nanosleep(c, TIMER_ABSTIME, &epoch, nullptr)) << ClockName(c);
      const timespec zero{0, 0};
      EXPECT_EQ(0, clock_nanosleep(c, 0, &zero, nullptr)) << ClockName(c);
      const timespec one_ns{0, 1};
      EXPECT_EQ(0, clock_nanosleep(c, 0, &one_ns, nullptr)) << ClockName(c);
    }
    EXPECT_LT(NowNs() - start, 5 * kNsPerSec);  // generous: the machine may be loaded
  });
}

// clock_nanosleep returns the error number and does not use errno. A tv_nsec outside
// [0, 999999999] and a negative tv_sec are EINVAL, relative or absolute. glibc rejects
// CLOCK_THREAD_CPUTIME_ID with EINVAL (not ENOTSUP); unknown clock ids are EINVAL; clocks the
// kernel cannot sleep on (CLOCK_MONOTONIC_RAW, the _COARSE clocks) are ENOTSUP.
TEST(ClockNanosleep, InvalidArgumentsAreReportedAsReturnValues) {
  RunHereAndInThread([] {
    const int64_t start = NowNs();
    for (int flags : {0, TIMER_ABSTIME}) {
      for (clockid_t c : kClocks) {
        for (timespec bad : {timespec{0, 1000000000}, timespec{0, -1}, timespec{-1, 0},
                             timespec{-5, 500}}) {
          EXPECT_EQ(EINVAL, clock_nanosleep(c, flags, &bad, nullptr))
              << ClockName(c) << " flags=" << flags << " {" << bad.tv_sec << ", " << bad.tv_nsec << "}";
        }
      }
      const timespec ok{0, 1000};
      EXPECT_EQ(EINVAL, clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, flags, &ok, nullptr));
      EXPECT_EQ(EINVAL, clock_nanosleep(static_cast<clockid_t>(12345), flags, &ok, nullptr));
      EXPECT_EQ(EINVAL, clock_nanosleep(static_cast<clockid_t>(-1), flags, &ok, nullptr));
    }
    const timespec ok{0, 1000};
    EXPECT_EQ(ENOTSUP, clock_nanosleep(CLOCK_MONOTONIC_RAW, 0, &ok, nullptr));
    EXPECT_EQ(ENOTSUP, clock_nanosleep(CLOCK_MONOTONIC_COARSE, 0, &ok, nullptr));
    EXPECT_EQ(ENOTSUP, clock_nanosleep(CLOCK_REALTIME_COARSE, 0, &ok, nullptr));
    EXPECT_LT(NowNs() - start, 5 * kNsPerSec);  // generous: the machine may be loaded
  });
}

TEST(Nanosleep, SleepsAtLeastTheRequest) {
  RunHereAndInThread([] {
    for (timespec req : {ToTimespec(kSleepNs), timespec{0, 1}, timespec{0, 0}}) {
      const int64_t start = NowNs();
      timespec rem{};
      EXPECT_EQ(0, nanosleep(&req, &rem));
      EXPECT_GE(NowNs() - start, int64_t{req.tv_sec} * kNsPerSec + req.tv_nsec);
    }
  });
}

// nanosleep reports errors the classic way: -1 and errno.
TEST(Nanosleep, InvalidTimespecIsMinusOneWithEinval) {
  RunHereAndInThread([] {
    for (timespec bad : {timespec{0, 1000000000}, timespec{0, -1}, timespec{-1, 0}, timespec{-1, 5}}) {
      errno = 0;
      EXPECT_EQ(-1, nanosleep(&bad, nullptr)) << bad.tv_sec << " " << bad.tv_nsec;
      EXPECT_EQ(EINVAL, errno);
    }
  });
}

TEST(Usleep, SleepsAtLeastTheRequestAndZeroReturnsAtOnce) {
  RunHereAndInThread([] {
    int64_t start = NowNs();
    EXPECT_EQ(0, usleep(kSleepNs / 1000));
    EXPECT_GE(NowNs() - start, kSleepNs);
    start = NowNs();
    EXPECT_EQ(0, usleep(1));
    EXPECT_GE(NowNs() - start, 1000);
    EXPECT_EQ(0, usleep(0));
  });
}

TEST(Sleep, OneSecondSleepLastsAtLeastASecondAndReturnsZero) {
  const int64_t start = NowNs();
  EXPECT_EQ(0u, sleep(1));
  EXPECT_GE(NowNs() - start, kNsPerSec);
  EXPECT_EQ(0u, sleep(0));
  RunInThread([] {
    const int64_t s = NowNs();
    EXPECT_EQ(0u, sleep(1));
    EXPECT_GE(NowNs() - s, kNsPerSec);
  });
}

// std::this_thread::sleep_for / sleep_until are nanosleep and clock_nanosleep-based loops.
TEST(StdSleep, SleepForAndSleepUntilDoNotReturnEarly) {
  RunHereAndInThread([] {
    auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
    std::this_thread::sleep_until(until);
    EXPECT_GE(std::chrono::steady_clock::now(), until);
    const auto sys_until = std::chrono::system_clock::now() + std::chrono::milliseconds(20);
    std::this_thread::sleep_until(sys_until);
    EXPECT_GE(std::chrono::system_clock::now(), sys_until);
  });
}

// 1000 threads sleep 50 ms each, through the four functions in turn. Sleeping one after the other
// would take 50 s; overlapping, it takes ~50 ms plus thread creation. Each sleep must still last
// at least 50 ms.
TEST(ConcurrentSleep, AThousandThreadsSleepingFiftyMsFinishWellUnderTwoSeconds) {
  constexpr int kThreads = 1000;
  constexpr int64_t kNs = 50 * kNsPerMs;
  std::atomic<int> short_sleeps{0}, errors{0};
  struct Arg { int index; std::atomic<int>* short_sleeps; std::atomic<int>* errors; };
  std::vector<Arg> args(kThreads);
  std::vector<pthread_t> tids(kThreads);
  const int64_t start = NowNs();
  for (int i = 0; i < kThreads; ++i) {
    args[i] = Arg{i, &short_sleeps, &errors};
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<Arg*>(p);
      const int64_t t0 = NowNs();
      const timespec rel = ToTimespec(kNs);
      int rc = 0;
      switch (a->index % 4) {
        case 0: rc = usleep(kNs / 1000); break;
        case 1: rc = nanosleep(&rel, nullptr); break;
        case 2: rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &rel, nullptr); break;
        case 3: {
          const timespec abs = ToTimespec(t0 + kNs);
          rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, nullptr);
          break;
        }
      }
      if (rc != 0) a->errors->fetch_add(1);
      if (NowNs() - t0 < kNs) a->short_sleeps->fetch_add(1);
      return nullptr;
    }, &args[i]));
  }
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  const int64_t elapsed = NowNs() - start;
  EXPECT_EQ(0, errors.load());
  EXPECT_EQ(0, short_sleeps.load());
  EXPECT_LT(elapsed, 2 * kNsPerSec) << "sleeps are serialized?";
  RecordProperty("elapsed_ms", static_cast<int>(elapsed / kNsPerMs));
}

// Many short sleeps from many threads at once: a stress for the timer path.
TEST(ConcurrentSleep, HundredThreadsDoingAHundredShortSleepsEach) {
  std::vector<std::thread> threads;
  std::atomic<int> short_sleeps{0};
  const int64_t start = NowNs();
  for (int i = 0; i < 100; ++i) {
    threads.emplace_back([&short_sleeps] {
      for (int j = 0; j < 100; ++j) {
        const int64_t t0 = NowNs();
        usleep(100);
        if (NowNs() - t0 < 100 * 1000) short_sleeps++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(0, short_sleeps.load());
  EXPECT_LT(NowNs() - start, 10 * kNsPerSec);
}

// While the main thread sleeps, another thread keeps running (on one carrier that requires the
// sleep to give the carrier away).
TEST(ConcurrentSleep, OtherThreadsRunWhileTheMainThreadSleeps) {
  struct Arg { std::atomic<bool> stop{false}; std::atomic<int64_t> iterations{0}; } arg;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
    auto* a = static_cast<Arg*>(p);
    while (!a->stop.load()) {
      a->iterations++;
      sched_yield();
    }
    return nullptr;
  }, &arg));
  usleep(100000);
  const int64_t during_sleep = arg.iterations.load();
  arg.stop = true;
  ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_GT(during_sleep, 0);
}

TEST(Yield, SchedYieldAndPthreadYieldReturnZero) {
  RunHereAndInThread([] {
    EXPECT_EQ(0, sched_yield());
    EXPECT_EQ(0, compat_pthread_yield());
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    EXPECT_EQ(0, pthread_yield());  // compiles to sched_yield (see the top of the file)
#pragma GCC diagnostic pop
  });
}

// The main thread spins on a flag that only another thread sets, yielding in between. On one
// carrier this only terminates if yielding lets the other thread run.
void SpinUntilAnotherThreadSetsAFlag(int (*yield)()) {
  static std::atomic<bool> flag;
  flag = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    flag = true;
    return nullptr;
  }, nullptr));
  const int64_t deadline = NowNs() + 20 * kNsPerSec;
  int64_t spins = 0;
  while (!flag.load() && NowNs() < deadline) {
    ASSERT_EQ(0, yield());
    ++spins;
  }
  EXPECT_TRUE(flag.load()) << "the other thread never ran while we yielded " << spins << " times";
  ASSERT_EQ(0, pthread_join(t, nullptr));
}

TEST(Yield, SchedYieldLetsAnotherThreadRun) { SpinUntilAnotherThreadSetsAFlag(sched_yield); }

TEST(Yield, CompatPthreadYieldLetsAnotherThreadRun) {
  SpinUntilAnotherThreadSetsAFlag(compat_pthread_yield);
}

// Two threads take strict turns, each spinning with sched_yield until it is its turn. With one
// carrier this is cooperative scheduling made visible: every turn needs a yield to switch.
TEST(Yield, TwoThreadsAlternateStrictlyThroughYields) {
  constexpr int kTurns = 10000;
  struct Shared { std::atomic<int> turn{0}; std::atomic<int> count{0}; std::atomic<bool> timed_out{false}; };
  Shared shared;
  struct Arg { Shared* s; int me; int64_t deadline; };
  const int64_t deadline = NowNs() + 30 * kNsPerSec;
  Arg args[2] = {{&shared, 0, deadline}, {&shared, 1, deadline}};
  pthread_t t[2];
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(0, pthread_create(&t[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<Arg*>(p);
      for (int n = 0; n < kTurns; ++n) {
        while (a->s->turn.load() != a->me) {
          if (a->s->timed_out.load()) return nullptr;
          if (NowNs() > a->deadline) {
            a->s->timed_out = true;
            return nullptr;
          }
          sched_yield();
        }
        // Only the thread whose turn it is runs this: count is even for thread 0, odd for 1.
        if (a->s->count.load() % 2 != a->me) return reinterpret_cast<void*>(1);
        a->s->count++;
        a->s->turn = 1 - a->me;
      }
      return nullptr;
    }, &args[i]));
  }
  void* r0;
  void* r1;
  ASSERT_EQ(0, pthread_join(t[0], &r0));
  ASSERT_EQ(0, pthread_join(t[1], &r1));
  EXPECT_FALSE(shared.timed_out.load());
  EXPECT_EQ(nullptr, r0);
  EXPECT_EQ(nullptr, r1);
  EXPECT_EQ(2 * kTurns, shared.count.load());
}

}  // namespace
}  // namespace vthread_test
