// Preemption in-process, with priorities (which the pthread shim does not map yet): one carrier, a
// 100 ms quantum, and the tick handler installed by the test as the shim would.
#include "sched/preempt.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <time.h>

#include <atomic>

#include "sched/sched.h"

namespace vthread::sched {
namespace {

constexpr Nanos kQuantum = 100 * 1000 * 1000;

class PreemptTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Config config;
    config.carriers = 1;
    config.default_stack_size = 256 * 1024;
    config.quantum = kQuantum;
    ASSERT_TRUE(start(config));
    struct sigaction sa = {};
    sa.sa_sigaction = [](int, siginfo_t* info, void* uc) {
      if (preempt::is_tick(info)) preempt::on_tick(uc);
    };
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NODEFER;
    ASSERT_EQ(sigaction(preempt::configured_signal(), &sa, nullptr), 0);
    preempt::start();
    ASSERT_TRUE(preempt::enabled());
  }
};

std::atomic<bool> g_stop{false};

void spin(void*) {
  while (!g_stop.load(std::memory_order_relaxed)) {
  }
  exit_current(nullptr, nullptr);
}

Fiber* spawn_hog(int priority) {
  SpawnAttributes attributes;
  attributes.priority = priority;
  Fiber* f = nullptr;
  EXPECT_EQ(spawn(attributes, spin, nullptr, nullptr, &f), 0);
  return f;
}

// The carrier's CPU time: main and the hog share its one kernel thread.
Nanos carrier_cpu_time() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return timespec_to_nanos(ts);
}

// The main fiber (default priority) sleeps while a low-priority fiber spins on the only carrier.
// When its timer fires it outranks the spinner and runs at once, not at the end of the quantum.
// Measured in the carrier's CPU time, which is the hog's while main sleeps: on a loaded machine
// the kernel may not run the carrier for a while, but the hog cannot use more of it than the
// sleep plus a little, where without preemption it would use a whole quantum.
TEST_F(PreemptTest, HigherPriorityPreemptsAtOnce) {
  g_stop = false;
  Fiber* hog = spawn_hog(kDefaultPriority - 8);
  uint64_t before = stats().preemptions;
  constexpr Nanos kSleep = 20 * 1000 * 1000;
  for (int i = 0; i < 5; ++i) {
    Nanos cpu_before = carrier_cpu_time();
    sleep_until(monotonic_now() + kSleep);
    EXPECT_LT(carrier_cpu_time() - cpu_before, kSleep + kQuantum / 2) << "the hog ran a quantum: not preempted";
  }
  EXPECT_GT(stats().preemptions, before);
  g_stop = true;
  EXPECT_EQ(join(hog, kNoDeadline, nullptr), JoinResult::kJoined);
}

// A spinner of the main fiber's priority is preempted when its quantum ends (main waits meanwhile).
TEST_F(PreemptTest, EqualPriorityWaitsForTheQuantum) {
  g_stop = false;
  Fiber* hog = spawn_hog(kDefaultPriority);
  Nanos start = monotonic_now();
  yield();  // the hog runs until preempted, then main runs again
  EXPECT_GE(monotonic_now() - start, kQuantum / 2);
  g_stop = true;
  EXPECT_EQ(join(hog, kNoDeadline, nullptr), JoinResult::kJoined);
}

}  // namespace
}  // namespace vthread::sched
