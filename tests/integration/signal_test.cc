// pthread_kill: the handler runs in the target thread (its pthread_self and thread-locals), error
// codes are glibc's, and signalling oneself or raise() runs the handler before returning.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

thread_local int t_identity = 0;
std::atomic<int> g_handled_identity{0};
std::atomic<bool> g_handler_self_matches{false};
std::atomic<int> g_handled{0};
pthread_t g_expected_self;

void OnUsr1(int) {
  g_handled_identity = t_identity;
  g_handler_self_matches = pthread_equal(pthread_self(), g_expected_self);
  g_handled++;
}

class SignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct sigaction action = {};
    action.sa_handler = OnUsr1;
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &action, &old_), 0);
    g_handled = 0;
  }
  void TearDown() override { sigaction(SIGUSR1, &old_, nullptr); }
  struct sigaction old_;
};

struct Target {
  std::atomic<bool> ready{false};
  std::atomic<bool> stop{false};
};

void* WaitUntilStopped(void* p) {
  auto* target = static_cast<Target*>(p);
  t_identity = 77;
  target->ready = true;
  while (!target->stop) {
    sched_yield();
    usleep(100);
  }
  return nullptr;
}

TEST_F(SignalTest, HandlerRunsInTheTargetThread) {
  Target target;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, nullptr, WaitUntilStopped, &target), 0);
  while (!target.ready) usleep(100);
  g_expected_self = thread;
  ASSERT_EQ(pthread_kill(thread, SIGUSR1), 0);
  for (int i = 0; i < 5000 && g_handled == 0; ++i) usleep(200);
  EXPECT_EQ(g_handled.load(), 1);
  EXPECT_EQ(g_handled_identity.load(), 77);
  EXPECT_TRUE(g_handler_self_matches.load());
  target.stop = true;
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
}

TEST_F(SignalTest, SignallingYourselfRunsTheHandlerBeforeReturning) {
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, nullptr, [](void*) -> void* {
    t_identity = 5;
    g_expected_self = pthread_self();
    if (pthread_kill(pthread_self(), SIGUSR1) != 0 || g_handled != 1 || g_handled_identity != 5) {
      return reinterpret_cast<void*>(1);
    }
    t_identity = 6;
    if (raise(SIGUSR1) != 0 || g_handled != 2 || g_handled_identity != 6) return reinterpret_cast<void*>(2);
    return nullptr;
  }, nullptr), 0);
  void* result;
  ASSERT_EQ(pthread_join(thread, &result), 0);
  EXPECT_EQ(result, nullptr);
}

TEST_F(SignalTest, ErrorCodesAreGlibcs) {
  Target target;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, nullptr, WaitUntilStopped, &target), 0);
  EXPECT_EQ(pthread_kill(thread, 0), 0);
  EXPECT_EQ(pthread_kill(thread, -1), EINVAL);
  EXPECT_EQ(pthread_kill(thread, 65), EINVAL);
  EXPECT_EQ(pthread_kill(thread, 32), EINVAL);  // SIGCANCEL, glibc's own
  EXPECT_EQ(pthread_kill(thread, 33), EINVAL);  // SIGSETXID, glibc's own
  target.stop = true;
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  // A joined thread's handle is gone; glibc cannot always tell (its descriptor may be reused), the
  // shim can.
  if (ExpectFibers()) {
    EXPECT_EQ(pthread_kill(thread, 0), ESRCH);
  }
}

}  // namespace
}  // namespace vthread_test
