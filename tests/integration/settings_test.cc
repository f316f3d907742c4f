// VTHREAD_* settings: a bad value prints exactly one line on stderr saying what is used instead and
// the program still runs; good values are silent and take effect. Each case re-runs this binary as
// a child with the variable set (LD_PRELOAD is inherited), so it also runs natively, where every
// case must be silent.
#include <gtest/gtest.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>

namespace {

const char* g_self;

bool under_vthread() { return getenv("VTHREAD_EXPECT_FIBERS") != nullptr; }

void* report_stack_size(void*) {
  pthread_attr_t attr;
  size_t size = 0;
  pthread_getattr_np(pthread_self(), &attr);
  pthread_attr_getstacksize(&attr, &size);
  pthread_attr_destroy(&attr);
  return reinterpret_cast<void*>(size);
}

struct ChildRun {
  int status;
  std::string err;
  std::string out;
};

// Runs `self --child` with var=value; collects its stdout and stderr.
ChildRun run_child(const char* var, const char* value) {
  int out_pipe[2], err_pipe[2];
  EXPECT_EQ(pipe(out_pipe), 0);
  EXPECT_EQ(pipe(err_pipe), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    setenv(var, value, 1);
    execl(g_self, g_self, "--child", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ChildRun run{};
  char buf[4096];
  for (ssize_t n; (n = read(out_pipe[0], buf, sizeof buf)) > 0;) run.out.append(buf, n);
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof buf)) > 0;) run.err.append(buf, n);
  close(out_pipe[0]);
  close(err_pipe[0]);
  waitpid(pid, &run.status, 0);
  return run;
}

void expect_one_line_fallback(const char* var, const char* value) {
  SCOPED_TRACE(std::string(var) + "=" + value);
  ChildRun run = run_child(var, value);
  EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << run.err;
  EXPECT_NE(run.out.find("child ok"), std::string::npos);
  if (!under_vthread()) {
    EXPECT_EQ(run.err, "");
    return;
  }
  std::string prefix = std::string("vthread: ") + var + "='" + value + "'";
  EXPECT_EQ(run.err.compare(0, prefix.size(), prefix), 0) << run.err;
  EXPECT_NE(run.err.find("using"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

TEST(Settings, BadCarrierCountsFallBackWithOneLine) {
  for (const char* v : {"abc", "0", "-3", "5000", "2x", ""}) expect_one_line_fallback("VTHREAD_CARRIERS", v);
}

TEST(Settings, BadStackSizesFallBackWithOneLine) {
  for (const char* v : {"12", "64q", "k", "99999999999999999999", "2G"}) {
    expect_one_line_fallback("VTHREAD_STACK_SIZE", v);
  }
}

TEST(Settings, BadSwitchBackendFallsBackWithOneLine) { expect_one_line_fallback("VTHREAD_SWITCH", "fibers"); }

TEST(Settings, BadTlsModeFallsBackWithOneLine) { expect_one_line_fallback("VTHREAD_TLS", "per-thread"); }

// VTHREAD_PROFILE writes a gperftools CPU profile of the run.
TEST(Settings, ProfileIsWrittenWhereAsked) {
  if (!under_vthread()) GTEST_SKIP() << "VTHREAD_PROFILE is read by the shim";
  std::string path = std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/settings_test.prof";
  unlink(path.c_str());
  ChildRun run = run_child("VTHREAD_PROFILE", path.c_str());
  EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << run.err;
  // A gperftools CPU profile starts with the header words 0, 3 (header size), 0 (version).
  FILE* f = fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr) << "no profile at " << path << "; stderr: " << run.err;
  uintptr_t header[3] = {1, 1, 1};
  EXPECT_EQ(fread(header, sizeof header[0], 3, f), 3u);
  fclose(f);
  EXPECT_EQ(header[0], 0u);
  EXPECT_EQ(header[1], 3u);
  EXPECT_EQ(header[2], 0u);
}

TEST(Settings, UnwritableProfilePathSaysSoInOneLineAndRuns) {
  ChildRun run = run_child("VTHREAD_PROFILE", "/nonexistent-dir/x.prof");
  EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << run.err;
  EXPECT_NE(run.out.find("child ok"), std::string::npos);
  if (!under_vthread()) {
    EXPECT_EQ(run.err, "");
    return;
  }
  EXPECT_EQ(run.err.rfind("vthread: VTHREAD_PROFILE='/nonexistent-dir/x.prof'", 0), 0u) << run.err;
  EXPECT_NE(run.err.find("not profiling"), std::string::npos) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
}

TEST(Settings, GoodValuesAreSilent) {
  for (auto [var, value] : {std::pair{"VTHREAD_CARRIERS", "3"}, std::pair{"VTHREAD_STACK_SIZE", "256k"},
                            std::pair{"VTHREAD_STACK_SIZE", "1MiB"}, std::pair{"VTHREAD_SWITCH", "ucontext"},
                            std::pair{"VTHREAD_SWITCH", "asm"}, std::pair{"VTHREAD_TLS", "carrier"},
                            std::pair{"VTHREAD_TLS", "fiber"}}) {
    SCOPED_TRACE(std::string(var) + "=" + value);
    ChildRun run = run_child(var, value);
    EXPECT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << run.err;
    EXPECT_EQ(run.err, "");
  }
}

TEST(Settings, StackSizeBecomesTheDefaultThreadStack) {
  if (!under_vthread()) GTEST_SKIP() << "VTHREAD_STACK_SIZE is read by the shim";
  ChildRun run = run_child("VTHREAD_STACK_SIZE", "256k");
  EXPECT_NE(run.out.find("stack 262144"), std::string::npos) << run.out;
}

}  // namespace

int main(int argc, char** argv) {
  g_self = argv[0];
  if (argc > 1 && strcmp(argv[1], "--child") == 0) {
    pthread_t t;
    void* size = nullptr;
    if (pthread_create(&t, nullptr, report_stack_size, nullptr) != 0 || pthread_join(t, &size) != 0) return 1;
    printf("child ok, stack %zu\n", reinterpret_cast<size_t>(size));
    return 0;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
