// pthread_kill: the handler runs in the target thread (its pthread_self and thread-locals), also
// one that only computes, error codes are glibc's, and signalling oneself or raise() runs the
// handler before returning.
// Signal masks are per thread: set by one thread, not seen by others, inherited at create, and a
// blocked signal waits until the thread unblocks it. sigwait/sigtimedwait take signals sent to
// the thread, time out, and validate their timeout. A handler ends a sleep, a semaphore wait,
// pause or sigsuspend with EINTR (and the time left); an ignored signal does not. sigsuspend waits
// with its own mask and restores the thread's; sigpending shows the thread's own pending signals
// and the process's, not another thread's. (signal_process_test.cc, in the same binary: signals
// sent to the process, and handlers run during mutex, join and condition waits.)
#include <pthread.h>
#include <execinfo.h>
#include <setjmp.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <vector>
#include <functional>
#include <thread>
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

std::atomic<bool> g_spin_until_handled{false};
void OnUsr1StopSpinning(int) {
  g_handled_identity = t_identity;
  g_spin_until_handled = false;
}

// The target never calls into the library: the handler must still reach it (natively the kernel
// interrupts it wherever it runs).
TEST_F(SignalTest, HandlerReachesAThreadThatOnlyComputes) {
  struct sigaction action = {};
  action.sa_handler = OnUsr1StopSpinning;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &action, nullptr), 0);
  g_spin_until_handled = true;
  std::atomic<bool> ready{false};
  std::thread spinner([&] {
    t_identity = 31;
    ready = true;
    while (g_spin_until_handled.load(std::memory_order_relaxed)) {
    }
  });
  while (!ready) sched_yield();
  int64_t start = NowNs();
  ASSERT_EQ(pthread_kill(spinner.native_handle(), SIGUSR1), 0);
  spinner.join();
  EXPECT_LT(NowNs() - start, kNsPerSec);
  EXPECT_EQ(g_handled_identity, 31);
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

// ---- masks ---------------------------------------------------------------------------------------

bool Blocks(int sig) {
  sigset_t current;
  pthread_sigmask(SIG_BLOCK, nullptr, &current);
  return sigismember(&current, sig);
}

sigset_t Only(int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  return set;
}

TEST_F(SignalTest, MasksArePerThreadAndFollowTheThread) {
  std::atomic<bool> blocked{false}, checked{false};
  std::atomic<int> blocker_result{-1};
  std::thread blocker([&] {
    sigset_t usr1 = Only(SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    blocked = true;
    while (!checked) sched_yield();  // other threads run on this carrier meanwhile
    for (int i = 0; i < 100; ++i) usleep(100);  // and it may move between carriers
    blocker_result = Blocks(SIGUSR1) ? 1 : 0;
  });
  while (!blocked) sched_yield();
  std::atomic<int> other_result{-1};
  std::thread([&] { other_result = Blocks(SIGUSR1) ? 1 : 0; }).join();
  EXPECT_FALSE(Blocks(SIGUSR1));
  checked = true;
  blocker.join();
  EXPECT_EQ(other_result, 0) << "a thread saw another thread's mask";
  EXPECT_EQ(blocker_result, 1) << "the thread lost its own mask";
}

TEST_F(SignalTest, NewThreadsStartWithTheirCreatorsMask) {
  sigset_t usr2 = Only(SIGUSR2), old;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr2, &old), 0);
  std::atomic<int> inherited{-1};
  std::thread([&] { inherited = Blocks(SIGUSR2) ? 1 : 0; }).join();
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(inherited, 1);
  EXPECT_FALSE(Blocks(SIGUSR2));
}

TEST_F(SignalTest, ABlockedSignalWaitsUntilTheThreadUnblocksIt) {
  std::atomic<bool> blocked{false}, sent{false};
  std::atomic<int> handled_while_blocked{-1}, handled_after_unblock{-1};
  std::thread target([&] {
    t_identity = 5;
    sigset_t usr1 = Only(SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    blocked = true;
    while (!sent) sched_yield();
    for (int i = 0; i < 20; ++i) usleep(100);
    handled_while_blocked = g_handled.load();
    pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);  // delivered before this returns
    handled_after_unblock = g_handled.load();
  });
  while (!blocked) sched_yield();
  g_expected_self = target.native_handle();
  ASSERT_EQ(pthread_kill(target.native_handle(), SIGUSR1), 0);
  sent = true;
  target.join();
  EXPECT_EQ(handled_while_blocked, 0);
  EXPECT_EQ(handled_after_unblock, 1);
  EXPECT_EQ(g_handled_identity, 5);
}

TEST_F(SignalTest, SigwaitTakesASignalSentToTheThread) {
  std::atomic<bool> blocked{false};
  std::atomic<int> got{-1}, err{-1};
  std::thread waiter([&] {
    sigset_t usr1 = Only(SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    blocked = true;
    int sig = 0;
    err = sigwait(&usr1, &sig);
    got = sig;
  });
  while (!blocked) sched_yield();
  usleep(20 * 1000);  // usually inside sigwait by now; if not, the blocked signal waits for it
  ASSERT_EQ(pthread_kill(waiter.native_handle(), SIGUSR1), 0);
  waiter.join();
  EXPECT_EQ(err, 0);
  EXPECT_EQ(got, SIGUSR1);
  EXPECT_EQ(g_handled, 0) << "the handler ran instead of sigwait taking the signal";
}

TEST_F(SignalTest, SigtimedwaitReportsTheSenderAndTimesOut) {
  std::atomic<int> timed_out{-1}, timeout_errno{-1}, invalid_errno{-1}, got{-1}, sender{-1};
  std::atomic<bool> ready{false};
  std::thread waiter([&] {
    sigset_t usr2 = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    timespec short_wait = {0, 30 * 1000 * 1000};
    timed_out = sigtimedwait(&usr2, nullptr, &short_wait);
    timeout_errno = errno;
    timespec bad = {0, 1000000000};
    sigtimedwait(&usr2, nullptr, &bad);
    invalid_errno = errno;
    ready = true;
    siginfo_t info;
    timespec long_wait = {30, 0};
    got = sigtimedwait(&usr2, &info, &long_wait);
    sender = info.si_pid;
  });
  while (!ready) sched_yield();
  ASSERT_EQ(pthread_kill(waiter.native_handle(), SIGUSR2), 0);
  waiter.join();
  EXPECT_EQ(timed_out, -1);
  EXPECT_EQ(timeout_errno, EAGAIN);
  EXPECT_EQ(invalid_errno, EINVAL);
  EXPECT_EQ(got, SIGUSR2);
  EXPECT_EQ(sender, getpid());
}

// pthread_sigqueue: the handler runs in the target with SI_QUEUE, the sender and the value; a
// thread that blocks the signal gets the same from sigwaitinfo.
std::atomic<int> g_queued_code{0}, g_queued_value{0}, g_queued_identity{0};
void OnQueued(int, siginfo_t* info, void*) {
  g_queued_code = info->si_code;
  g_queued_value = info->si_value.sival_int;
  g_queued_identity = t_identity;
}

TEST_F(SignalTest, PthreadSigqueueCarriesItsValueToTheThread) {
  vthread_test::ScopedHandler handler(SIGUSR2, OnQueued);
  g_queued_code = 0;
  Target target;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, nullptr, WaitUntilStopped, &target), 0);
  while (!target.ready) usleep(100);
  union sigval value;
  value.sival_int = 4242;
  ASSERT_EQ(pthread_sigqueue(thread, SIGUSR2, value), 0);
  for (int i = 0; i < 5000 && g_queued_code == 0; ++i) usleep(200);
  EXPECT_EQ(pthread_sigqueue(thread, -1, value), EINVAL);
  target.stop = true;
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  EXPECT_EQ(g_queued_code.load(), SI_QUEUE);
  EXPECT_EQ(g_queued_value.load(), 4242);
  EXPECT_EQ(g_queued_identity.load(), 77);

  std::atomic<bool> ready{false};
  std::atomic<int> got{-1}, code{0}, carried{0}, sender{0};
  std::thread waiter([&] {
    sigset_t usr2 = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    ready = true;
    siginfo_t info;
    got = sigwaitinfo(&usr2, &info);
    code = info.si_code;
    carried = info.si_value.sival_int;
    sender = info.si_pid;
  });
  while (!ready) sched_yield();
  value.sival_int = 99;
  ASSERT_EQ(pthread_sigqueue(waiter.native_handle(), SIGUSR2, value), 0);
  waiter.join();
  EXPECT_EQ(got, SIGUSR2);
  EXPECT_EQ(code, SI_QUEUE);
  EXPECT_EQ(carried, 99);
  EXPECT_EQ(sender, getpid());
}

// siglongjmp out of a handler to a sigsetjmp(env, 1) restores the mask it saved (the signal
// unblocked again), every time, in a thread that may move between carriers.
sigjmp_buf g_back;
std::atomic<int> g_jumps{0};
void OnUsr1JumpBack(int) {
  g_jumps++;
  siglongjmp(g_back, 1);
}

TEST_F(SignalTest, SiglongjmpOutOfAHandlerRestoresTheSavedMask) {
  vthread_test::ScopedHandler handler(SIGUSR1, OnUsr1JumpBack);
  g_jumps = 0;
  std::atomic<int> unblocked_after{0};
  std::thread jumper([&] {
    for (int i = 0; i < 5; ++i) {
      if (sigsetjmp(g_back, 1) == 0) {
        if (i % 2) {
          raise(SIGUSR1);
        } else {
          pthread_kill(pthread_self(), SIGUSR1);
        }
      }
      sched_yield();
      sigset_t now;
      pthread_sigmask(SIG_SETMASK, nullptr, &now);
      if (!sigismember(&now, SIGUSR1)) unblocked_after++;
    }
  });
  jumper.join();
  EXPECT_EQ(g_jumps.load(), 5);
  EXPECT_EQ(unblocked_after.load(), 5);
}

// Signals the kernel queues on the thread that caused them, while that thread blocks them, stay
// with it: raise(), and the SIGPIPE of a write to a closed pipe. Under vthread another thread runs
// on the same carrier meanwhile (with one carrier, always) and does not block them.
std::atomic<int> g_caught{0}, g_caught_identity{0};
void OnCaught(int) {
  g_caught_identity = t_identity;
  g_caught++;
}

void ExpectTheBlockingThreadGetsIt(int sig, const std::function<void()>& cause) {
  vthread_test::ScopedHandler handler(sig, OnCaught);
  g_caught = 0;
  std::atomic<int> phase{0}, caught_while_blocked{-1};
  std::thread cause_it([&] {
    t_identity = 5;
    sigset_t only = Only(sig);
    pthread_sigmask(SIG_BLOCK, &only, nullptr);
    cause();
    phase = 1;
    while (phase < 2) sched_yield();
    caught_while_blocked = g_caught.load();
    pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  });
  std::thread bystander([&] {
    t_identity = 6;
    while (phase < 1) sched_yield();
    for (int i = 0; i < 50; ++i) {
      sched_yield();
      usleep(100);
    }
    phase = 2;
  });
  cause_it.join();
  bystander.join();
  EXPECT_EQ(caught_while_blocked.load(), 0);
  EXPECT_EQ(g_caught.load(), 1);
  EXPECT_EQ(g_caught_identity.load(), 5) << "the handler ran in another thread";
}

TEST_F(SignalTest, ARaiseTheThreadBlocksStaysWithIt) {
  ExpectTheBlockingThreadGetsIt(SIGUSR2, [] { raise(SIGUSR2); });
}

TEST_F(SignalTest, ASigpipeTheThreadBlocksStaysWithIt) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  ExpectTheBlockingThreadGetsIt(SIGPIPE, [&] {
    if (write(fds[1], "x", 1) != -1 || errno != EPIPE) ADD_FAILURE() << "no EPIPE";
  });
  close(fds[1]);
}

// A SIGSEGV handler may wait (here for 20 ms) while other threads fault too, and returns to the
// faulting instruction once it made the page accessible: lazy-mapping and write-barrier handlers
// do this. (SIGSEGV is delivered on a stack every thread of a carrier shares under vthread.)
constexpr int kFaulters = 8;
char* g_fault_pages[kFaulters];
long g_page_size = 0;
std::atomic<int> g_fault_frames_corrupted{0};

void OnFault(int, siginfo_t* info, void*) {
  auto page = reinterpret_cast<uintptr_t>(info->si_addr) & ~static_cast<uintptr_t>(g_page_size - 1);
  volatile char local[256];
  for (auto& c : local) c = 0x5a;
  usleep(20 * 1000);
  for (auto& c : local) {
    if (c != 0x5a) g_fault_frames_corrupted++;
  }
  mprotect(reinterpret_cast<void*>(page), g_page_size, PROT_READ | PROT_WRITE);
}

TEST_F(SignalTest, AFaultHandlerMayWaitWhileOtherThreadsFault) {
  g_page_size = sysconf(_SC_PAGESIZE);
  vthread_test::ScopedHandler handler(SIGSEGV, OnFault, SA_NODEFER);
  g_fault_frames_corrupted = 0;
  for (auto& page : g_fault_pages) {
    page = static_cast<char*>(mmap(nullptr, g_page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    ASSERT_NE(page, MAP_FAILED);
  }
  std::vector<std::thread> faulters;
  std::atomic<int> written{0};
  for (int i = 0; i < kFaulters; ++i) {
    faulters.emplace_back([i, &written] {
      volatile char* page = g_fault_pages[i];
      page[0] = static_cast<char>(i + 1);  // faults once
      if (page[0] == static_cast<char>(i + 1)) written++;
    });
  }
  for (auto& t : faulters) t.join();
  for (auto page : g_fault_pages) munmap(page, g_page_size);
  EXPECT_EQ(written.load(), kFaulters);
  EXPECT_EQ(g_fault_frames_corrupted.load(), 0);
}

// A thread that leaves a handler raise() ran by siglongjmp goes on like any other: here it spins,
// and (with one carrier) the main thread must still get turns to tell it to stop.
sigjmp_buf g_out_of_raise;
void OnUsr1JumpOut(int) { siglongjmp(g_out_of_raise, 1); }

TEST_F(SignalTest, AThreadThatJumpedOutOfARaisedHandlerIsStillPreempted) {
  vthread_test::ScopedHandler handler(SIGUSR1, OnUsr1JumpOut);
  std::atomic<bool> stop{false}, stopped_in_time{false};
  std::thread spinner([&] {
    if (sigsetjmp(g_out_of_raise, 1) == 0) raise(SIGUSR1);
    int64_t end = NowNs() + 5 * kNsPerSec;
    while (!stop && NowNs() < end) {
    }
    stopped_in_time = stop.load();
  });
  usleep(50 * 1000);
  stop = true;
  spinner.join();
  EXPECT_TRUE(stopped_in_time.load()) << "the main thread did not run while it spun";
}

// A handler that interrupted a blocking read gets another signal while it runs (natively: at once).
std::atomic<bool> g_in_first{false}, g_second_arrived{false}, g_second_inside{false};
void OnFirst(int) {
  g_in_first = true;
  int64_t end = NowNs() + 2 * kNsPerSec;
  while (!g_second_arrived && NowNs() < end) {
  }
  g_second_inside = g_second_arrived.load();
}
void OnSecond(int) { g_second_arrived = true; }

TEST_F(SignalTest, AHandlerThatInterruptedReadReceivesAnotherSignal) {
  struct sigaction first = {}, second = {}, old1, old2;
  first.sa_handler = OnFirst;
  second.sa_handler = OnSecond;
  sigemptyset(&first.sa_mask);
  sigemptyset(&second.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &first, &old1), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &second, &old2), 0);
  g_in_first = false;
  g_second_arrived = false;
  g_second_inside = false;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread reader([&] {
    char c;
    while (read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
  });
  usleep(50 * 1000);  // in read by now
  ASSERT_EQ(pthread_kill(reader.native_handle(), SIGUSR1), 0);
  while (!g_in_first) usleep(1000);
  ASSERT_EQ(pthread_kill(reader.native_handle(), SIGUSR2), 0);
  int64_t sent = NowNs();
  while (!g_second_arrived && NowNs() - sent < 3 * kNsPerSec) usleep(1000);
  bool arrived = g_second_arrived;
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  reader.join();
  close(fds[0]);
  close(fds[1]);
  ASSERT_EQ(sigaction(SIGUSR1, &old1, nullptr), 0);
  ASSERT_EQ(sigaction(SIGUSR2, &old2, nullptr), 0);
  EXPECT_TRUE(arrived);
  EXPECT_TRUE(g_second_inside.load()) << "the second signal waited for the first handler to end";
}

// Bursts of pthread_kill to a thread that computes: after each burst its handler runs again.
std::atomic<int> g_burst{0}, g_burst_seen{0};
void OnBurst(int) { g_burst_seen = g_burst.load(); }

TEST_F(SignalTest, NoBurstOfPthreadKillIsLost) {
  vthread_test::ScopedHandler handler(SIGUSR1, OnBurst);
  g_burst = 0;
  g_burst_seen = 0;
  std::atomic<bool> stop{false};
  std::thread computing([&] {
    while (!stop) {
    }
  });
  int lost = 0;
  for (int burst = 1; burst <= 300 && lost == 0; ++burst) {
    g_burst = burst;
    pthread_kill(computing.native_handle(), SIGUSR1);
    pthread_kill(computing.native_handle(), SIGUSR1);
    int64_t sent = NowNs();
    while (g_burst_seen != burst) {
      if (NowNs() - sent > 3 * kNsPerSec) {
        ++lost;
        break;
      }
      sched_yield();
    }
  }
  stop = true;
  computing.join();
  EXPECT_EQ(lost, 0);
}

// A backtrace from a SIGSEGV handler that waited while another thread faulted shows its own
// thread's faulting function, not the other's (a debugger's or a crash reporter's view).
char* g_unmapped_page;
thread_local void* t_faulting_function;
std::atomic<int> g_own_frame{0}, g_other_frame{0};
__attribute__((noinline, aligned(256))) void FaultHereA() { *static_cast<volatile char*>(g_unmapped_page) = 1; }
__attribute__((noinline, aligned(256))) void FaultHereB() { *static_cast<volatile char*>(g_unmapped_page + 8) = 1; }

bool In(void* pc, void (*function)()) {
  auto at = reinterpret_cast<uintptr_t>(pc), start = reinterpret_cast<uintptr_t>(function);
  return at >= start && at < start + 64;
}

void OnFaultBacktrace(int, siginfo_t*, void*) {
  usleep(50 * 1000);
  void* pcs[64];
  int n = backtrace(pcs, 64);
  bool own = false, other = false;
  for (int i = 0; i < n; ++i) {
    for (auto function : {FaultHereA, FaultHereB}) {
      if (!In(pcs[i], function)) continue;
      if (reinterpret_cast<void*>(function) == t_faulting_function) {
        own = true;
      } else {
        other = true;
      }
    }
  }
  if (own) g_own_frame++;
  if (other) g_other_frame++;
  mprotect(g_unmapped_page, sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE);
}

TEST_F(SignalTest, ABacktraceFromAWaitingFaultHandlerShowsItsOwnThread) {
  long page_size = sysconf(_SC_PAGESIZE);
  g_unmapped_page = static_cast<char*>(mmap(nullptr, page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(g_unmapped_page, MAP_FAILED);
  vthread_test::ScopedHandler handler(SIGSEGV, OnFaultBacktrace, SA_NODEFER);
  g_own_frame = 0;
  g_other_frame = 0;
  std::thread a([] {
    t_faulting_function = reinterpret_cast<void*>(FaultHereA);
    FaultHereA();
  });
  std::thread b([] {
    usleep(10 * 1000);
    t_faulting_function = reinterpret_cast<void*>(FaultHereB);
    FaultHereB();
  });
  a.join();
  b.join();
  munmap(g_unmapped_page, page_size);
  EXPECT_EQ(g_other_frame.load(), 0) << "a backtrace went into the other thread's frames";
  EXPECT_GE(g_own_frame.load(), 1);
}

// A signal sent to a thread that blocks it and exits dies with the thread: no other thread gets it.
TEST_F(SignalTest, ASignalPendingForAThreadThatExitsGoesNowhere) {
  vthread_test::ScopedHandler handler(SIGUSR2, OnCaught);
  g_caught = 0;
  std::atomic<bool> blocked{false}, sent{false};
  std::thread blocking([&] {
    t_identity = 5;
    sigset_t usr2 = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    blocked = true;
    while (!sent) usleep(1000);
  });
  while (!blocked) usleep(1000);
  union sigval value;
  value.sival_int = 7;
  ASSERT_EQ(pthread_sigqueue(blocking.native_handle(), SIGUSR2, value), 0);
  ASSERT_EQ(pthread_kill(blocking.native_handle(), SIGUSR2), 0);
  sent = true;
  blocking.join();
  usleep(100 * 1000);  // time for a signal given back to the process to reach this thread
  EXPECT_EQ(g_caught.load(), 0) << "the exited thread's signal ran in another thread";
}

// ---- EINTR --------------------------------------------------------------------------------------

// Runs `wait` in a thread (up to 5 times, until it reports EINTR) while this thread sends SIGUSR1
// to it every 20 ms: the first signal may come before the thread is in the wait.
int InterruptedBySignals(const std::function<int()>& wait) {
  std::atomic<int> result{-1};
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    for (int i = 0; i < 5 && result != EINTR; ++i) result = wait();
    done = true;
  });
  while (!done) {
    pthread_kill(waiter.native_handle(), SIGUSR1);
    usleep(20 * 1000);
  }
  waiter.join();
  return result;
}

TEST_F(SignalTest, AHandlerEndsNanosleepWithEintrAndTheTimeLeft) {
  timespec left = {};
  int r = InterruptedBySignals([&] {
    timespec two_s = {2, 0};
    return nanosleep(&two_s, &left) == 0 ? 0 : errno;
  });
  EXPECT_EQ(r, EINTR);
  EXPECT_GT(g_handled, 0);
  // The kernel counts what is left from the timer's expiry, which timer slack (50 us) may put past
  // the request: a signal in the sleep's first microseconds leaves a little more than 2 s.
  int64_t left_ns = left.tv_sec * kNsPerSec + left.tv_nsec;
  EXPECT_TRUE(left_ns > 0 && left_ns < 2 * kNsPerSec + kNsPerMs) << left.tv_sec << "s " << left.tv_nsec;
}

TEST_F(SignalTest, AHandlerEndsSleepWithTheSecondsLeft) {
  unsigned left = 0;
  int r = InterruptedBySignals([&] {
    left = sleep(3);
    return left ? EINTR : 0;
  });
  EXPECT_EQ(r, EINTR);
  EXPECT_GE(left, 1u);
  EXPECT_LE(left, 3u);
}

TEST_F(SignalTest, AHandlerEndsSemWaitWithEintr) {
  sem_t empty;
  ASSERT_EQ(sem_init(&empty, 0, 0), 0);
  int r = InterruptedBySignals([&] { return sem_wait(&empty) == 0 ? 0 : errno; });
  EXPECT_EQ(r, EINTR);
  sem_destroy(&empty);
}

TEST_F(SignalTest, AnIgnoredSignalDoesNotEndASleep) {
  struct sigaction ignore = {}, old;
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGUSR2, &ignore, &old), 0);
  std::atomic<int> result{-1};
  std::atomic<bool> done{false};
  std::thread sleeper([&] {
    timespec t = {0, 200 * 1000 * 1000};
    result = nanosleep(&t, nullptr);
    done = true;
  });
  while (!done) {
    pthread_kill(sleeper.native_handle(), SIGUSR2);
    usleep(10 * 1000);
  }
  sleeper.join();
  sigaction(SIGUSR2, &old, nullptr);
  EXPECT_EQ(result, 0);
}

TEST_F(SignalTest, AHandlerEndsPauseWithEintr) {
  int r = InterruptedBySignals([] { return pause() == -1 ? errno : 0; });
  EXPECT_EQ(r, EINTR);
  EXPECT_GT(g_handled, 0);
}

// ---- sigsuspend, sigpending ------------------------------------------------------------------------

std::atomic<int> g_usr2_handled{0};
std::atomic<int> g_usr2_identity{0};
void OnUsr2(int) {
  g_usr2_identity = t_identity;
  g_usr2_handled++;
}

bool Pending(int sig) {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  return sigismember(&pending, sig) == 1;
}

// Polls sigpending for up to a second: a signal sent to the process becomes pending for a thread
// a moment after kill() returns.
bool BecomesPending(int sig) {
  for (int i = 0; i < 1000; ++i) {
    if (Pending(sig)) return true;
    usleep(1000);
  }
  return false;
}

class SignalTest2 : public SignalTest {
 protected:
  void SetUp() override {
    SignalTest::SetUp();
    struct sigaction action = {};
    action.sa_handler = OnUsr2;
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &action, &old_usr2_), 0);
    g_usr2_handled = 0;
  }
  void TearDown() override {
    sigaction(SIGUSR2, &old_usr2_, nullptr);
    SignalTest::TearDown();
  }
  struct sigaction old_usr2_;
};

TEST_F(SignalTest2, SigsuspendWaitsWithItsOwnMaskAndRestoresTheThreads) {
  std::atomic<bool> ready{false}, done{false};
  std::atomic<int> result{0}, err{0}, usr2_during{-1}, usr2_after{-1};
  std::atomic<bool> blocks_after{false}, usr2_pending_after{false};
  std::thread target([&] {
    t_identity = 3;
    sigset_t both = Only(SIGUSR1);
    sigaddset(&both, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &both, nullptr);
    sigset_t during = Only(SIGUSR2);  // SIGUSR1 open while it waits, SIGUSR2 still blocked
    ready = true;
    result = sigsuspend(&during);
    err = errno;
    usr2_during = g_usr2_handled.load();
    blocks_after = Blocks(SIGUSR1) && Blocks(SIGUSR2);
    usr2_pending_after = Pending(SIGUSR2);
    sigset_t usr2 = Only(SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);  // the held SIGUSR2 runs its handler now
    usr2_after = g_usr2_handled.load();
    done = true;
  });
  while (!ready) sched_yield();
  ASSERT_EQ(pthread_kill(target.native_handle(), SIGUSR2), 0);  // blocked by both masks: no wake-up
  usleep(50 * 1000);
  EXPECT_FALSE(done);
  while (!done) {
    pthread_kill(target.native_handle(), SIGUSR1);
    usleep(20 * 1000);
  }
  target.join();
  EXPECT_EQ(result, -1);
  EXPECT_EQ(err, EINTR);
  EXPECT_GE(g_handled, 1);
  EXPECT_EQ(g_handled_identity, 3);
  EXPECT_EQ(usr2_during, 0);
  EXPECT_TRUE(blocks_after) << "sigsuspend did not restore the thread's mask";
  EXPECT_TRUE(usr2_pending_after);
  EXPECT_EQ(usr2_after, 1);
  EXPECT_EQ(g_usr2_identity, 3);
}

TEST_F(SignalTest2, SigpendingShowsTheThreadsOwnSignalsOnly) {
  sigset_t usr2 = Only(SIGUSR2), old;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr2, &old), 0);
  std::atomic<bool> ready{false}, sent{false};
  std::atomic<int> saw{-1}, handled_on_unblock{-1};
  std::thread target([&] {
    t_identity = 8;
    ready = true;
    while (!sent) sched_yield();
    saw = Pending(SIGUSR2) ? 1 : 0;
    pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);
    handled_on_unblock = g_usr2_handled.load();
  });
  while (!ready) sched_yield();
  ASSERT_EQ(pthread_kill(target.native_handle(), SIGUSR2), 0);
  sent = true;
  bool main_saw = Pending(SIGUSR2);
  target.join();
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(saw, 1);
  EXPECT_FALSE(main_saw) << "another thread's pending signal showed in sigpending";
  EXPECT_EQ(handled_on_unblock, 1);
  EXPECT_EQ(g_usr2_identity, 8);
}

TEST_F(SignalTest2, ASignalEveryThreadBlocksIsPendingForAllAndGoesToTheFirstToUnblockIt) {
  sigset_t usr2 = Only(SIGUSR2), old;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr2, &old), 0);
  std::atomic<int> phase{0};
  std::atomic<bool> target_saw{false};
  std::atomic<int> handled_on_unblock{-1};
  std::thread target([&] {
    t_identity = 4;
    phase = 1;
    while (phase != 2) usleep(1000);
    target_saw = BecomesPending(SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &usr2, nullptr);
    // Natively the handler has run by now. Under vthread an idle carrier that last ran a thread
    // accepting the signal may have taken it from the kernel just before (the README's known
    // limitations): it then reaches this thread a moment later.
    for (int i = 0; i < 1000 && g_usr2_handled == 0; ++i) usleep(1000);
    handled_on_unblock = g_usr2_handled.load();
  });
  while (phase != 1) usleep(1000);
  ASSERT_EQ(kill(getpid(), SIGUSR2), 0);
  bool main_saw = BecomesPending(SIGUSR2);
  phase = 2;
  target.join();
  bool main_still_sees = Pending(SIGUSR2);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_TRUE(main_saw);
  EXPECT_TRUE(target_saw);
  EXPECT_EQ(handled_on_unblock, 1);
  EXPECT_EQ(g_usr2_identity, 4);
  EXPECT_FALSE(main_still_sees);
  EXPECT_EQ(g_usr2_handled, 1);
}

}  // namespace
}  // namespace vthread_test
