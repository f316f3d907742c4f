// The System V and BSD signal calls (sysv_signal, sigset, sighold, sigrelse, sigignore, sigpause,
// siginterrupt, sigblock, sigsetmask, siggetmask, sigstack) act on the calling thread's mask and
// alternate stack and on the dispositions sigaction reports, as the modern calls do, whatever
// carrier the thread shares with others.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>

#include "tests/integration/util.h"

extern "C" sighandler_t __sysv_signal(int sig, sighandler_t handler);
extern "C" sighandler_t bsd_signal(int sig, sighandler_t handler);

namespace {

std::atomic<int> g_handled{0};
void CountingHandler(int) { g_handled.fetch_add(1); }

bool Blocks(int sig) {
  sigset_t now;
  return pthread_sigmask(SIG_SETMASK, nullptr, &now) == 0 && sigismember(&now, sig) == 1;
}

struct sigaction Query(int sig) {
  struct sigaction now;
  memset(&now, 0, sizeof now);
  sigaction(sig, nullptr, &now);
  return now;
}

class SigCompat : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(sigaction(SIGUSR1, nullptr, &saved_), 0);
    g_handled = 0;
  }
  void TearDown() override { sigaction(SIGUSR1, &saved_, nullptr); }
  struct sigaction saved_;
};

TEST_F(SigCompat, SysvSignalIsOneShotAndSigactionSeesIt) {
  using Install = sighandler_t (*)(int, sighandler_t);
  for (Install install : {Install{sysv_signal}, Install{__sysv_signal}}) {
    ASSERT_NE(install(SIGUSR1, CountingHandler), SIG_ERR);
    struct sigaction now = Query(SIGUSR1);
    EXPECT_EQ(now.sa_handler, CountingHandler);
    EXPECT_EQ(now.sa_flags & (SA_RESETHAND | SA_NODEFER | SA_RESTART), SA_RESETHAND | SA_NODEFER);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr,
                             [](void*) -> void* {
                               pthread_kill(pthread_self(), SIGUSR1);
                               return nullptr;
                             },
                             nullptr),
              0);
    ASSERT_EQ(pthread_join(t, nullptr), 0);
    EXPECT_EQ(Query(SIGUSR1).sa_handler, SIG_DFL) << "not reset after one delivery";
  }
  EXPECT_EQ(g_handled.load(), 2);
  errno = 0;
  EXPECT_EQ(sysv_signal(0, CountingHandler), SIG_ERR);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(SigCompat, SiginterruptTogglesRestart) {
  ASSERT_NE(signal(SIGUSR1, CountingHandler), SIG_ERR);
  EXPECT_TRUE(Query(SIGUSR1).sa_flags & SA_RESTART);
  ASSERT_EQ(siginterrupt(SIGUSR1, 1), 0);
  EXPECT_FALSE(Query(SIGUSR1).sa_flags & SA_RESTART);
  EXPECT_EQ(Query(SIGUSR1).sa_handler, CountingHandler);
  ASSERT_EQ(siginterrupt(SIGUSR1, 0), 0);
  EXPECT_TRUE(Query(SIGUSR1).sa_flags & SA_RESTART);
}

// glibc remembers siginterrupt's choice for later signal() calls.
TEST_F(SigCompat, SignalAfterSiginterruptDoesNotRestart) {
  ASSERT_EQ(siginterrupt(SIGUSR1, 1), 0);
  ASSERT_NE(signal(SIGUSR1, CountingHandler), SIG_ERR);
  EXPECT_FALSE(Query(SIGUSR1).sa_flags & SA_RESTART);
  ASSERT_EQ(siginterrupt(SIGUSR1, 0), 0);
  ASSERT_NE(signal(SIGUSR1, CountingHandler), SIG_ERR);
  EXPECT_TRUE(Query(SIGUSR1).sa_flags & SA_RESTART);
  errno = 0;
  EXPECT_EQ(signal(SIGUSR1, SIG_ERR), SIG_ERR);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(Query(SIGUSR1).sa_handler, CountingHandler);
}

TEST_F(SigCompat, BsdSignalAndSsignalAreSignal) {
  ASSERT_NE(bsd_signal(SIGUSR1, CountingHandler), SIG_ERR);
  EXPECT_EQ(Query(SIGUSR1).sa_handler, CountingHandler);
  EXPECT_EQ(ssignal(SIGUSR1, SIG_IGN), CountingHandler);
  EXPECT_EQ(Query(SIGUSR1).sa_handler, SIG_IGN);
}

// sigset: SIG_HOLD blocks and reports the handler; a disposition unblocks and reports SIG_HOLD.
// Run in a thread that shares its carrier with another, which must not be affected.
std::atomic<int> g_phase{0};
std::atomic<int> g_neighbour_blocked{-1};

void* Neighbour(void*) {
  while (g_phase.load() < 1) sched_yield();
  g_neighbour_blocked = Blocks(SIGUSR1) ? 1 : 0;
  g_phase = 2;
  return nullptr;
}

TEST_F(SigCompat, SigsetHoldsAndReleasesForTheCallingThreadOnly) {
  g_phase = 0;
  pthread_t neighbour, t;
  ASSERT_EQ(pthread_create(&neighbour, nullptr, Neighbour, nullptr), 0);
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             bool ok = sigset(SIGUSR1, CountingHandler) != SIG_ERR;
                             ok = ok && sigset(SIGUSR1, SIG_HOLD) == CountingHandler && Blocks(SIGUSR1);
                             ok = ok && sigset(SIGUSR1, SIG_HOLD) == SIG_HOLD;
                             g_phase = 1;
                             while (g_phase.load() < 2) sched_yield();  // the neighbour runs meanwhile
                             ok = ok && Blocks(SIGUSR1);
                             pthread_kill(pthread_self(), SIGUSR1);  // held
                             ok = ok && g_handled.load() == 0;
                             ok = ok && sigset(SIGUSR1, CountingHandler) == SIG_HOLD && !Blocks(SIGUSR1);
                             ok = ok && g_handled.load() == 1;  // ran once released
                             return ok ? &g_phase : nullptr;
                           },
                           nullptr),
            0);
  void* ok;
  ASSERT_EQ(pthread_join(t, &ok), 0);
  ASSERT_EQ(pthread_join(neighbour, nullptr), 0);
  EXPECT_NE(ok, nullptr);
  EXPECT_EQ(g_neighbour_blocked.load(), 0) << "sigset's hold reached another thread";
  EXPECT_EQ(g_handled.load(), 1);
}

TEST_F(SigCompat, SigholdSigrelseAndTheBsdMasksAreTheThreads) {
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             bool ok = sighold(SIGUSR2) == 0 && Blocks(SIGUSR2);
                             sched_yield();
                             ok = ok && (siggetmask() & sigmask(SIGUSR2)) && Blocks(SIGUSR2);
                             ok = ok && sigrelse(SIGUSR2) == 0 && !Blocks(SIGUSR2);
                             int before = sigblock(sigmask(SIGHUP));
                             ok = ok && !(before & sigmask(SIGHUP)) && Blocks(SIGHUP);
                             sched_yield();
                             ok = ok && (sigsetmask(before) & sigmask(SIGHUP)) && !Blocks(SIGHUP);
                             return ok ? &g_handled : nullptr;
                           },
                           nullptr),
            0);
  void* ok;
  ASSERT_EQ(pthread_join(t, &ok), 0);
  EXPECT_NE(ok, nullptr);
  EXPECT_FALSE(Blocks(SIGUSR2));
  EXPECT_FALSE(Blocks(SIGHUP));
}

TEST_F(SigCompat, SigignoreIgnores) {
  ASSERT_EQ(sigignore(SIGUSR1), 0);
  EXPECT_EQ(Query(SIGUSR1).sa_handler, SIG_IGN);
  raise(SIGUSR1);  // ignored: the test goes on
}

// X/Open sigpause: waits with the signal unblocked, returns -1/EINTR once its handler ran, and
// leaves the thread's mask as it was.
std::atomic<bool> g_pausing{false};

TEST_F(SigCompat, SigpauseWaitsForTheHandler) {
  ASSERT_NE(signal(SIGUSR1, CountingHandler), SIG_ERR);
  g_pausing = false;
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             sighold(SIGUSR1);
                             g_pausing = true;
                             int r = sigpause(SIGUSR1);
                             bool ok = r == -1 && errno == EINTR && g_handled.load() == 1 && Blocks(SIGUSR1);
                             return ok ? &g_handled : nullptr;
                           },
                           nullptr),
            0);
  while (!g_pausing) usleep(1000);
  usleep(50 * 1000);
  ASSERT_EQ(pthread_kill(t, SIGUSR1), 0);
  void* ok;
  ASSERT_EQ(pthread_join(t, &ok), 0);
  EXPECT_NE(ok, nullptr);
}

// glibc 2.36's own sigstack passes an uninitialized size to sigaltstack (it fails with ENOMEM or
// sets a stack of any size, often one that seems to hold the caller's frame): only the pointer can
// be checked natively.
TEST_F(SigCompat, SigstackSetsTheThreadsAlternateStack) {
  if (!vthread_test::ExpectFibers()) GTEST_SKIP() << "glibc's sigstack sets a garbage size";
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr,
                           [](void*) -> void* {
                             void* mem = mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                             struct sigstack set = {mem, 0}, old = {nullptr, 1};
                             bool ok = sigstack(&set, &old) == 0 && old.ss_onstack == 0;
                             stack_t now;
                             ok = ok && sigaltstack(nullptr, &now) == 0 && now.ss_sp == mem && now.ss_flags == 0 &&
                                  now.ss_size == 8192;
                             stack_t off = {};
                             off.ss_flags = SS_DISABLE;
                             sigaltstack(&off, nullptr);
                             munmap(mem, 65536);
                             return ok ? &g_handled : nullptr;
                           },
                           nullptr),
            0);
  void* ok;
  ASSERT_EQ(pthread_join(t, &ok), 0);
  EXPECT_NE(ok, nullptr);
  stack_t main_now;
  ASSERT_EQ(sigaltstack(nullptr, &main_now), 0);
  EXPECT_EQ(main_now.ss_flags, SS_DISABLE) << "another thread's sigstack reached this one";
}

}  // namespace
