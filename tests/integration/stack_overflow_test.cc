// A thread that overflows its stack kills the process with SIGSEGV, as natively, and under vthread
// the report on stderr names the thread. Other faults are not reported as overflows, and a SIGSEGV
// handler the program installed, before its first thread or after, still gets the faults (and
// under vthread an overflow is reported first). Each case re-runs
// this binary as a child (LD_PRELOAD is inherited), so it also runs natively.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace {

const char* g_self;

bool under_vthread() { return getenv("VTHREAD_EXPECT_FIBERS") != nullptr; }

struct ChildRun {
  int status;
  std::string err;
};

ChildRun run_child(const char* mode) {
  int err_pipe[2];
  EXPECT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], 2);
    close(err_pipe[0]);
    rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    execl(g_self, g_self, "--child", mode, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err_pipe[1]);
  ChildRun run{};
  char buf[4096];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) run.err.append(buf, n);
  close(err_pipe[0]);
  waitpid(pid, &run.status, 0);
  return run;
}

bool killed_by_segv(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV; }

TEST(StackOverflow, KillsWithSigsegvAndNamesTheThread) {
  ChildRun run = run_child("overflow");
  EXPECT_TRUE(killed_by_segv(run.status)) << "status " << run.status << ": " << run.err;
  if (!under_vthread()) return;
  EXPECT_NE(run.err.find("\"deep-diver\" overflowed its stack (64 KiB"), std::string::npos) << run.err;
}

TEST(StackOverflow, OtherFaultsAreNotCalledOverflows) {
  ChildRun run = run_child("null");
  EXPECT_TRUE(killed_by_segv(run.status)) << "status " << run.status << ": " << run.err;
  EXPECT_EQ(run.err.find("overflowed"), std::string::npos) << run.err;
}

TEST(StackOverflow, TheProgramsOwnHandlerStillGetsFaults) {
  ChildRun run = run_child("handled");
  EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 42) << "status " << run.status << ": " << run.err;
}

TEST(StackOverflow, AHandlerInstalledAfterTheFirstThreadGetsAnOverflowAfterTheReport) {
  ChildRun run = run_child("overflow-handled-late");
  EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 42) << "status " << run.status << ": " << run.err;
  if (!under_vthread()) return;
  EXPECT_NE(run.err.find("\"deep-diver\" overflowed its stack"), std::string::npos) << run.err;
}

// ---- the child --------------------------------------------------------------------------------

__attribute__((noinline)) int recurse(int n) {
  volatile char frame[512];
  memset(const_cast<char*>(frame), n, sizeof frame);
  return n > 1000000000 ? 0 : recurse(n + 1) + frame[3];
}

bool g_own_altstack = false;

void* overflow(void*) {
  pthread_setname_np(pthread_self(), "deep-diver");
  if (g_own_altstack) {
    stack_t ss = {};
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    sigaltstack(&ss, nullptr);
  }
  return reinterpret_cast<void*>(static_cast<intptr_t>(recurse(0)));
}

void* dereference_null(void*) {
  volatile int* volatile p = nullptr;
  return reinterpret_cast<void*>(static_cast<intptr_t>(*p));
}

void exit_42(int) { _exit(42); }

int child(const char* mode) {
  bool late = strcmp(mode, "overflow-handled-late") == 0;
  if (strcmp(mode, "handled") == 0 || late) {
    if (late) {  // after a first thread (under vthread, once the runtime has started)
      pthread_t first;
      if (pthread_create(&first, nullptr, [](void*) -> void* { return nullptr; }, nullptr) != 0) return 3;
      pthread_join(first, nullptr);
    }
    // On an alternate stack (the overflowing thread sets one up): a handler for an overflow has
    // no stack left otherwise.
    g_own_altstack = late;
    struct sigaction action = {};
    action.sa_handler = exit_42;
    action.sa_flags = SA_ONSTACK;
    sigaction(SIGSEGV, &action, nullptr);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t t;
  bool overflows = strcmp(mode, "overflow") == 0 || late;
  if (pthread_create(&t, &attr, overflows ? overflow : dereference_null, nullptr) != 0) return 3;
  pthread_join(t, nullptr);
  return 4;  // not reached: the thread's fault ends the process
}

}  // namespace

int main(int argc, char** argv) {
  g_self = argv[0];
  if (argc > 2 && strcmp(argv[1], "--child") == 0) return child(argv[2]);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
