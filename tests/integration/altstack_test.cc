// Alternate signal stacks are per thread: what a thread sets with sigaltstack is what it reads
// back, whatever other threads set or free, and handlers that run on an alternate stack are never
// disturbed by other threads' signals. The threads here do what Rust's standard library does in
// every thread: set aside a stack at start, disarm and unmap it at exit.
#include <pthread.h>
#include <setjmp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
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

// A handler on the thread's own stack that computes for a while (a SIGVTALRM profiler's, say) is
// a candidate for preemption; were the thread switched out there and resumed on another carrier,
// the handler's return would install the first carrier's alternate stack on the second, and two
// carriers would then share one: SA_ONSTACK handlers running on both at once overwrite each other.
void ComputingHandler(int) {
  volatile uint64_t sink = 0;
  for (int64_t end = vthread_test::NowNs() + 3 * vthread_test::kNsPerMs; vthread_test::NowNs() < end;) sink = sink + 1;
}

void* ComputeFor(void* seconds) {
  int64_t end = vthread_test::NowNs() + reinterpret_cast<intptr_t>(seconds) * vthread_test::kNsPerSec;
  volatile uint64_t sink = 0;
  while (vthread_test::NowNs() < end) sink = sink + 1;
  return nullptr;
}

TEST(Altstack, HandlersThatComputeOnTheirThreadsStackLeaveAlternateStacksApart) {
  struct sigaction slow = {}, onstack = {}, old_slow, old_onstack;
  slow.sa_handler = ComputingHandler;
  sigemptyset(&slow.sa_mask);
  onstack.sa_handler = SlowOnstackHandler;
  onstack.sa_flags = SA_ONSTACK | SA_RESTART;
  sigemptyset(&onstack.sa_mask);
  ASSERT_EQ(sigaction(SIGVTALRM, &slow, &old_slow), 0);
  ASSERT_EQ(sigaction(SIGPROF, &onstack, &old_onstack), 0);
  g_corrupted = 0;
  g_handled = 0;
  struct itimerval every_1ms = {{0, 1000}, {0, 1000}}, every_2ms = {{0, 2000}, {0, 2000}}, off = {};
  ASSERT_EQ(setitimer(ITIMER_VIRTUAL, &every_1ms, nullptr), 0);
  std::vector<pthread_t> threads(8);
  for (auto& t : threads) ASSERT_EQ(pthread_create(&t, nullptr, ComputeFor, reinterpret_cast<void*>(2)), 0);
  usleep(1000 * 1000);  // one second of handlers on the threads' stacks, then one on alternate stacks
  ASSERT_EQ(setitimer(ITIMER_VIRTUAL, &off, nullptr), 0);
  ASSERT_EQ(setitimer(ITIMER_PROF, &every_2ms, nullptr), 0);
  for (auto t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  ASSERT_EQ(setitimer(ITIMER_PROF, &off, nullptr), 0);
  ASSERT_EQ(sigaction(SIGVTALRM, &old_slow, nullptr), 0);
  ASSERT_EQ(sigaction(SIGPROF, &old_onstack, nullptr), 0);
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

// A handler that asked for SA_ONSTACK runs on the alternate stack its own thread set, and its
// context holds that setting.
bool Inside(const void* p, const void* mem) {
  auto at = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(mem);
  return at > base && at - base <= kAltSize;
}

struct HandlerView {
  const void* local;    // where a local of the handler was
  void* context_sp;     // uc_stack.ss_sp
  int context_flags;    // uc_stack.ss_flags
  int query_flags;      // what sigaltstack reported inside
};
thread_local HandlerView t_view;

void RecordingHandler(int, siginfo_t*, void* context) {
  volatile char local = 0;
  t_view.local = const_cast<const char*>(&local);
  auto* uc = static_cast<ucontext_t*>(context);
  t_view.context_sp = uc->uc_stack.ss_sp;
  t_view.context_flags = uc->uc_stack.ss_flags;
  stack_t now;
  t_view.query_flags = sigaltstack(nullptr, &now) == 0 ? now.ss_flags : -1;
}

void* SignalOnOwnAltstack(void* flags) {
  void* mem = MapAltstack();
  stack_t set = {};
  set.ss_sp = mem;
  set.ss_size = kAltSize;
  set.ss_flags = static_cast<int>(reinterpret_cast<intptr_t>(flags));
  if (!mem || sigaltstack(&set, nullptr) != 0) return nullptr;
  sched_yield();
  t_view = {};
  pthread_kill(pthread_self(), SIGUSR2);
  auto* seen = new HandlerView(t_view);
  stack_t after;
  if (sigaltstack(nullptr, &after) != 0 || after.ss_sp != mem || after.ss_flags != set.ss_flags) seen->local = nullptr;
  DropAltstack(mem);
  return seen;
}

void InstallRecorder(int flags, struct sigaction* old) {
  struct sigaction action = {};
  action.sa_sigaction = RecordingHandler;
  action.sa_flags = SA_SIGINFO | flags;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR2, &action, old), 0);
}

TEST(Altstack, OnstackHandlersRunOnTheAlternateStackTheirThreadSet) {
  struct sigaction old;
  InstallRecorder(SA_ONSTACK, &old);
  std::vector<pthread_t> threads(4);
  for (auto& t : threads) ASSERT_EQ(pthread_create(&t, nullptr, SignalOnOwnAltstack, nullptr), 0);
  std::vector<HandlerView*> views;
  for (auto t : threads) {
    void* view;
    ASSERT_EQ(pthread_join(t, &view), 0);
    ASSERT_NE(view, nullptr);
    views.push_back(static_cast<HandlerView*>(view));
  }
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  for (HandlerView* view : views) {
    ASSERT_NE(view->local, nullptr) << "the setting read back after the handler changed";
    EXPECT_TRUE(Inside(view->local, view->context_sp)) << view->local << " " << view->context_sp;
    EXPECT_EQ(view->context_flags, 0);
    EXPECT_EQ(view->query_flags, SS_ONSTACK);
    delete view;
  }
}

TEST(Altstack, HandlersWithoutOnstackRunOnTheThreadsStack) {
  struct sigaction old;
  InstallRecorder(0, &old);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, SignalOnOwnAltstack, nullptr), 0);
  void* view;
  ASSERT_EQ(pthread_join(t, &view), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  ASSERT_NE(view, nullptr);
  auto* seen = static_cast<HandlerView*>(view);
  EXPECT_NE(seen->local, nullptr);
  EXPECT_FALSE(Inside(seen->local, seen->context_sp));
  EXPECT_EQ(seen->query_flags, 0);
  delete seen;
}

// SS_AUTODISARM (Linux 4.7): the stack is disarmed while the handler runs and armed again after.
constexpr int kAutoDisarm = static_cast<int>(1u << 31);

TEST(Altstack, AutodisarmDisarmsItForTheHandler) {
  struct sigaction old;
  InstallRecorder(SA_ONSTACK, &old);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, SignalOnOwnAltstack, reinterpret_cast<void*>(intptr_t{kAutoDisarm})), 0);
  void* view;
  ASSERT_EQ(pthread_join(t, &view), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &old, nullptr), 0);
  ASSERT_NE(view, nullptr);
  auto* seen = static_cast<HandlerView*>(view);
  ASSERT_NE(seen->local, nullptr) << "not armed again after the handler";
  EXPECT_TRUE(Inside(seen->local, seen->context_sp));
  EXPECT_EQ(seen->context_flags, kAutoDisarm);
  EXPECT_EQ(seen->query_flags, SS_DISABLE);
  delete seen;
}

// What a handler leaves in its context's uc_stack is the thread's setting when it returns.
void* g_replacement = nullptr;

void ReplacingHandler(int, siginfo_t*, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  uc->uc_stack.ss_sp = g_replacement;
  uc->uc_stack.ss_size = kAltSize;
  uc->uc_stack.ss_flags = 0;
}

TEST(Altstack, WhatTheHandlerLeavesInItsContextIsTheSettingAfter) {
  vthread_test::ScopedHandler handler(SIGUSR2, ReplacingHandler);
  g_replacement = MapAltstack();
  ASSERT_NE(g_replacement, nullptr);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             void* mem = SetOwnAltstack();
                             pthread_kill(pthread_self(), SIGUSR2);
                             bool replaced = ReadsBack(g_replacement);
                             DropAltstack(mem);
                             return replaced ? g_replacement : nullptr;
                           },
                           nullptr),
            0);
  void* replaced;
  ASSERT_EQ(pthread_join(t, &replaced), 0);
  EXPECT_EQ(replaced, g_replacement);
  munmap(g_replacement, kAltSize);
}

// A handler on its thread's alternate stack may sleep and yield, and resume on another carrier,
// while other threads' handlers run on theirs: nothing writes into its frame meanwhile.
std::atomic<int> g_waiting_corrupted{0};
std::atomic<int> g_waiting_handled{0};

void WaitingOnstackHandler(int) {
  volatile uint64_t pattern[128];
  uint64_t mine = reinterpret_cast<uint64_t>(&pattern) ^ 0xa5a5a5a5a5a5a5a5ull;
  for (auto& word : pattern) word = mine;
  struct timespec brief = {0, 200 * 1000};
  nanosleep(&brief, nullptr);
  sched_yield();
  stack_t now;
  bool on_it = sigaltstack(nullptr, &now) == 0 && now.ss_flags == SS_ONSTACK;
  for (auto& word : pattern) {
    if (word != mine) on_it = false;
  }
  if (!on_it) g_waiting_corrupted.fetch_add(1);
  g_waiting_handled.fetch_add(1);
}

TEST(Altstack, HandlersOnItMayWaitWhileOtherThreadsRunTheirs) {
  vthread_test::ScopedHandler handler(SIGUSR1, WaitingOnstackHandler, SA_ONSTACK);
  g_waiting_corrupted = 0;
  g_waiting_handled = 0;
  constexpr int kThreads = 8, kSignals = 30;
  std::vector<pthread_t> threads(kThreads);
  for (auto& t : threads) {
    ASSERT_EQ(pthread_create(&t, nullptr,
                             [](void*) -> void* {
                               void* mem = SetOwnAltstack();
                               for (int i = 0; i < kSignals; ++i) {
                                 pthread_kill(pthread_self(), SIGUSR1);
                                 sched_yield();
                               }
                               DropAltstack(mem);
                               return nullptr;
                             },
                             nullptr),
              0);
  }
  for (auto t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_EQ(g_waiting_corrupted.load(), 0);
  EXPECT_EQ(g_waiting_handled.load(), kThreads * kSignals);
}

// A handler on the thread's alternate stack that leaves by longjmp, as built with _FORTIFY_SOURCE
// (__longjmp_chk): glibc lets the jump go up to a lower address only from an alternate stack.
// The alternate stack is on the main thread's stack, above any other thread's.
extern "C" void __longjmp_chk(struct __jmp_buf_tag* env, int value);
sigjmp_buf g_jump;
void JumpingHandler(int) { __longjmp_chk(g_jump, 1); }

TEST(Altstack, AFortifiedLongjmpLeavesAHandlerOnIt) {
  alignas(16) char in_main[kAltSize];
  vthread_test::ScopedHandler handler(SIGUSR2, JumpingHandler, SA_ONSTACK);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void* stack) -> void* {
                             stack_t set = {};
                             set.ss_sp = stack;
                             set.ss_size = kAltSize;
                             if (sigaltstack(&set, nullptr) != 0) return nullptr;
                             void* result = nullptr;
                             if (sigsetjmp(g_jump, 1) == 0) {
                               pthread_kill(pthread_self(), SIGUSR2);
                             } else {
                               sigset_t now;
                               pthread_sigmask(SIG_SETMASK, nullptr, &now);
                               if (!sigismember(&now, SIGUSR2)) result = &g_jump;
                             }
                             stack_t off = {};
                             off.ss_flags = SS_DISABLE;
                             sigaltstack(&off, nullptr);
                             return result;
                           },
                           in_main),
            0);
  void* jumped;
  ASSERT_EQ(pthread_join(t, &jumped), 0);
  EXPECT_NE(jumped, nullptr) << "no jump, or SIGUSR2 left blocked";
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
