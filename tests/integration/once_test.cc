// pthread_once: exactly one run of the init routine however many threads race for it, and every
// caller returns only after that run completed.
#include <pthread.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

// pthread_once from 100 threads released together: the init routine (which sleeps, so the others
// arrive while it is in progress and must wait for it) runs exactly once, and every caller returns
// only after it completed and sees its effect. g_once_value is deliberately non-atomic: pthread_once
// itself must provide the memory synchronization.
pthread_once_t g_once = PTHREAD_ONCE_INIT;
std::atomic<int> g_once_runs{0};
int g_once_value = 0;

TEST(Once, ConcurrentCallersRunInitExactlyOnceAndAllSeeItDone) {
  constexpr int kThreads = 100;
  struct Shared { Gate gate; std::atomic<int> seen_done{0}; std::atomic<int> ok_rc{0}; } shared;
  std::vector<pthread_t> tids(kThreads);
  for (auto& t : tids) {
    ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
      auto* s = static_cast<Shared*>(p);
      s->gate.Wait(2000);
      const int rc = pthread_once(&g_once, [] {
        g_once_runs.fetch_add(1);
        usleep(50000);
        g_once_value = 42;
      });
      if (rc == 0) s->ok_rc.fetch_add(1);
      if (g_once_value == 42) s->seen_done.fetch_add(1);
      return nullptr;
    }, &shared));
  }
  usleep(5000);
  shared.gate.Open();
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(1, g_once_runs.load());
  EXPECT_EQ(kThreads, shared.ok_rc.load());
  EXPECT_EQ(kThreads, shared.seen_done.load());
  // Later calls, from any thread, do nothing.
  EXPECT_EQ(0, pthread_once(&g_once, [] { g_once_runs.fetch_add(1); }));
  RunInThread([] { EXPECT_EQ(0, pthread_once(&g_once, [] { g_once_runs.fetch_add(1); })); });
  EXPECT_EQ(1, g_once_runs.load());
}

// An init routine may itself call pthread_once on a different control.
pthread_once_t g_outer = PTHREAD_ONCE_INIT, g_inner = PTHREAD_ONCE_INIT;
std::atomic<int> g_nested_trace{0};

TEST(Once, InitRoutineMayCallPthreadOnceOnAnotherControl) {
  EXPECT_EQ(0, pthread_once(&g_outer, [] {
    g_nested_trace = g_nested_trace * 10 + 1;
    pthread_once(&g_inner, [] { g_nested_trace = g_nested_trace * 10 + 2; });
    g_nested_trace = g_nested_trace * 10 + 3;
  }));
  EXPECT_EQ(0, pthread_once(&g_inner, [] { g_nested_trace = -1; }));
  EXPECT_EQ(123, g_nested_trace.load());
}

// Independent controls do not share state: each of 50 controls, hammered by 4 threads each,
// runs its own routine exactly once.
pthread_once_t g_controls[50];
std::atomic<int> g_control_runs[50];
template <int I> void InitControl() { g_control_runs[I].fetch_add(1); usleep(1000); }
template <int... I> constexpr std::array<void (*)(), sizeof...(I)> MakeInits(std::integer_sequence<int, I...>) {
  return {&InitControl<I>...};
}
constexpr auto kInits = MakeInits(std::make_integer_sequence<int, 50>());

TEST(Once, IndependentControlsEachRunTheirRoutineOnce) {
  for (auto& c : g_controls) c = PTHREAD_ONCE_INIT;
  std::vector<pthread_t> tids(200);
  for (size_t i = 0; i < tids.size(); ++i) {
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      const int c = static_cast<int>(reinterpret_cast<intptr_t>(p) % 50);
      pthread_once(&g_controls[c], kInits[c]);
      return nullptr;
    }, reinterpret_cast<void*>(i)));
  }
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  for (int c = 0; c < 50; ++c) EXPECT_EQ(1, g_control_runs[c].load()) << c;
}

}  // namespace
}  // namespace vthread_test
