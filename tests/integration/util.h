// Helpers shared by the integration gtests. These tests are ordinary pthread programs: they never
// include or link vthread, and they run both natively and under LD_PRELOAD=libvthread.so.
#ifndef VTHREAD_TESTS_INTEGRATION_UTIL_H_
#define VTHREAD_TESTS_INTEGRATION_UTIL_H_

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <utility>

#include "gtest/gtest.h"

namespace vthread_test {

constexpr int64_t kNsPerMs = 1000 * 1000;
constexpr int64_t kNsPerSec = 1000 * kNsPerMs;

inline int64_t NowNs(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

inline timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

// An absolute deadline `delta_ns` from now on `clock`.
inline timespec DeadlineIn(int64_t delta_ns, clockid_t clock = CLOCK_REALTIME) {
  return ToTimespec(NowNs(clock) + delta_ns);
}

// Installs a handler for `sig` for the rest of the scope (a test), and puts back the disposition
// it replaced when the scope ends.
class ScopedHandler {
 public:
  ScopedHandler(int sig, void (*handler)(int), int flags = 0) : sig_(sig) {
    struct sigaction action = {};
    action.sa_handler = handler;
    Install(action, flags);
  }
  ScopedHandler(int sig, void (*handler)(int, siginfo_t*, void*), int flags = 0) : sig_(sig) {
    struct sigaction action = {};
    action.sa_sigaction = handler;
    Install(action, flags | SA_SIGINFO);
  }
  ~ScopedHandler() { sigaction(sig_, &old_, nullptr); }
  ScopedHandler(const ScopedHandler&) = delete;
  ScopedHandler& operator=(const ScopedHandler&) = delete;

 private:
  void Install(struct sigaction& action, int flags) {
    action.sa_flags = flags;
    sigemptyset(&action.sa_mask);
    EXPECT_EQ(sigaction(sig_, &action, &old_), 0);
  }
  int sig_;
  struct sigaction old_ = {};
};

// True when the test runs under the shim (tests/defs.bzl sets it for the vthread variants only).
inline bool ExpectFibers() {
  const char* v = getenv("VTHREAD_EXPECT_FIBERS");
  return v != nullptr && *v != '\0' && strcmp(v, "0") != 0;
}

// Carrier (kernel) threads the shim runs on: VTHREAD_CARRIERS, else the number of CPUs.
inline int Carriers() {
  const char* v = getenv("VTHREAD_CARRIERS");
  if (v != nullptr && atoi(v) > 0) return atoi(v);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

// Kernel tasks of this process, i.e. entries of /proc/self/task.
inline int KernelTaskCount() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n;
}

// Sleeps with a growing period, for threads that wait for a flag. Polling every millisecond from
// thousands of threads would turn the test into a timer benchmark; the period grows to `cap_us`.
class Backoff {
 public:
  explicit Backoff(useconds_t cap_us = 64000) : cap_us_(cap_us) {}
  void Pause() {
    usleep(us_);
    if (us_ < cap_us_) us_ = us_ * 2 > cap_us_ ? cap_us_ : us_ * 2;
  }

 private:
  useconds_t us_ = 1000;
  useconds_t cap_us_;
};

// Waits (polling with short sleeps, so other threads can run even on one carrier) until `pred`
// holds or `timeout_ms` passes. Returns whether `pred` held.
inline bool PollUntil(const std::function<bool()>& pred, int64_t timeout_ms = 30000) {
  const int64_t deadline = NowNs() + timeout_ms * kNsPerMs;
  while (!pred()) {
    if (NowNs() > deadline) return false;
    usleep(1000);
  }
  return true;
}

// A flag that waiting threads poll with Backoff. Stands in for a condition variable.
class Gate {
 public:
  void Open() { open_.store(true, std::memory_order_release); }
  bool IsOpen() const { return open_.load(std::memory_order_acquire); }
  void Wait(useconds_t cap_us = 64000) const {
    Backoff b(cap_us);
    while (!IsOpen()) b.Pause();
  }

 private:
  std::atomic<bool> open_{false};
};

// Runs `fn` on a new pthread (with `attr`, if given) and joins it. gtest EXPECT_* inside `fn`
// report normally: the caller is blocked in pthread_join meanwhile, so nothing contends.
inline void RunInThread(std::function<void()> fn, const pthread_attr_t* attr = nullptr) {
  pthread_t t;
  auto trampoline = [](void* p) -> void* {
    (*static_cast<std::function<void()>*>(p))();
    return nullptr;
  };
  ASSERT_EQ(0, pthread_create(&t, attr, trampoline, &fn));
  ASSERT_EQ(0, pthread_join(t, nullptr));
}

// Runs `fn` both on the calling (gtest main) thread and on a freshly created thread: under the
// shim the main thread and created threads may take different paths.
inline void RunHereAndInThread(const std::function<void()>& fn) {
  {
    SCOPED_TRACE("on the main thread");
    fn();
  }
  RunInThread([&fn] {
    SCOPED_TRACE("on a created thread");  // gtest's trace stack is per thread
    fn();
  });
}

}  // namespace vthread_test

#endif  // VTHREAD_TESTS_INTEGRATION_UTIL_H_
