// Thread-local storage of an unmodified program: C++ thread_local / __thread variables and errno
// must be per *thread* (per fiber under the shim), not per carrier. The values must survive
// sleeps and yields, after which a fiber may resume on another carrier or share a carrier with
// other fibers. thread_local objects with destructors are destroyed when their thread exits,
// before pthread_join returns (glibc's start_thread calls __call_tls_dtors).
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

thread_local int t_counter = 0;
__thread intptr_t t_plain = -1;  // the C spelling; static TLS with a non-zero initial image
thread_local std::string t_string = "initial";

struct PerThread {
  int index;
  const Gate* gate;
  std::atomic<int>* alive;
  std::atomic<int>* bad;
  const void* counter_addr = nullptr;
  const void* errno_addr = nullptr;
};

// 200 threads, all alive together, each writes its own values, then re-reads them across many
// sleeps and yields while the others do the same.
TEST(Tls, ThreadLocalsAndErrnoArePerThreadAcrossSleepsAndYields) {
  constexpr int kThreads = 200;
  Gate gate;
  std::atomic<int> alive{0}, bad{0};
  std::vector<PerThread> args(kThreads);
  std::vector<pthread_t> tids(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    args[i] = PerThread{i, &gate, &alive, &bad};
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<PerThread*>(p);
      // Fresh threads see the initial images, not another thread's values.
      if (t_counter != 0 || t_plain != -1 || t_string != "initial") a->bad->fetch_add(1);
      t_counter = a->index;
      t_plain = a->index * 3;
      t_string = "thread " + std::to_string(a->index);
      a->counter_addr = &t_counter;
      a->errno_addr = &errno;
      a->alive->fetch_add(1);
      a->gate->Wait(4000);
      for (int round = 0; round < 30; ++round) {
        if (round % 3 == 0) sched_yield(); else usleep(200);
        if (t_counter != a->index || t_plain != a->index * 3 ||
            t_string != "thread " + std::to_string(a->index) || &t_counter != a->counter_addr ||
            &errno != a->errno_addr) {
          a->bad->fetch_add(1);
        }
        ++t_counter;
        --t_counter;
      }
      return nullptr;
    }, &args[i]));
  }
  EXPECT_TRUE(PollUntil([&] { return alive.load() == kThreads; }));
  gate.Open();
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(0, bad.load());
  // Live threads have distinct TLS blocks (and distinct errno).
  std::vector<const void*> addrs;
  for (auto& a : args) addrs.push_back(a.counter_addr);
  for (auto& a : args) addrs.push_back(a.errno_addr);
  std::sort(addrs.begin(), addrs.end());
  EXPECT_EQ(addrs.end(), std::adjacent_find(addrs.begin(), addrs.end()));
  // The main thread's copies were never touched.
  EXPECT_EQ(0, t_counter);
  EXPECT_EQ(-1, t_plain);
  EXPECT_EQ("initial", t_string);
}

// Each thread stores its own marker in errno, then sleeps and yields while 49 others do the same.
// A successful usleep/sched_yield may legally change errno (POSIX), so a runtime that uses errno
// internally may leave a real error number there; but it must never show another thread's marker.
TEST(Tls, ErrnoIsNeverAnotherThreadsValue) {
  std::atomic<int> foreign{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([i, &foreign] {
      const int mine = 100000 + i;
      for (int round = 0; round < 20; ++round) {
        errno = mine;
        if (round % 2) usleep(100); else sched_yield();
        if (errno >= 100000 && errno != mine) foreign++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(0, foreign.load());
}

// thread_local objects are constructed on first use in each thread and destroyed at its exit,
// before the joiner wakes up. (GCC initializes all dynamically-initialized thread_locals of a
// translation unit together, so earlier tests' threads have counted too: compare deltas.)
std::atomic<int> g_constructed{0}, g_destroyed{0};
struct Tracked {
  Tracked() { g_constructed++; }
  ~Tracked() { g_destroyed++; }
  int value = 0;
};
thread_local Tracked t_tracked;

TEST(Tls, ThreadLocalObjectsAreDestroyedAtThreadExitBeforeJoinReturns) {
  const int constructed0 = g_constructed.load();
  const int destroyed0 = g_destroyed.load();
  std::vector<pthread_t> tids(20);
  for (auto& t : tids) {
    ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
      t_tracked.value++;  // first use constructs it
      usleep(1000);
      return nullptr;
    }, nullptr));
  }
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(constructed0 + 20, g_constructed.load());
  EXPECT_EQ(destroyed0 + 20, g_destroyed.load());
  std::thread([] { t_tracked.value = 1; }).join();  // and for std::thread
  EXPECT_EQ(destroyed0 + 21, g_destroyed.load());
  // pthread_exit path too.
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    t_tracked.value = 2;
    pthread_exit(nullptr);
  }, nullptr));
  ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(destroyed0 + 22, g_destroyed.load());
}

}  // namespace
}  // namespace vthread_test
