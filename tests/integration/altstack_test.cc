// Alternate signal stacks are per thread: what a thread sets with sigaltstack is what it reads
// back, whatever other threads set or free, and handlers that run on an alternate stack are never
// disturbed by other threads' signals. The threads here do what Rust's standard library does in
// every thread: set aside a stack at start, disarm and unmap it at exit.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "tests/integration/util.h"

namespace {

constexpr size_t kAltSize = 64 * 1024;

// Set by a constructor, before main and so before the program has any thread.
stack_t g_main_altstack;
__attribute__((constructor)) void give_main_an_altstack() {
  g_main_altstack.ss_sp = mmap(nullptr, kAltSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  g_main_altstack.ss_size = kAltSize;
  g_main_altstack.ss_flags = 0;
  if (g_main_altstack.ss_sp == MAP_FAILED || sigaltstack(&g_main_altstack, nullptr) != 0) abort();
}

void* MapAltstack() {
  void* mem = mmap(nullptr, kAltSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return mem == MAP_FAILED ? nullptr : mem;
}

// Sets a fresh alternate stack; returns it (null on failure).
void* SetOwnAltstack() {
  void* mem = MapAltstack();
  if (!mem) return nullptr;
  stack_t set = {};
  set.ss_sp = mem;
  set.ss_size = kAltSize;
  return sigaltstack(&set, nullptr) == 0 ? mem : nullptr;
}

// What Rust does at thread exit: disarm, then free.
void DropAltstack(void* mem) {
  stack_t off = {};
  off.ss_flags = SS_DISABLE;
  sigaltstack(&off, nullptr);
  munmap(mem, kAltSize);
}

bool ReadsBack(void* mem) {
  stack_t now;
  return sigaltstack(nullptr, &now) == 0 && now.ss_sp == mem && now.ss_size == kAltSize && now.ss_flags == 0;
}

TEST(Altstack, TheMainThreadKeepsWhatItSetBeforeAnyThreadExisted) {
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr), 0);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_TRUE(ReadsBack(g_main_altstack.ss_sp));
}

TEST(Altstack, ANewThreadHasNone) {
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             stack_t now;
                             if (sigaltstack(nullptr, &now) != 0) return nullptr;
                             return reinterpret_cast<void*>(static_cast<intptr_t>(now.ss_flags));
                           },
                           nullptr),
            0);
  void* flags;
  ASSERT_EQ(pthread_join(t, &flags), 0);
  EXPECT_EQ(reinterpret_cast<intptr_t>(flags), SS_DISABLE);
}

// Threads set their own, read it back across yields and sleeps (and, under vthread, migrations
// between carriers) while others set and free theirs.
std::atomic<int> g_mismatches{0};

void* SetReadBackFree(void*) {
  for (int round = 0; round < 20; ++round) {
    void* mem = SetOwnAltstack();
    if (!mem) {
      g_mismatches.fetch_add(1000);
      return nullptr;
    }
    for (int i = 0; i < 10; ++i) {
      if (!ReadsBack(mem)) g_mismatches.fetch_add(1);
      if (i % 3 == 0) usleep(100);
      sched_yield();
    }
    DropAltstack(mem);
    stack_t now;
    if (sigaltstack(nullptr, &now) != 0 || now.ss_flags != SS_DISABLE) g_mismatches.fetch_add(1);
  }
  return nullptr;
}

TEST(Altstack, EachThreadReadsBackItsOwn) {
  g_mismatches = 0;
  std::vector<pthread_t> threads(8);
  for (auto& t : threads) ASSERT_EQ(pthread_create(&t, nullptr, SetReadBackFree, nullptr), 0);
  for (auto t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_EQ(g_mismatches.load(), 0);
  EXPECT_TRUE(ReadsBack(g_main_altstack.ss_sp));
}

// A profiler's handler on the alternate stack that computes for a while, keeping a pattern in its
// frame: nothing else may write there while it runs (another thread's handler, say, if this one
// were switched out in the middle and the stack reused). SIGPROF is delivered to whichever thread
// is using the CPU, in the middle of its own code.
std::atomic<int> g_corrupted{0};
std::atomic<int> g_handled{0};

void SlowOnstackHandler(int) {
  volatile uint64_t pattern[256];
  uint64_t mine = reinterpret_cast<uint64_t>(&pattern) ^ 0x5a5a5a5a5a5a5a5aull;
  for (auto& word : pattern) word = mine;
  volatile uint64_t sink = 0;
  for (int64_t end = vthread_test::NowNs() + 2 * vthread_test::kNsPerMs; vthread_test::NowNs() < end;) sink = sink + 1;
  for (auto& word : pattern) {
    if (word != mine) {
      g_corrupted.fetch_add(1);
      break;
    }
  }
  g_handled.fetch_add(1);
}

// Computes with its own alternate stack set; half the threads leave early, freeing theirs, while
// the others go on being profiled.
void* ComputeWithAltstack(void* arg) {
  bool leave_early = arg != nullptr;
  void* mem = SetOwnAltstack();
  if (!mem) return nullptr;
  int64_t end = vthread_test::NowNs() + (leave_early ? 100 : 400) * vthread_test::kNsPerMs;
  volatile uint64_t sink = 0;
  while (vthread_test::NowNs() < end) sink = sink + 1;
  DropAltstack(mem);
  return nullptr;
}

TEST(Altstack, ProfilingHandlersOnAlternateStacksAreNotDisturbedByOtherThreads) {
  struct sigaction action = {};
  action.sa_handler = SlowOnstackHandler;
  action.sa_flags = SA_ONSTACK | SA_RESTART;
  sigemptyset(&action.sa_mask);
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGPROF, &action, &old), 0);
  g_corrupted = 0;
  g_handled = 0;
  struct itimerval every_3ms = {{0, 3000}, {0, 3000}}, off = {};
  ASSERT_EQ(setitimer(ITIMER_PROF, &every_3ms, nullptr), 0);
  std::vector<pthread_t> threads(6);
  for (size_t i = 0; i < threads.size(); ++i) {
    ASSERT_EQ(pthread_create(&threads[i], nullptr, ComputeWithAltstack, i % 2 ? &threads : nullptr), 0);
  }
  for (auto t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  ASSERT_EQ(setitimer(ITIMER_PROF, &off, nullptr), 0);
  ASSERT_EQ(sigaction(SIGPROF, &old, nullptr), 0);
  EXPECT_EQ(g_corrupted.load(), 0);
  EXPECT_GT(g_handled.load(), 20);
}

// Inside a handler on the alternate stack: SS_ONSTACK is reported and changes are refused.
std::atomic<int> g_in_handler_flags{-1};
std::atomic<int> g_in_handler_change{-1};

void ReportingHandler(int) {
  stack_t now;
  if (sigaltstack(nullptr, &now) == 0) g_in_handler_flags = now.ss_flags;
  stack_t off = {};
  off.ss_flags = SS_DISABLE;
  g_in_handler_change = sigaltstack(&off, nullptr) == 0 ? 0 : errno;
}

void* ReportFromHandler(void*) {
  void* mem = SetOwnAltstack();
  if (!mem) return nullptr;
  pthread_kill(pthread_self(), SIGUSR2);
  DropAltstack(mem);
  return nullptr;
}

TEST(Altstack, InsideAHandlerOnItItReportsOnstackAndRefusesChanges) {
  struct sigaction action = {};
  action.sa_handler = ReportingHandler;
  action.sa_flags = SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR2, &action, &old), 0);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, ReportFromHandler, nullptr), 0);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  EXPECT_EQ(g_in_handler_flags.load() & SS_ONSTACK, SS_ONSTACK);
  EXPECT_EQ(g_in_handler_change.load(), EPERM);
}

TEST(Altstack, BadArgumentsGetTheKernelsErrors) {
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             static char small[1024];  // below any MINSIGSTKSZ
                             stack_t set = {};
                             set.ss_sp = small;
                             set.ss_size = sizeof small;
                             if (sigaltstack(&set, nullptr) != -1 || errno != ENOMEM) return nullptr;
                             void* mem = MapAltstack();
                             set.ss_sp = mem;
                             set.ss_size = kAltSize;
                             set.ss_flags = 0x1234;
                             if (sigaltstack(&set, nullptr) != -1 || errno != EINVAL) return nullptr;
                             stack_t now;
                             if (sigaltstack(nullptr, &now) != 0 || now.ss_flags != SS_DISABLE) return nullptr;
                             munmap(mem, kAltSize);
                             return mem;
                           },
                           nullptr),
            0);
  void* ok;
  ASSERT_EQ(pthread_join(t, &ok), 0);
  EXPECT_NE(ok, nullptr);
}

// Last, since it frees the main thread's: the main thread drops the stack it set before any
// thread existed, and handlers with SA_ONSTACK still run (on a stack that is not the freed one).
std::atomic<int> g_main_handled{0};

TEST(Altstack, ZMainFreesItsOwnAndHandlersStillRun) {
  DropAltstack(g_main_altstack.ss_sp);
  struct sigaction action = {};
  action.sa_handler = [](int) { g_main_handled.fetch_add(1); };
  action.sa_flags = SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGUSR1, &action, &old), 0);
  for (int i = 0; i < 3; ++i) {
    pthread_kill(pthread_self(), SIGUSR1);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, [](void*) -> void* {
      pthread_kill(pthread_self(), SIGUSR1);
      return nullptr;
    }, nullptr), 0);
    ASSERT_EQ(pthread_join(t, nullptr), 0);
  }
  ASSERT_EQ(sigaction(SIGUSR1, &old, nullptr), 0);
  EXPECT_EQ(g_main_handled.load(), 6);
}

}  // namespace
