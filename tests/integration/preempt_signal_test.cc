// The program's own SIGALRM while vthread preempts with SIGALRM: every signal the program causes
// reaches its handler exactly once with its own si_code and si_value, the library's ticks never do,
// and sigaction/signal/sigprocmask report what the program set. CPU-bound threads run throughout
// (BUILD sets a 1 ms quantum), so ticks are flowing on every carrier while the program's signals
// arrive. An instance the main thread blocks goes to a thread that does not, and sigtimedwait takes
// one that every thread blocks.
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::NowNs;

struct Record {
  int code;
  int value;
};
constexpr int kMaxRecords = 4096;
Record g_records[kMaxRecords];
std::atomic<int> g_count{0};
std::atomic<int> g_plain_count{0};

void OnAlarm(int sig, siginfo_t* info, void*) {
  if (sig != SIGALRM) abort();
  int i = g_count.fetch_add(1);
  if (i < kMaxRecords) g_records[i] = Record{info->si_code, info->si_value.sival_int};
}

void OnAlarmPlain(int sig) {
  if (sig != SIGALRM) abort();
  g_plain_count.fetch_add(1);
}

void SleepMs(int ms) {
  timespec ts = vthread_test::ToTimespec(ms * vthread_test::kNsPerMs);
  nanosleep(&ts, nullptr);
}

// Waits (up to 5 s) for the handler to have run `n` times in total.
int WaitForCount(int n) {
  int64_t deadline = NowNs() + 5 * vthread_test::kNsPerSec;
  while (g_count.load() < n && NowNs() < deadline) SleepMs(1);
  return g_count.load();
}

volatile int g_stop = 0;
void* Hog(void*) {
  while (!g_stop) {
  }
  return nullptr;
}

class ProgramSigalrm : public ::testing::Test {
 protected:
  void SetUp() override {
    g_stop = 0;
    for (int i = 0; i < 2 * vthread_test::Carriers(); ++i) {
      pthread_t t;
      ASSERT_EQ(pthread_create(&t, nullptr, Hog, nullptr), 0);
      hogs_.push_back(t);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = OnAlarm;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGALRM, &sa, nullptr), 0);
    g_count = 0;
  }
  void TearDown() override {
    g_stop = 1;
    for (pthread_t t : hogs_) pthread_join(t, nullptr);
    signal(SIGALRM, SIG_DFL);
  }
  // Sends nothing itself; checks the next handler call is exactly one with `code` (and `value`).
  void ExpectOne(int first, int code, int value = -1) {
    ASSERT_EQ(WaitForCount(first + 1), first + 1);
    SleepMs(30);  // nothing else may follow
    ASSERT_EQ(g_count.load(), first + 1);
    EXPECT_EQ(g_records[first].code, code);
    if (value >= 0) EXPECT_EQ(g_records[first].value, value);
  }
  std::vector<pthread_t> hogs_;
};

TEST(ProgramSigalrmDisposition, SigactionAndSignalReportTheProgramsHandler) {
  pthread_t t;  // make sure the library has started (it installs its handler then)
  ASSERT_EQ(pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr), 0);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGALRM, nullptr, &old), 0);
  EXPECT_EQ(old.sa_handler, SIG_DFL);
  EXPECT_EQ(signal(SIGALRM, OnAlarmPlain), SIG_DFL);
  EXPECT_EQ(signal(SIGALRM, SIG_IGN), OnAlarmPlain);
  ASSERT_EQ(sigaction(SIGALRM, nullptr, &old), 0);
  EXPECT_EQ(old.sa_handler, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnAlarm;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR1);
  ASSERT_EQ(sigaction(SIGALRM, &sa, &old), 0);
  EXPECT_EQ(old.sa_handler, SIG_IGN);
  ASSERT_EQ(sigaction(SIGALRM, nullptr, &old), 0);
  EXPECT_EQ(old.sa_sigaction, OnAlarm);
  EXPECT_TRUE(old.sa_flags & SA_SIGINFO);
  EXPECT_EQ(sigismember(&old.sa_mask, SIGUSR1), 1);
  signal(SIGALRM, SIG_DFL);
}

TEST_F(ProgramSigalrm, RaiseKillSigqueue) {
  ASSERT_EQ(raise(SIGALRM), 0);
  ExpectOne(0, SI_TKILL);
  ASSERT_EQ(kill(getpid(), SIGALRM), 0);
  ExpectOne(1, SI_USER);
  union sigval v;
  v.sival_int = 42;
  ASSERT_EQ(sigqueue(getpid(), SIGALRM, v), 0);
  ExpectOne(2, SI_QUEUE, 42);
}

TEST_F(ProgramSigalrm, PosixTimer) {
  struct sigevent ev;
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGALRM;
  ev.sigev_value.sival_int = 77;
  timer_t timer;
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &ev, &timer), 0);
  struct itimerspec spec = {{0, 0}, {0, 20 * 1000 * 1000}};
  ASSERT_EQ(timer_settime(timer, 0, &spec, nullptr), 0);
  ExpectOne(0, SI_TIMER, 77);
  timer_delete(timer);
}

TEST_F(ProgramSigalrm, AlarmAndItimer) {
  alarm(1);
  ExpectOne(0, SI_KERNEL);
  struct itimerval once = {{0, 0}, {0, 50 * 1000}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &once, nullptr), 0);
  ExpectOne(1, SI_KERNEL);
  // A periodic timer: 20 expirations, each delivered once, then silence.
  struct itimerval periodic = {{0, 10 * 1000}, {0, 10 * 1000}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &periodic, nullptr), 0);
  ASSERT_GE(WaitForCount(2 + 20), 2 + 20);
  struct itimerval off = {{0, 0}, {0, 0}};
  ASSERT_EQ(setitimer(ITIMER_REAL, &off, nullptr), 0);
  int n = g_count.load();
  SleepMs(100);
  EXPECT_EQ(g_count.load(), n);
  for (int i = 0; i < n; ++i) EXPECT_EQ(g_records[i].code, SI_KERNEL) << i;
}

TEST_F(ProgramSigalrm, BlockedSignalIsDeliveredOnUnblock) {
  sigset_t alrm, old, now;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &alrm, &old), 0);
  EXPECT_EQ(sigismember(&old, SIGALRM), 0);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, nullptr, &now), 0);
  EXPECT_EQ(sigismember(&now, SIGALRM), 1);
  ASSERT_EQ(raise(SIGALRM), 0);
  SleepMs(50);
  EXPECT_EQ(g_count.load(), 0);
  ASSERT_EQ(sigprocmask(SIG_UNBLOCK, &alrm, &old), 0);
  EXPECT_EQ(sigismember(&old, SIGALRM), 1);
  ExpectOne(0, SI_TKILL);
}

TEST_F(ProgramSigalrm, ResetHandAndIgnore) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnAlarm;
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
  ASSERT_EQ(sigaction(SIGALRM, &sa, nullptr), 0);
  ASSERT_EQ(raise(SIGALRM), 0);
  ExpectOne(0, SI_TKILL);
  struct sigaction old;
  ASSERT_EQ(sigaction(SIGALRM, nullptr, &old), 0);
  EXPECT_EQ(old.sa_handler, SIG_DFL);
  signal(SIGALRM, SIG_IGN);
  ASSERT_EQ(raise(SIGALRM), 0);
  SleepMs(30);
  EXPECT_EQ(g_count.load(), 1);
}

TEST_F(ProgramSigalrm, AnInstanceTheMainThreadBlocksGoesToAThreadThatDoesNot) {
  static std::atomic<pthread_t> handled_in{pthread_t{}};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = [](int) { handled_in = pthread_self(); };
  sigemptyset(&sa.sa_mask);
  ASSERT_EQ(sigaction(SIGALRM, &sa, nullptr), 0);
  std::atomic<bool> done{false};
  pthread_t sleeper;
  ASSERT_EQ(pthread_create(&sleeper, nullptr, [](void* arg) -> void* {
    auto* done = static_cast<std::atomic<bool>*>(arg);
    while (!*done) SleepMs(5);
    return nullptr;
  }, &done), 0);
  sigset_t alrm, old;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &alrm, &old), 0);  // the hogs and the sleeper do not
  ASSERT_EQ(kill(getpid(), SIGALRM), 0);
  int64_t deadline = NowNs() + 5 * vthread_test::kNsPerSec;
  while (handled_in.load() == pthread_t{} && NowNs() < deadline) SleepMs(1);
  bool in_main = pthread_equal(handled_in.load(), pthread_self());
  bool handled = handled_in.load() != pthread_t{};
  done = true;
  ASSERT_EQ(pthread_join(sleeper, nullptr), 0);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_TRUE(handled) << "the signal waited for the main thread to unblock it";
  EXPECT_FALSE(in_main);
}

TEST(ProgramSigalrmWait, SigtimedwaitTakesAnInstanceEveryThreadBlocks) {
  sigset_t alrm, old;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &alrm, &old), 0);
  g_stop = 0;
  pthread_t hog;  // inherits the mask; keeps ticks flowing
  ASSERT_EQ(pthread_create(&hog, nullptr, Hog, nullptr), 0);
  ASSERT_EQ(kill(getpid(), SIGALRM), 0);
  siginfo_t info;
  timespec two_s = {2, 0};
  int got = sigtimedwait(&alrm, &info, &two_s);
  g_stop = 1;
  ASSERT_EQ(pthread_join(hog, nullptr), 0);
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  EXPECT_EQ(got, SIGALRM);
  EXPECT_EQ(info.si_code, SI_USER);
  EXPECT_EQ(info.si_pid, getpid());
}

}  // namespace
