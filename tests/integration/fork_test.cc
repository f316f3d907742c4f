// fork() from any thread while others run: the child continues with only the calling thread, can
// create and synchronise threads again, keeps the caller's thread-local state, and sees the
// pthread_atfork handlers in POSIX order. posix_spawn, system and popen work from threads.
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

extern char** environ;

namespace vthread_test {
namespace {

// Threads that keep sleeping and yielding (and so are queued, parked or running on every carrier)
// until stopped, counting their rounds in g_ticks.
std::atomic<long> g_ticks{0};

class Background {
 public:
  explicit Background(int n) : threads_(n) {
    for (pthread_t& t : threads_) {
      EXPECT_EQ(pthread_create(&t, nullptr, [](void* p) -> void* {
        auto* stop = static_cast<std::atomic<bool>*>(p);
        while (!stop->load()) {
          g_ticks++;
          sched_yield();
          usleep(50);
        }
        return nullptr;
      }, &stop_), 0);
    }
  }
  ~Background() {
    stop_ = true;
    for (pthread_t t : threads_) pthread_join(t, nullptr);
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<pthread_t> threads_;
};

// Runs in a fork child: starts threads that use a mutex and condition variable, joins them.
// Returns an exit status: 0 if all went as expected.
int ChildWork() {
  // None of the parent's other threads exists here: nothing else counts ticks.
  long ticks = g_ticks.load();
  usleep(20000);
  if (g_ticks.load() != ticks) return 13;
  static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  static int turn;
  turn = 0;
  constexpr int kThreads = 8;
  pthread_t threads[kThreads];
  for (long i = 0; i < kThreads; ++i) {
    if (pthread_create(&threads[i], nullptr, [](void* arg) -> void* {
      long me = reinterpret_cast<long>(arg);
      pthread_mutex_lock(&mutex);
      while (turn != me) pthread_cond_wait(&cond, &mutex);
      ++turn;
      pthread_cond_broadcast(&cond);
      pthread_mutex_unlock(&mutex);
      return arg;
    }, reinterpret_cast<void*>(i)) != 0) {
      return 10;
    }
  }
  for (long i = 0; i < kThreads; ++i) {
    void* result;
    if (pthread_join(threads[i], &result) != 0 || result != reinterpret_cast<void*>(i)) return 11;
  }
  usleep(1000);
  return turn == kThreads ? 0 : 12;
}

int WaitForChild(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

__thread int t_marker = 0;

TEST(Fork, FromAThreadTheChildHasOnlyThatThreadAndCanCreateMore) {
  Background busy(16);
  struct Result {
    int status;
  } result{-1};
  pthread_t forker;
  ASSERT_EQ(pthread_create(&forker, nullptr, [](void* p) -> void* {
    t_marker = 4242;
    errno = 0;
    pid_t child = fork();
    if (child == 0) {
      // Only this thread exists here: its TLS came along.
      if (t_marker != 4242) _exit(20);
      int rc = ChildWork();
      if (rc != 0) _exit(rc);
      if (t_marker != 4242) _exit(21);
      _exit(0);
    }
    static_cast<Result*>(p)->status = WaitForChild(child);
    return nullptr;
  }, &result), 0);
  ASSERT_EQ(pthread_join(forker, nullptr), 0);
  EXPECT_EQ(result.status, 0);
}

TEST(Fork, FromMainWhileThreadsRun) {
  Background busy(16);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(ChildWork());
  EXPECT_EQ(WaitForChild(child), 0);
}

TEST(Fork, ChildThreadExitingLastEndsTheChildWithStatusZero) {
  Background busy(4);
  pthread_t forker;
  std::atomic<int> status{-1};
  ASSERT_EQ(pthread_create(&forker, nullptr, [](void* p) -> void* {
    pid_t child = fork();
    if (child == 0) pthread_exit(nullptr);  // the child's only thread: the process exits with 0
    static_cast<std::atomic<int>*>(p)->store(WaitForChild(child));
    return nullptr;
  }, &status), 0);
  ASSERT_EQ(pthread_join(forker, nullptr), 0);
  EXPECT_EQ(status.load(), 0);
}

// The order handlers ran in, recorded in memory shared with the child.
struct AtforkLog {
  char events[64];
  std::atomic<int> length;
  // Later tests fork too, and the handlers stay registered: keep only the first events.
  void add(char c) {
    int at = length++;
    if (at < static_cast<int>(sizeof events)) events[at] = c;
  }
};
AtforkLog* g_log;

TEST(Fork, AtforkHandlersRunInPosixOrder) {
  void* shared = mmap(nullptr, sizeof(AtforkLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  g_log = new (shared) AtforkLog();
  // Prepare handlers run in reverse order of registration, parent and child handlers in order.
  ASSERT_EQ(pthread_atfork([] { g_log->add('1'); }, [] { g_log->add('a'); }, [] { g_log->add('A'); }), 0);
  ASSERT_EQ(pthread_atfork([] { g_log->add('2'); }, [] { g_log->add('b'); }, [] { g_log->add('B'); }), 0);
  Background busy(4);
  pthread_t forker;
  ASSERT_EQ(pthread_create(&forker, nullptr, [](void*) -> void* {
    pid_t child = fork();
    if (child == 0) _exit(0);
    WaitForChild(child);
    return nullptr;
  }, nullptr), 0);
  ASSERT_EQ(pthread_join(forker, nullptr), 0);
  std::string events(g_log->events, std::min<int>(g_log->length.load(), sizeof g_log->events));
  // Prepare "21"; then the parent's "ab" and the child's "AB" in either interleaving.
  ASSERT_EQ(events.size(), 6u) << events;
  EXPECT_EQ(events.substr(0, 2), "21");
  std::string parent, child;
  for (char c : events.substr(2)) (islower(c) ? parent : child) += c;
  EXPECT_EQ(parent, "ab");
  EXPECT_EQ(child, "AB");
}

TEST(Fork, SpawnSystemAndPopenFromThreads) {
  Background busy(8);
  std::atomic<int> bad{0};
  std::vector<pthread_t> threads(6);
  for (size_t i = 0; i < threads.size(); ++i) {
    ASSERT_EQ(pthread_create(&threads[i], nullptr, [](void* p) -> void* {
      auto* bad = static_cast<std::atomic<int>*>(p);
      pid_t pid;
      char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>("exit 7"), nullptr};
      if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, environ) != 0 || WaitForChild(pid) != 7) (*bad)++;
      int status = system("exit 3");
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 3) (*bad)++;
      FILE* out = popen("echo vthread", "r");
      char line[32] = {};
      if (!out || !fgets(line, sizeof line, out) || strcmp(line, "vthread\n") != 0) (*bad)++;
      if (out && pclose(out) != 0) (*bad)++;
      return nullptr;
    }, &bad), 0);
  }
  for (pthread_t t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_EQ(bad.load(), 0);
}

TEST(Fork, RepeatedForksFromManyThreads) {
  Background busy(8);
  std::atomic<int> bad{0};
  std::vector<pthread_t> threads(8);
  for (pthread_t& t : threads) {
    ASSERT_EQ(pthread_create(&t, nullptr, [](void* p) -> void* {
      for (int i = 0; i < 5; ++i) {
        pid_t child = fork();
        if (child == 0) {
          pthread_t inner;
          if (pthread_create(&inner, nullptr, [](void*) -> void* { return nullptr; }, nullptr) != 0) _exit(1);
          _exit(pthread_join(inner, nullptr) == 0 ? 0 : 2);
        }
        if (child < 0 || WaitForChild(child) != 0) (*static_cast<std::atomic<int>*>(p))++;
      }
      return nullptr;
    }, &bad), 0);
  }
  for (pthread_t t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace vthread_test
