// What pthread_exit does to the exiting thread's stack, beyond ending it (lifecycle_test covers
// the value). POSIX requires the cancellation cleanup handlers still pushed to run, last pushed
// first. In C++ glibc implements pthread_exit as a forced unwind (abi::__forced_unwind), so the
// destructors of the objects in the unwound frames run too, and pthread_cleanup_push is a scope
// object whose destructor runs the handler. A runtime that implements pthread_exit by just
// switching away from the fiber fails all of these. c_cleanup.c covers the C ABI
// (__pthread_register_cancel / __pthread_unwind_next) path.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

std::vector<std::string>* g_events;  // written only by the one thread a test runs at a time

struct Noisy {
  explicit Noisy(std::string n) : name(std::move(n)) {}
  ~Noisy() { g_events->push_back("~" + name); }
  std::string name;
};

void ExitAtDepth(int depth) {
  Noisy n("frame" + std::to_string(depth));
  if (depth < 0) return;
  if (depth == 0) pthread_exit(reinterpret_cast<void*>(0x77));
  ExitAtDepth(depth - 1);
  g_events->push_back("unreachable");
}

TEST(PthreadExitUnwind, DestructorsOfEveryUnwoundFrameRunInnermostFirst) {
  std::vector<std::string> events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    Noisy outer("start_routine");
    ExitAtDepth(3);
    return nullptr;
  }, nullptr));
  void* r = nullptr;
  ASSERT_EQ(0, pthread_join(t, &r));
  EXPECT_EQ(reinterpret_cast<void*>(0x77), r);
  EXPECT_EQ((std::vector<std::string>{"~frame0", "~frame1", "~frame2", "~frame3", "~start_routine"}),
            events);
}

void Handler(void* arg) { g_events->push_back(static_cast<const char*>(arg)); }

TEST(PthreadExitUnwind, CleanupHandlersRunInReverseOrderOnPthreadExit) {
  std::vector<std::string> events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_cleanup_push(Handler, const_cast<char*>("first pushed"));
    pthread_cleanup_push(Handler, const_cast<char*>("second pushed"));
    pthread_cleanup_push(Handler, const_cast<char*>("popped without running"));
    pthread_cleanup_pop(0);
    pthread_cleanup_push(Handler, const_cast<char*>("popped and run"));
    pthread_cleanup_pop(1);
    g_events->push_back("exiting");
    pthread_exit(nullptr);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ((std::vector<std::string>{"popped and run", "exiting", "second pushed", "first pushed"}),
            events);
}

// Key destructors run after the stack has been unwound (POSIX: cleanup handlers first, then
// thread-specific data destructors).
pthread_key_t g_key;

TEST(PthreadExitUnwind, KeyDestructorsRunAfterCleanupHandlers) {
  std::vector<std::string> events;
  g_events = &events;
  ASSERT_EQ(0, pthread_key_create(&g_key, [](void*) { g_events->push_back("key destructor"); }));
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setspecific(g_key, reinterpret_cast<void*>(1));
    Noisy n("local");
    pthread_cleanup_push(Handler, const_cast<char*>("cleanup"));
    pthread_exit(nullptr);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  ASSERT_EQ(0, pthread_join(t, nullptr));
  pthread_key_delete(g_key);
  EXPECT_EQ((std::vector<std::string>{"cleanup", "~local", "key destructor"}), events);
}

// std::thread's body exits through pthread_exit: the unwind passes through libstdc++'s
// thread proxy, which must let abi::__forced_unwind through.
TEST(PthreadExitUnwind, PthreadExitInsideAStdThread) {
  std::vector<std::string> events;
  g_events = &events;
  std::thread t([] {
    Noisy n("in std::thread");
    pthread_exit(nullptr);
  });
  t.join();
  EXPECT_EQ((std::vector<std::string>{"~in std::thread"}), events);
}

// A catch (...) sees the forced unwind, and must rethrow it; the handler's code runs.
TEST(PthreadExitUnwind, CatchAllObservesTheForcedUnwindAndRethrows) {
  static std::atomic<int> caught{0};
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    try {
      pthread_exit(reinterpret_cast<void*>(5));
    } catch (...) {
      caught++;
      throw;
    }
    return nullptr;
  }, nullptr));
  void* r = nullptr;
  ASSERT_EQ(0, pthread_join(t, &r));
  EXPECT_EQ(reinterpret_cast<void*>(5), r);
  EXPECT_EQ(1, caught.load());
}

}  // namespace
}  // namespace vthread_test
