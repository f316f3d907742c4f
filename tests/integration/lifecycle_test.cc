// Thread lifecycle: pthread_create/join/detach/exit, the join variants and their error codes,
// pthread_self/equal, std::thread (pthread_once is in once_test.cc). Expected values are glibc
// 2.36's (checked natively); where glibc differs from a naive reading of POSIX a comment says so.
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

void* ReturnArgPlusOne(void* arg) { return reinterpret_cast<void*>(reinterpret_cast<intptr_t>(arg) + 1); }

// A thread that stays alive (polling, not blocking a carrier) until `gate` opens, then returns
// `result`. Used wherever a test needs a thread that is certainly still running.
struct Held {
  Gate gate;
  void* result = nullptr;
  std::atomic<bool> finished{false};
  static void* Main(void* p) {
    auto* h = static_cast<Held*>(p);
    h->gate.Wait(10000);
    void* r = h->result;
    h->finished.store(true);  // last touch of *h: the owner may destroy it from now on
    return r;
  }
};

TEST(CreateJoin, CreateReturnsZeroAndJoinDeliversTheReturnValue) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, ReturnArgPlusOne, reinterpret_cast<void*>(41)));
  void* result = nullptr;
  ASSERT_EQ(0, pthread_join(t, &result));
  EXPECT_EQ(reinterpret_cast<void*>(42), result);
}

TEST(CreateJoin, JoinWithNullResultPointerIsAllowed) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, ReturnArgPlusOne, nullptr));
  EXPECT_EQ(0, pthread_join(t, nullptr));
}

// Every pointer value must survive the trip, including NULL and all-ones, whether the thread
// returns it or passes it to pthread_exit.
TEST(CreateJoin, JoinDeliversEveryKindOfValueFromReturnAndFromPthreadExit) {
  static int some_static;
  auto heap = std::make_unique<int>(7);
  const std::vector<void*> values = {nullptr, reinterpret_cast<void*>(-1), reinterpret_cast<void*>(1),
                                     &some_static, heap.get()};
  for (bool via_exit : {false, true}) {
    for (void* v : values) {
      struct Arg { void* v; bool via_exit; } arg{v, via_exit};
      pthread_t t;
      ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
        auto* a = static_cast<Arg*>(p);
        if (a->via_exit) pthread_exit(a->v);
        return a->v;
      }, &arg));
      void* result = reinterpret_cast<void*>(0x5a5a);
      ASSERT_EQ(0, pthread_join(t, &result));
      EXPECT_EQ(v, result) << "via_exit=" << via_exit;
    }
  }
}

std::atomic<int> g_after_exit_reached{0};

// Real (non-tail) frames between the start routine and pthread_exit.
void ExitFromDepth(int depth, void* value) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (depth < 0) return;
  if (depth == 0) pthread_exit(value);
  ExitFromDepth(depth - 1, value);
  g_after_exit_reached += 1 + frame[0];  // unreachable: pthread_exit does not return
}

TEST(PthreadExit, FromANestedFunctionEndsTheThreadWithThatValue) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    ExitFromDepth(20, reinterpret_cast<void*>(0x1234));
    g_after_exit_reached++;
    return nullptr;
  }, nullptr));
  void* result = nullptr;
  ASSERT_EQ(0, pthread_join(t, &result));
  EXPECT_EQ(reinterpret_cast<void*>(0x1234), result);
  EXPECT_EQ(0, g_after_exit_reached.load());
}

// All threads are alive at once (each waits for the gate), so their pthread_t values must be
// pairwise distinct; each must equal the handle pthread_create returned.
TEST(ManyThreads, AThousandConcurrentThreadsEachReturnTheirOwnValue) {
  constexpr int kThreads = 1000;
  struct Slot { int index; pthread_t self; std::atomic<int>* alive; const Gate* gate; };
  std::atomic<int> alive{0};
  Gate gate;
  std::vector<Slot> slots(kThreads);
  std::vector<pthread_t> tids(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    slots[i] = Slot{i, pthread_t{}, &alive, &gate};
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      auto* s = static_cast<Slot*>(p);
      s->self = pthread_self();
      s->alive->fetch_add(1);
      s->gate->Wait();
      return reinterpret_cast<void*>(intptr_t{s->index} * 7 + 3);
    }, &slots[i])) << i;
  }
  EXPECT_TRUE(PollUntil([&] { return alive.load() == kThreads; }));
  gate.Open();
  int64_t sum = 0;
  for (int i = 0; i < kThreads; ++i) {
    void* r;
    ASSERT_EQ(0, pthread_join(tids[i], &r));
    EXPECT_EQ(intptr_t{i} * 7 + 3, reinterpret_cast<intptr_t>(r));
    sum += reinterpret_cast<intptr_t>(r);
    EXPECT_TRUE(pthread_equal(tids[i], slots[i].self)) << i;
  }
  EXPECT_EQ(int64_t{kThreads} * (kThreads - 1) / 2 * 7 + 3 * kThreads, sum);
  std::vector<pthread_t> selves;
  for (auto& s : slots) selves.push_back(s.self);
  std::sort(selves.begin(), selves.end());
  EXPECT_EQ(selves.end(), std::adjacent_find(selves.begin(), selves.end()));
}

// Thread resources must be recycled: many more create/join cycles than could coexist.
TEST(ManyThreads, FiveThousandSequentialCreateJoinCycles) {
  for (int i = 0; i < 5000; ++i) {
    pthread_t t;
    ASSERT_EQ(0, pthread_create(&t, nullptr, ReturnArgPlusOne, reinterpret_cast<void*>(i))) << i;
    void* r;
    ASSERT_EQ(0, pthread_join(t, &r)) << i;
    ASSERT_EQ(reinterpret_cast<void*>(i + 1), r);
  }
}

// Every node creates two children and joins them: 1023 threads, most alive at once, created and
// joined by threads other than main.
void* TreeNode(void* arg) {
  const intptr_t depth = reinterpret_cast<intptr_t>(arg);
  if (depth == 0) return reinterpret_cast<void*>(1);
  pthread_t children[2];
  for (auto& c : children) {
    if (pthread_create(&c, nullptr, TreeNode, reinterpret_cast<void*>(depth - 1)) != 0) {
      return reinterpret_cast<void*>(-1000000);  // poisons the count
    }
  }
  intptr_t count = 1;
  for (auto& c : children) {
    void* r;
    if (pthread_join(c, &r) != 0) return reinterpret_cast<void*>(-1000000);
    count += reinterpret_cast<intptr_t>(r);
  }
  return reinterpret_cast<void*>(count);
}

TEST(ManyThreads, ThreadsCreateAndJoinThreadsInATree) {
  pthread_t root;
  ASSERT_EQ(0, pthread_create(&root, nullptr, TreeNode, reinterpret_cast<void*>(9)));
  void* r;
  ASSERT_EQ(0, pthread_join(root, &r));
  EXPECT_EQ(1023, reinterpret_cast<intptr_t>(r));
}

// Any thread may join a joinable thread, not only its creator.
TEST(CreateJoin, AThreadCreatedByAnotherThreadCanBeJoinedByMain) {
  std::atomic<pthread_t*> handle{nullptr};
  static pthread_t grandchild;
  pthread_t child;
  ASSERT_EQ(0, pthread_create(&child, nullptr, [](void* p) -> void* {
    pthread_create(&grandchild, nullptr, ReturnArgPlusOne, reinterpret_cast<void*>(99));
    static_cast<std::atomic<pthread_t*>*>(p)->store(&grandchild);
    return nullptr;
  }, &handle));
  ASSERT_EQ(0, pthread_join(child, nullptr));  // child exits before its grandchild is joined
  ASSERT_NE(nullptr, handle.load());
  void* r;
  ASSERT_EQ(0, pthread_join(*handle.load(), &r));
  EXPECT_EQ(reinterpret_cast<void*>(100), r);
}

// Detached threads (by attribute, by another thread, by themselves) run to completion without
// anyone joining them.
TEST(Detach, DetachedThreadsRunToCompletion) {
  static std::atomic<int> done{0};
  done = 0;
  auto body = [](void* self_detach) -> void* {
    if (self_detach != nullptr && pthread_detach(pthread_self()) != 0) return nullptr;
    usleep(2000);
    done.fetch_add(1);
    return nullptr;
  };
  pthread_attr_t detached;
  ASSERT_EQ(0, pthread_attr_init(&detached));
  ASSERT_EQ(0, pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED));
  for (int i = 0; i < 100; ++i) {
    pthread_t t;
    ASSERT_EQ(0, pthread_create(&t, &detached, body, nullptr));
    ASSERT_EQ(0, pthread_create(&t, nullptr, body, nullptr));
    ASSERT_EQ(0, pthread_detach(t));
    ASSERT_EQ(0, pthread_create(&t, nullptr, body, reinterpret_cast<void*>(1)));
  }
  pthread_attr_destroy(&detached);
  EXPECT_TRUE(PollUntil([] { return done.load() == 300; })) << done.load();
  usleep(50000);  // let them finish exiting before the next test
}

TEST(TryJoin, IsBusyWhileTheThreadRunsAndSucceedsOnceItHasExited) {
  Held h;
  h.result = reinterpret_cast<void*>(77);
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, Held::Main, &h));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(EBUSY, pthread_tryjoin_np(t, nullptr));
    usleep(1000);
  }
  h.gate.Open();
  void* r = nullptr;
  int rc;
  const int64_t deadline = NowNs() + 10 * kNsPerSec;
  while ((rc = pthread_tryjoin_np(t, &r)) == EBUSY && NowNs() < deadline) usleep(1000);
  ASSERT_EQ(0, rc);
  EXPECT_EQ(reinterpret_cast<void*>(77), r);
}

// A timed-out join must not consume the thread: it stays joinable.
TEST(TimedJoin, TimesOutNoEarlierThanTheDeadlineAndLeavesTheThreadJoinable) {
  Held h;
  h.result = reinterpret_cast<void*>(5);
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, Held::Main, &h));
  const int64_t start = NowNs();
  const timespec abstime = DeadlineIn(100 * kNsPerMs, CLOCK_REALTIME);
  EXPECT_EQ(ETIMEDOUT, pthread_timedjoin_np(t, nullptr, &abstime));
  const timespec now = DeadlineIn(0, CLOCK_REALTIME);
  EXPECT_TRUE(now.tv_sec > abstime.tv_sec ||
              (now.tv_sec == abstime.tv_sec && now.tv_nsec >= abstime.tv_nsec));
  EXPECT_GE(NowNs() - start, 95 * kNsPerMs);  // slack only for REALTIME/MONOTONIC skew
  EXPECT_FALSE(h.finished.load());
  h.gate.Open();
  const timespec later = DeadlineIn(30 * kNsPerSec, CLOCK_REALTIME);
  void* r = nullptr;
  ASSERT_EQ(0, pthread_timedjoin_np(t, &r, &later));
  EXPECT_EQ(reinterpret_cast<void*>(5), r);
}

TEST(TimedJoin, PastAndNegativeDeadlinesTimeOutAtOnceWhileTheThreadRuns) {
  Held h;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, Held::Main, &h));
  const int64_t start = NowNs();
  const timespec past = DeadlineIn(-kNsPerSec, CLOCK_REALTIME);
  EXPECT_EQ(ETIMEDOUT, pthread_timedjoin_np(t, nullptr, &past));
  const timespec negative{-1, 0};  // glibc: ETIMEDOUT, not EINVAL
  EXPECT_EQ(ETIMEDOUT, pthread_timedjoin_np(t, nullptr, &negative));
  const timespec mono_past = DeadlineIn(-kNsPerSec, CLOCK_MONOTONIC);
  EXPECT_EQ(ETIMEDOUT, pthread_clockjoin_np(t, nullptr, CLOCK_MONOTONIC, &mono_past));
  EXPECT_LT(NowNs() - start, 5 * kNsPerSec);  // generous: the machine may be loaded
  h.gate.Open();
  // Once the thread has exited, a past deadline no longer matters.
  int rc;
  const int64_t deadline = NowNs() + 10 * kNsPerSec;
  while ((rc = pthread_timedjoin_np(t, nullptr, &past)) == ETIMEDOUT && NowNs() < deadline) usleep(1000);
  EXPECT_EQ(0, rc);
}

// glibc extension: a NULL abstime waits without a timeout, like pthread_join.
TEST(TimedJoin, NullDeadlineWaitsLikeJoin) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    usleep(50000);
    return reinterpret_cast<void*>(3);
  }, nullptr));
  void* r = nullptr;
  ASSERT_EQ(0, pthread_timedjoin_np(t, &r, nullptr));
  EXPECT_EQ(reinterpret_cast<void*>(3), r);
  ASSERT_EQ(0, pthread_create(&t, nullptr, ReturnArgPlusOne, nullptr));
  ASSERT_EQ(0, pthread_clockjoin_np(t, &r, CLOCK_MONOTONIC, nullptr));
  EXPECT_EQ(reinterpret_cast<void*>(1), r);
}

// Note: an abstime with tv_nsec outside [0, 1e9) is NOT tested. glibc 2.36 does not return
// EINVAL for it: its join loop retries the futex (which fails with EINVAL) in a busy loop until
// the thread exits, and then returns 0.
TEST(ClockJoin, MonotonicAndRealtimeDeadlinesTimeOutNoEarlier) {
  for (clockid_t clock : {CLOCK_MONOTONIC, CLOCK_REALTIME}) {
    SCOPED_TRACE(clock == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC" : "CLOCK_REALTIME");
    Held h;
    h.result = reinterpret_cast<void*>(9);
    pthread_t t;
    ASSERT_EQ(0, pthread_create(&t, nullptr, Held::Main, &h));
    const timespec abstime = DeadlineIn(60 * kNsPerMs, clock);
    EXPECT_EQ(ETIMEDOUT, pthread_clockjoin_np(t, nullptr, clock, &abstime));
    EXPECT_GE(NowNs(clock), int64_t{abstime.tv_sec} * kNsPerSec + abstime.tv_nsec);
    h.gate.Open();
    const timespec later = DeadlineIn(30 * kNsPerSec, clock);
    void* r = nullptr;
    ASSERT_EQ(0, pthread_clockjoin_np(t, &r, clock, &later));
    EXPECT_EQ(reinterpret_cast<void*>(9), r);
  }
}

// glibc accepts only CLOCK_REALTIME and CLOCK_MONOTONIC here; everything else is EINVAL
// (including CLOCK_BOOTTIME and CLOCK_TAI, which clock_nanosleep does accept).
TEST(ClockJoin, OtherClocksAreEinval) {
  Held h;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, Held::Main, &h));
  const timespec abstime = DeadlineIn(10 * kNsPerSec, CLOCK_MONOTONIC);
  for (clockid_t clock : {CLOCK_BOOTTIME, CLOCK_TAI, CLOCK_PROCESS_CPUTIME_ID,
                          CLOCK_THREAD_CPUTIME_ID, static_cast<clockid_t>(12345)}) {
    EXPECT_EQ(EINVAL, pthread_clockjoin_np(t, nullptr, clock, &abstime)) << "clock " << clock;
  }
  h.gate.Open();
  EXPECT_EQ(0, pthread_join(t, nullptr));
}

// glibc checks "still running" before anything else in tryjoin, so tryjoin of self is EBUSY,
// while the blocking variants report the deadlock.
TEST(JoinErrors, JoiningSelfIsEdeadlk) {
  RunHereAndInThread([] {
    const pthread_t self = pthread_self();
    EXPECT_EQ(EDEADLK, pthread_join(self, nullptr));
    const timespec rt = DeadlineIn(10 * kNsPerSec, CLOCK_REALTIME);
    EXPECT_EQ(EDEADLK, pthread_timedjoin_np(self, nullptr, &rt));
    const timespec mono = DeadlineIn(10 * kNsPerSec, CLOCK_MONOTONIC);
    EXPECT_EQ(EDEADLK, pthread_clockjoin_np(self, nullptr, CLOCK_MONOTONIC, &mono));
    EXPECT_EQ(EBUSY, pthread_tryjoin_np(self, nullptr));
  });
}

// Joining a detached thread is undefined in POSIX; glibc defines it as EINVAL while the thread
// is still alive (after it exits its handle is dangling, so the thread is kept alive here).
// tryjoin again checks "running" first and says EBUSY.
TEST(JoinErrors, JoiningOrRedetachingADetachedThreadIsEinval) {
  for (bool by_attr : {false, true}) {
    SCOPED_TRACE(by_attr ? "detached by attribute" : "detached by pthread_detach");
    Held h;
    pthread_attr_t attr;
    ASSERT_EQ(0, pthread_attr_init(&attr));
    if (by_attr) {
      ASSERT_EQ(0, pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
    }
    pthread_t t;
    ASSERT_EQ(0, pthread_create(&t, &attr, Held::Main, &h));
    pthread_attr_destroy(&attr);
    if (!by_attr) {
      ASSERT_EQ(0, pthread_detach(t));
    }
    EXPECT_EQ(EINVAL, pthread_detach(t));
    EXPECT_EQ(EINVAL, pthread_join(t, nullptr));
    const timespec rt = DeadlineIn(10 * kNsPerSec, CLOCK_REALTIME);
    EXPECT_EQ(EINVAL, pthread_timedjoin_np(t, nullptr, &rt));
    const timespec mono = DeadlineIn(10 * kNsPerSec, CLOCK_MONOTONIC);
    EXPECT_EQ(EINVAL, pthread_clockjoin_np(t, nullptr, CLOCK_MONOTONIC, &mono));
    EXPECT_EQ(EBUSY, pthread_tryjoin_np(t, nullptr));
    h.gate.Open();
    EXPECT_TRUE(PollUntil([&] { return h.finished.load(); }));
  }
}

TEST(Self, IsStableAcrossSleepsAndYieldsAndEqualsTheCreateHandle) {
  const pthread_t main_self = pthread_self();
  EXPECT_TRUE(pthread_equal(main_self, main_self));
  struct Arg { pthread_t first; bool stable = true; } arg;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
    auto* a = static_cast<Arg*>(p);
    a->first = pthread_self();
    for (int i = 0; i < 50; ++i) {
      if (i % 2) sched_yield(); else usleep(200);
      if (!pthread_equal(a->first, pthread_self())) a->stable = false;
    }
    return nullptr;
  }, &arg));
  usleep(1000);
  EXPECT_TRUE(pthread_equal(main_self, pthread_self()));  // main is unaffected by sleeping
  ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_TRUE(arg.stable);
  EXPECT_TRUE(pthread_equal(t, arg.first));
  EXPECT_FALSE(pthread_equal(t, main_self));
}

// A 1 MiB input and a 256 KiB result travel by pointer; a 64 KiB buffer on the creator's stack
// is read by the thread while the creator is blocked in join.
TEST(Arguments, LargeArgumentsAndResultsPassByPointer) {
  struct Big { std::array<uint32_t, (1 << 20) / 4> data; };
  auto in = std::make_unique<Big>();
  for (size_t i = 0; i < in->data.size(); ++i) in->data[i] = static_cast<uint32_t>(i * 2654435761u);
  const uint64_t expected = std::accumulate(in->data.begin(), in->data.end(), uint64_t{0});
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
    auto* big = static_cast<Big*>(p);
    auto* out = new std::array<uint64_t, 32768>();
    out->fill(std::accumulate(big->data.begin(), big->data.end(), uint64_t{0}));
    return out;
  }, in.get()));
  void* r = nullptr;
  ASSERT_EQ(0, pthread_join(t, &r));
  std::unique_ptr<std::array<uint64_t, 32768>> out(static_cast<std::array<uint64_t, 32768>*>(r));
  EXPECT_EQ(expected, out->front());
  EXPECT_EQ(expected, out->back());

  char on_stack[64 * 1024];
  for (size_t i = 0; i < sizeof on_stack; ++i) on_stack[i] = static_cast<char>(i % 251);
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
    const char* s = static_cast<const char*>(p);
    for (size_t i = 0; i < 64 * 1024; ++i) {
      if (s[i] != static_cast<char>(i % 251)) return reinterpret_cast<void*>(i + 1);
    }
    return nullptr;
  }, on_stack));
  ASSERT_EQ(0, pthread_join(t, &r));
  EXPECT_EQ(nullptr, r);
}

// std::thread is pthread_create underneath (libstdc++ calls it directly).
TEST(StdThread, ManyStdThreadsWithLargeCapturesRunAndJoin) {
  constexpr int kThreads = 200;
  std::vector<uint64_t> results(kThreads);
  std::vector<std::thread::id> ids(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    std::vector<uint64_t> payload(8192, static_cast<uint64_t>(i));  // 64 KiB, moved in
    threads.emplace_back([i, &results, &ids](std::vector<uint64_t> v) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ids[i] = std::this_thread::get_id();
      results[i] = std::accumulate(v.begin(), v.end(), uint64_t{0});
    }, std::move(payload));
  }
  for (auto& t : threads) {
    EXPECT_TRUE(t.joinable());
    t.join();
    EXPECT_FALSE(t.joinable());
  }
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(uint64_t{8192} * i, results[i]);
    EXPECT_NE(std::this_thread::get_id(), ids[i]);
  }
}

TEST(StdThread, DetachedStdThreadRunsToCompletion) {
  static std::atomic<int> done{0};
  for (int i = 0; i < 20; ++i) {
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      done.fetch_add(1);
    }).detach();
  }
  EXPECT_TRUE(PollUntil([] { return done.load() == 20; }));
  usleep(20000);
}

TEST(StdThread, MovedThreadIsJoinedThroughItsNewOwner) {
  std::atomic<int> value{0};
  std::thread a([&value] { value = 5; });
  std::thread b(std::move(a));
  EXPECT_FALSE(a.joinable());
  ASSERT_TRUE(b.joinable());
  b.join();
  EXPECT_EQ(5, value.load());
  EXPECT_GE(std::thread::hardware_concurrency(), 1u);
}

}  // namespace
}  // namespace vthread_test
