// Signals sent to the process (kill, sigqueue) reach the thread Linux picks: the main thread if it
// does not block the signal, else a thread that does not. A thread parked in a wait that signals
// interrupt (nanosleep, pause, sigsuspend) or blocked in read() wakes with EINTR after its handler
// ran there, with the sender's siginfo, while other threads compute. A handler also runs at once
// in a thread that waits for a mutex, an rwlock, a barrier, pthread_once, a join or a condition
// variable, which then goes back to waiting, and ends a futex wait with EINTR. A handler the main thread's wait would hold up (a futex) still runs at once.
// (Part of the signal_test binary; the gtest main runs each test on the program's main thread.)
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

thread_local int t_identity = 0;
pthread_t g_main_thread;
std::atomic<int> g_calls{0};
std::atomic<int> g_identity{0};
std::atomic<bool> g_in_main{false};
std::atomic<int> g_code{0};
std::atomic<int> g_value{0};
std::atomic<int> g_sender{0};
std::atomic<int64_t> g_when{0};
std::atomic<int> g_watchdog_fired{0};
std::atomic<bool> g_ready{false};  // a waiter is about to wait

void OnUsr1(int, siginfo_t* info, void*) {
  g_identity = t_identity;
  g_in_main = pthread_equal(pthread_self(), g_main_thread);
  g_code = info->si_code;
  g_value = info->si_value.sival_int;
  g_sender = info->si_pid;
  g_when = NowNs();
  g_calls++;
}

void OnWatchdog(int) { g_watchdog_fired++; }

sigset_t Only(int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  return set;
}

class ProcessSignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_main_thread = pthread_self();
    t_identity = 1;
    struct sigaction action = {};
    action.sa_sigaction = OnUsr1;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &action, &old_usr1_), 0);
    struct sigaction watchdog = {};
    watchdog.sa_handler = OnWatchdog;
    sigemptyset(&watchdog.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR2, &watchdog, &old_usr2_), 0);
    g_calls = 0;
    g_watchdog_fired = 0;
    g_identity = 0;
    g_in_main = false;
    g_ready = false;
  }
  void TearDown() override {
    stop_ = true;
    for (std::thread& t : workers_) t.join();
    sigaction(SIGUSR1, &old_usr1_, nullptr);
    sigaction(SIGUSR2, &old_usr2_, nullptr);
  }
  // Threads that only compute until the test ends: under vthread they keep every carrier busy,
  // so a signal the kernel gives to a carrier finds one of them running there.
  void StartWorkers() {
    for (int i = 0; i < 2 * Carriers(); ++i) {
      workers_.emplace_back([this] {
        while (!stop_.load(std::memory_order_relaxed)) {
        }
      });
    }
  }
  // Sends `send` after 100 ms from another thread; if the main thread has not come back from its
  // wait 3 s later, ends the wait with a SIGUSR2 to it, which the test counts as a failure.
  template <typename Send>
  std::thread SendSoon(Send send) {
    return std::thread([this, send] {
      usleep(100 * 1000);
      send();
      for (int i = 0; i < 300 && !main_back_; ++i) usleep(10 * 1000);
      while (!main_back_) {
        pthread_kill(g_main_thread, SIGUSR2);
        usleep(100 * 1000);
      }
    });
  }
  std::atomic<bool> main_back_{false};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
  struct sigaction old_usr1_, old_usr2_;
};

TEST_F(ProcessSignalTest, KillEndsTheMainThreadsSleepWithEintrAndRunsTheHandlerThere) {
  StartWorkers();
  std::thread sender = SendSoon([] { kill(getpid(), SIGUSR1); });
  timespec five_s = {5, 0}, left = {};
  int r = nanosleep(&five_s, &left);
  int err = errno;
  main_back_ = true;
  sender.join();
  EXPECT_EQ(r, -1);
  EXPECT_EQ(err, EINTR);
  EXPECT_EQ(g_watchdog_fired, 0) << "the main thread slept on: the signal did not end its sleep";
  EXPECT_EQ(g_calls, 1);
  EXPECT_TRUE(g_in_main) << "the handler ran in another thread";
  EXPECT_EQ(g_identity, 1);
  EXPECT_EQ(g_code, SI_USER);
  EXPECT_EQ(g_sender, getpid());
  EXPECT_GT(left.tv_sec, 1);
}

TEST_F(ProcessSignalTest, SigqueueEndsTheMainThreadsPauseAndKeepsItsValue) {
  StartWorkers();
  std::thread sender = SendSoon([] {
    union sigval value;
    value.sival_int = 42;
    sigqueue(getpid(), SIGUSR1, value);
  });
  int r = pause();
  int err = errno;
  main_back_ = true;
  sender.join();
  EXPECT_EQ(r, -1);
  EXPECT_EQ(err, EINTR);
  EXPECT_EQ(g_watchdog_fired, 0) << "pause went on: the signal did not end it";
  EXPECT_EQ(g_calls, 1);
  EXPECT_TRUE(g_in_main);
  EXPECT_EQ(g_code, SI_QUEUE);
  EXPECT_EQ(g_value, 42);
  EXPECT_EQ(g_sender, getpid());
}

TEST_F(ProcessSignalTest, KillInterruptsTheMainThreadsRead) {
  StartWorkers();
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread sender = SendSoon([] { kill(getpid(), SIGUSR1); });
  char byte;
  ssize_t r = read(fds[0], &byte, 1);  // SIGUSR1's handler has no SA_RESTART
  int err = errno;
  main_back_ = true;
  sender.join();
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(r, -1);
  EXPECT_EQ(err, EINTR);
  EXPECT_EQ(g_watchdog_fired, 0) << "read went on: the signal did not interrupt it";
  EXPECT_EQ(g_calls, 1);
  EXPECT_TRUE(g_in_main);
}

TEST_F(ProcessSignalTest, ASignalEveryOtherThreadBlocksReachesTheOneInSigsuspend) {
  sigset_t usr1 = Only(SIGUSR1), old;
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, &old), 0);  // inherited by every thread made below
  StartWorkers();
  std::atomic<bool> ready{false};
  std::atomic<int> result{0}, err{0};
  std::thread waiter([&] {
    t_identity = 7;
    sigset_t open;
    pthread_sigmask(SIG_BLOCK, nullptr, &open);
    sigdelset(&open, SIGUSR1);
    ready = true;
    result = sigsuspend(&open);
    err = errno;
  });
  while (!ready) usleep(1000);
  usleep(50 * 1000);
  ASSERT_EQ(kill(getpid(), SIGUSR1), 0);
  waiter.join();
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(result, -1);
  EXPECT_EQ(err, EINTR);
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 7);
}

// The main thread waits on a futex that a worker sets only once the handler ran (a program that
// stops on SIGTERM this way must not hang): the handler may run in any thread, but at once.
TEST_F(ProcessSignalTest, AHandlerThatWakesTheMainThreadsFutexWaitRunsAtOnce) {
  static std::atomic<int> word{0};
  word = 0;
  std::thread waker([] {
    while (g_calls == 0) usleep(1000);
    word = 1;
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  });
  std::thread sender = SendSoon([] { kill(getpid(), SIGUSR1); });
  int64_t start = NowNs();
  while (word == 0 && NowNs() - start < 10 * kNsPerSec) {
    timespec five_s = {5, 0};
    syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &five_s, nullptr, 0);
  }
  main_back_ = true;
  int64_t waited = NowNs() - start;
  sender.join();
  waker.join();
  EXPECT_EQ(g_calls, 1);
  EXPECT_LT(waited, 3 * kNsPerSec) << "the handler waited for the main thread's futex wait to end";
}

// Once `waiter` is about to wait for something this thread holds (`ready`), sends it SIGUSR1 and
// gives the handler up to 3 s to run; returns how long it took.
int64_t SignalAndWaitForTheHandler(pthread_t waiter) {
  while (!g_ready) usleep(1000);
  usleep(50 * 1000);  // it waits by now
  int64_t sent = NowNs();
  EXPECT_EQ(pthread_kill(waiter, SIGUSR1), 0);
  while (g_calls == 0 && NowNs() - sent < 3 * kNsPerSec) usleep(1000);
  return g_calls == 0 ? 3 * kNsPerSec : g_when - sent;
}

// `wait`, in a new thread, blocks until this thread calls `release`: a SIGUSR1 sent meanwhile runs
// its handler in that thread at once, and the wait goes on until released.
void ExpectAHandlerRunsDuringTheWait(const char* what, const std::function<void()>& wait,
                                     const std::function<void()>& release) {
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    t_identity = 9;
    g_ready = true;
    wait();
    done = true;
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  bool done_early = done;
  release();
  waiter.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for " << what;
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 9);
  EXPECT_FALSE(done_early) << what << " ended early";
  EXPECT_TRUE(done);
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsForAMutexWhichItThenTakes) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  ASSERT_EQ(pthread_mutex_lock(&mutex), 0);
  ExpectAHandlerRunsDuringTheWait(
      "the mutex",
      [&] {
        pthread_mutex_lock(&mutex);
        pthread_mutex_unlock(&mutex);
      },
      [&] { pthread_mutex_unlock(&mutex); });
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsForAReadLockWhichItThenTakes) {
  pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(pthread_rwlock_wrlock(&lock), 0);
  ExpectAHandlerRunsDuringTheWait(
      "the read lock",
      [&] {
        pthread_rwlock_rdlock(&lock);
        pthread_rwlock_unlock(&lock);
      },
      [&] { pthread_rwlock_unlock(&lock); });
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsForAWriteLockWhichItThenTakes) {
  pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
  ASSERT_EQ(pthread_rwlock_rdlock(&lock), 0);
  ExpectAHandlerRunsDuringTheWait(
      "the write lock",
      [&] {
        pthread_rwlock_wrlock(&lock);
        pthread_rwlock_unlock(&lock);
      },
      [&] { pthread_rwlock_unlock(&lock); });
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsAtABarrierWhichThenOpens) {
  pthread_barrier_t barrier;
  ASSERT_EQ(pthread_barrier_init(&barrier, nullptr, 2), 0);
  ExpectAHandlerRunsDuringTheWait(
      "the barrier", [&] { pthread_barrier_wait(&barrier); }, [&] { pthread_barrier_wait(&barrier); });
  ASSERT_EQ(pthread_barrier_destroy(&barrier), 0);
}

pthread_once_t g_once = PTHREAD_ONCE_INIT;
std::atomic<bool> g_init_may_end{false};
std::atomic<int> g_inits{0};

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsForAnotherThreadsPthreadOnce) {
  std::thread initializer([] {
    pthread_once(&g_once, [] {
      g_inits++;
      while (!g_init_may_end) usleep(1000);
    });
  });
  while (g_inits == 0) usleep(1000);
  ExpectAHandlerRunsDuringTheWait(
      "pthread_once", [] { pthread_once(&g_once, [] { g_inits++; }); },
      [&] {
        g_init_may_end = true;
        initializer.join();
      });
  EXPECT_EQ(g_inits, 1);
}

std::atomic<bool> g_release{false};
void* WaitForRelease(void*) {
  while (!g_release) usleep(1000);
  return reinterpret_cast<void*>(5);
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadJoinsAndTheJoinCompletes) {
  g_release = false;
  pthread_t target;
  ASSERT_EQ(pthread_create(&target, nullptr, WaitForRelease, nullptr), 0);
  std::atomic<int> join_result{-1};
  std::atomic<void*> value{nullptr};
  std::thread joiner([&] {
    t_identity = 9;
    g_ready = true;
    void* v = nullptr;
    join_result = pthread_join(target, &v);
    value = v;
  });
  int64_t latency = SignalAndWaitForTheHandler(joiner.native_handle());
  int result_early = join_result;
  g_release = true;
  joiner.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for the join";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 9);
  EXPECT_EQ(result_early, -1);
  EXPECT_EQ(join_result, 0);
  EXPECT_EQ(value, reinterpret_cast<void*>(5));
}

TEST_F(ProcessSignalTest, AHandlerRunsWhileItsThreadWaitsOnAConditionThatThenSignalsIt) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  bool ready = false;  // guarded by mutex
  std::atomic<bool> returned{false};
  std::atomic<int> wait_result{-1};
  std::thread waiter([&] {
    t_identity = 9;
    pthread_mutex_lock(&mutex);
    g_ready = true;
    int r = 0;
    while (!ready && r == 0) r = pthread_cond_wait(&cond, &mutex);
    wait_result = r;
    returned = true;
    pthread_mutex_unlock(&mutex);
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  bool returned_early = returned;
  pthread_mutex_lock(&mutex);
  ready = true;
  pthread_cond_signal(&cond);
  pthread_mutex_unlock(&mutex);
  waiter.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for the condition";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 9);
  EXPECT_FALSE(returned_early);
  EXPECT_EQ(wait_result, 0);
}

// A futex wait a handler interrupts fails with EINTR, as the kernel's does after a handler that
// is not SA_RESTART (this one is not).
TEST_F(ProcessSignalTest, AHandlerEndsItsThreadsFutexWaitWithEintr) {
  static std::atomic<int> word{0};
  word = 0;
  std::atomic<long> result{0};
  std::atomic<int> error{0};
  std::thread waiter([&] {
    t_identity = 9;
    g_ready = true;
    result = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    error = errno;
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  if (g_calls == 0) {  // unstick it to end the test
    word = 1;
    syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
  waiter.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for the futex wait";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 9);
  EXPECT_EQ(result, -1);
  EXPECT_EQ(error, EINTR);
}

// A stream of signals is handled one after another, as the kernel does (the signal stays blocked
// until a handler returns), not nested: a receiver with a small stack survives it, and its
// handler's frames stay at one depth.
std::atomic<uintptr_t> g_lowest_sp{UINTPTR_MAX}, g_highest_sp{0};
std::atomic<long> g_stream_hits{0};
void OnStreamed(int) {
  char here;
  auto sp = reinterpret_cast<uintptr_t>(&here);
  for (uintptr_t low = g_lowest_sp; sp < low && !g_lowest_sp.compare_exchange_weak(low, sp);) {
  }
  for (uintptr_t high = g_highest_sp; sp > high && !g_highest_sp.compare_exchange_weak(high, sp);) {
  }
  g_stream_hits++;
  for (volatile int i = 0; i < 2000; i = i + 1) {
  }
}

TEST_F(ProcessSignalTest, AStreamOfSignalsDoesNotNestHandlers) {
  struct sigaction action = {}, plain;
  action.sa_handler = OnStreamed;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &action, &plain), 0);
  sigset_t usr1 = Only(SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, nullptr), 0);  // senders and this thread: only the receiver takes it
  std::atomic<bool> stop{false};
  pthread_attr_t small;
  pthread_attr_init(&small);
  pthread_attr_setstacksize(&small, 128 * 1024);
  pthread_t receiver;
  ASSERT_EQ(pthread_create(&receiver, &small,
                           [](void* flag) -> void* {
                             sigset_t usr1 = Only(SIGUSR1);
                             pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
                             auto* stop = static_cast<std::atomic<bool>*>(flag);
                             while (!*stop) {
                             }
                             pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
                             return nullptr;
                           },
                           &stop),
            0);
  std::vector<std::thread> senders;
  for (int i = 0; i < 2; ++i) {
    senders.emplace_back([&] {
      // (A yield now and then: kill() is libc, where vthread's preemption does not switch, and with
      // one carrier the receiver needs turns too.)
      for (int n = 1; !stop; ++n) {
        kill(getpid(), SIGUSR1);
        if (n % 16 == 0) sched_yield();
      }
    });
  }
  usleep(1000 * 1000);
  stop = true;
  for (auto& t : senders) t.join();
  ASSERT_EQ(pthread_join(receiver, nullptr), 0);
  pthread_attr_destroy(&small);
  sigset_t left;
  sigpending(&left);
  if (sigismember(&left, SIGUSR1)) {  // the last instance, pending for the process: take it
    timespec none = {0, 0};
    sigtimedwait(&usr1, nullptr, &none);
  }
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  ASSERT_EQ(sigaction(SIGUSR1, &plain, nullptr), 0);
  EXPECT_GT(g_stream_hits.load(), 20);
  EXPECT_LT(g_highest_sp - g_lowest_sp, 16 * 1024u) << "handlers nested";
}

// Signals sent to the process while the only threads that accept them keep exiting: each reaches
// one of them (one chosen as it exits gives it back for the next).
std::atomic<long> g_churn_hits{0};
void OnChurnSignal(int) { g_churn_hits++; }

TEST_F(ProcessSignalTest, AProcessSignalIsNotLostToAnExitingThread) {
  struct sigaction action = {}, plain;
  action.sa_handler = OnChurnSignal;
  sigemptyset(&action.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &action, &plain), 0);
  sigset_t usr1 = Only(SIGUSR1);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &usr1, nullptr), 0);  // inherited by the creators
  std::atomic<bool> stop{false};
  std::vector<std::thread> creators;
  for (int i = 0; i < 3; ++i) {
    creators.emplace_back([&] {
      while (!stop) {
        std::thread short_lived([] {
          sigset_t usr1 = Only(SIGUSR1);
          pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
          for (volatile int spin = 0; spin < 200; spin = spin + 1) {
          }
        });
        short_lived.join();
      }
    });
  }
  int lost = 0;
  for (int i = 0; i < 300; ++i) {
    long before = g_churn_hits;
    kill(getpid(), SIGUSR1);
    int64_t sent = NowNs();
    while (g_churn_hits == before && NowNs() - sent < 2 * kNsPerSec) usleep(50);
    if (g_churn_hits == before) ++lost;
  }
  stop = true;
  for (auto& t : creators) t.join();
  ASSERT_EQ(pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr), 0);
  ASSERT_EQ(sigaction(SIGUSR1, &plain, nullptr), 0);
  EXPECT_EQ(lost, 0);
}

// A handler for a signal outside the set ends sigtimedwait with EINTR; sigwait waits on.
TEST_F(ProcessSignalTest, AHandlerForAnotherSignalEndsSigtimedwaitWithEintr) {
  std::atomic<int> result{0};
  std::atomic<int> error{0};
  std::thread waiter([&] {
    t_identity = 9;
    sigset_t wanted = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
    g_ready = true;
    timespec five_s = {5, 0};
    result = sigtimedwait(&wanted, nullptr, &five_s);
    error = errno;
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  waiter.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for sigtimedwait";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(g_identity, 9);
  EXPECT_EQ(result, -1);
  EXPECT_EQ(error, EINTR);
}

TEST_F(ProcessSignalTest, AHandlerForAnotherSignalLeavesSigwaitWaiting) {
  std::atomic<int> got{0};
  std::thread waiter([&] {
    t_identity = 9;
    sigset_t wanted = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &wanted, nullptr);
    g_ready = true;
    int sig = 0;
    if (sigwait(&wanted, &sig) == 0) got = sig;
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  usleep(20 * 1000);
  int early = got;
  ASSERT_EQ(pthread_kill(waiter.native_handle(), SIGUSR2), 0);
  waiter.join();
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for sigwait";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(early, 0);
  EXPECT_EQ(got, SIGUSR2);
}

// With an SA_RESTART handler the kernel restarts an untimed futex wait: it ends when woken.
TEST_F(ProcessSignalTest, AnSaRestartHandlerLeavesItsThreadsUntimedFutexWaitWaiting) {
  struct sigaction restarting = {}, plain;
  restarting.sa_sigaction = OnUsr1;
  restarting.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&restarting.sa_mask);
  ASSERT_EQ(sigaction(SIGUSR1, &restarting, &plain), 0);
  static std::atomic<int> word{0};
  word = 0;
  std::atomic<long> result{-2};
  std::thread waiter([&] {
    t_identity = 9;
    g_ready = true;
    result = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
  });
  int64_t latency = SignalAndWaitForTheHandler(waiter.native_handle());
  usleep(20 * 1000);
  long early = result;
  word = 1;
  syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  waiter.join();
  ASSERT_EQ(sigaction(SIGUSR1, &plain, nullptr), 0);
  EXPECT_LT(latency, kNsPerSec) << "the handler waited for the futex wait";
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(early, -2) << "the wait returned after the handler";
  EXPECT_EQ(result, 0);
}

}  // namespace
}  // namespace vthread_test
