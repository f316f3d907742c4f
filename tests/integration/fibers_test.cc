// M:N check: under the shim (VTHREAD_EXPECT_FIBERS set) 10,000 live threads must be fibers on a
// handful of kernel tasks: /proc/self/task may hold at most VTHREAD_CARRIERS + 8 entries (the
// carriers, the main thread, and a few helpers the runtime may keep). Natively every pthread is a
// kernel task, so the same tests run with 200 threads and assert the opposite bound, which shows
// the measurement itself works.
//
// The threads block in the two ways this round of the shim supports: sleeping (polling a flag
// with a growing sleep period) and pthread_join (a chain, each thread joining its predecessor).
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

int ThreadCount() { return ExpectFibers() ? 10000 : 200; }

void CheckTaskCount(int tasks, int threads) {
  ::testing::Test::RecordProperty("kernel_tasks", tasks);
  ASSERT_GT(tasks, 0) << "cannot read /proc/self/task";
  if (ExpectFibers()) {
    EXPECT_LE(tasks, Carriers() + 8) << threads << " live threads should be fibers on "
                                     << Carriers() << " carriers";
  } else {
    EXPECT_GE(tasks, threads + 1) << "natively every thread is a kernel task";
  }
}

struct SleeperArgs {
  int index;
  std::atomic<int>* alive;
  const Gate* release;
};

TEST(Fibers, ManySleepingThreadsLiveOnFewKernelTasks) {
  const int n = ThreadCount();
  std::atomic<int> alive{0};
  Gate release;
  std::vector<SleeperArgs> args(n);
  std::vector<pthread_t> tids(n);
  for (int i = 0; i < n; ++i) {
    args[i] = SleeperArgs{i, &alive, &release};
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<SleeperArgs*>(p);
      a->alive->fetch_add(1);
      a->release->Wait(64000);
      return reinterpret_cast<void*>(intptr_t{a->index} + 1);
    }, &args[i])) << "thread " << i;
  }
  ASSERT_TRUE(PollUntil([&] { return alive.load() == n; }, 60000)) << alive.load() << " of " << n;
  // Every thread has started and none can finish before the release: all n are alive now.
  CheckTaskCount(KernelTaskCount(), n);
  release.Open();
  int64_t sum = 0;
  for (int i = 0; i < n; ++i) {
    void* r;
    ASSERT_EQ(0, pthread_join(tids[i], &r));
    sum += reinterpret_cast<intptr_t>(r);
  }
  EXPECT_EQ(int64_t{n} * (n + 1) / 2, sum);
}

// Thread i joins thread i-1 and returns its result plus i; thread 0 waits for the release. While
// the chain is blocked in pthread_join no timers are involved at all.
struct ChainLink {
  int index;
  pthread_t prev;
  std::atomic<int>* alive;
  const Gate* release;
};

void* ChainMain(void* p) {
  auto* link = static_cast<ChainLink*>(p);
  link->alive->fetch_add(1);
  if (link->index == 0) {
    link->release->Wait(64000);
    return nullptr;
  }
  void* r;
  if (pthread_join(link->prev, &r) != 0) return reinterpret_cast<void*>(-(intptr_t{1} << 40));
  return reinterpret_cast<void*>(reinterpret_cast<intptr_t>(r) + link->index);
}

TEST(Fibers, AJoinChainOfManyThreadsLivesOnFewKernelTasks) {
  const int n = ThreadCount();
  std::atomic<int> alive{0};
  Gate release;
  std::vector<ChainLink> links(n);
  pthread_t prev{};
  for (int i = 0; i < n; ++i) {
    links[i] = ChainLink{i, prev, &alive, &release};
    ASSERT_EQ(0, pthread_create(&prev, nullptr, ChainMain, &links[i])) << "thread " << i;
  }
  ASSERT_TRUE(PollUntil([&] { return alive.load() == n; }, 60000)) << alive.load() << " of " << n;
  CheckTaskCount(KernelTaskCount(), n);
  release.Open();
  void* r;
  ASSERT_EQ(0, pthread_join(prev, &r));
  EXPECT_EQ(int64_t{n} * (n - 1) / 2, reinterpret_cast<intptr_t>(r));
}

// Even with threads coming and going continuously, the kernel task count stays bounded.
TEST(Fibers, ChurningThreadsNeverMultiplyKernelTasks) {
  const int waves = 20, per_wave = ExpectFibers() ? 500 : 50;
  int max_tasks = 0;
  for (int w = 0; w < waves; ++w) {
    std::vector<pthread_t> tids(per_wave);
    for (auto& t : tids) {
      ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
        usleep(20000);  // long enough that a whole wave is alive at once
        return nullptr;
      }, nullptr));
    }
    max_tasks = std::max(max_tasks, KernelTaskCount());
    for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  }
  RecordProperty("max_kernel_tasks", max_tasks);
  if (ExpectFibers()) {
    EXPECT_LE(max_tasks, Carriers() + 8);
  } else {
    EXPECT_GT(max_tasks, per_wave / 2);  // natively they are kernel tasks
  }
}

}  // namespace
}  // namespace vthread_test
