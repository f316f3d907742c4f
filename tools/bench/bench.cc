// vthread benchmark driver: runs every workload of ./workloads once natively and once under
// LD_PRELOAD=libvthread.so, in one go, and prints a side-by-side table with ratios and the spec
// targets. It is a report, never an assertion: the exit status is 0 whenever the table was
// printed, whatever the numbers are.
//
//   bench [--lib PATH] [--carriers N] [--quick] [--only NAME...] [--repeat K] [--timeout SEC]
//         [--workloads PATH] [--report DIR]
//
// Each child runs under a timeout; a crash, non-zero exit, timeout, missing RESULT line or an
// LD_PRELOAD that ld.so ignored shows up in the table as "FAIL <reason>" instead of a number.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnu/libc-version.h>

#include <algorithm>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tools/bench/report.h"

extern char** environ;

namespace {

// Process group of the running child, so that Ctrl-C / SIGTERM of the driver takes it along (the
// child runs in its own group so that a timeout can kill everything it started).
volatile sig_atomic_t g_child_pgid = 0;

void OnFatalSignal(int sig) {
  if (g_child_pgid > 0) kill(-pid_t(g_child_pgid), SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

double NowSec() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

bool IsFile(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDir(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string DirName(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf)) return buf;
  return p;
}

std::string SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  return buf;
}

std::string Cwd() {
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof buf)) return buf;
  return ".";
}

std::string Env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string SignalName(int sig) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* abbrev = sigabbrev_np(sig)) return std::string("SIG") + abbrev;
#endif
  return Fmt("signal_%d", sig);
}

// Last non-empty line of a text blob, trimmed to `max` characters.
std::string LastLine(const std::string& text, size_t max = 160) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  if (last.size() > max) last = last.substr(0, max - 3) + "...";
  return last;
}

// Runfiles directory of this binary when run by bazel (RUNFILES_DIR, or <exe>.runfiles).
std::string RunfilesDir(const std::string& argv0) {
  std::string r = Env("RUNFILES_DIR");
  if (IsDir(r)) return r;
  for (const std::string& exe : {SelfExe(), argv0}) {
    if (!exe.empty() && IsDir(exe + ".runfiles")) return exe + ".runfiles";
  }
  return "";
}

// Looks for <runfiles>/<any workspace name>/<rel>.
std::string FindInRunfiles(const std::string& runfiles, const std::string& rel) {
  if (runfiles.empty()) return "";
  for (const char* ws : {"__main__", "vthread", "main"}) {
    std::string p = runfiles + "/" + ws + "/" + rel;
    if (IsFile(p)) return p;
  }
  // Otherwise scan the top level of the runfiles tree for the workspace directory.
  std::string found;
  if (DIR* d = opendir(runfiles.c_str())) {
    while (struct dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string p = runfiles + "/" + e->d_name + "/" + rel;
      if (found.empty() && IsFile(p)) found = p;
    }
    closedir(d);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// Running one child

struct Metric {
  bool fail = false;
  double value = 0;
  std::string unit;    // when !fail
  std::string reason;  // when fail
};

struct RunResult {
  bool ran = false;          // false: skipped
  std::string skip_reason;   // when !ran
  std::string fail;          // non-empty: the child as a whole failed (crash, timeout, ...)
  std::map<std::string, Metric> metrics;
  std::string stderr_text;
  std::string detail;  // the most telling stderr line, for the failure notes
  int runs = 1;        // after MergeRuns: how many repeats were merged ...
  int failed_runs = 0; // ... and how many of them failed as a whole
  std::string partial; // some (not all) repeats failed: which and why
  double seconds = 0;
};

struct EnvChange {
  std::string name;
  bool set;
  std::string value;
};

std::vector<std::string> BuildEnv(const std::vector<EnvChange>& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e; e++) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const EnvChange& c : changes) overridden |= c.name == key;
    if (!overridden) env.push_back(kv);
  }
  for (const EnvChange& c : changes)
    if (c.set) env.push_back(c.name + "=" + c.value);
  return env;
}

void ParseResults(const std::string& out, RunResult* r) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tag, name, value;
    if (!(ls >> tag >> name >> value) || tag != "RESULT") continue;
    Metric m;
    std::string rest;
    std::getline(ls, rest);
    size_t b = rest.find_first_not_of(" \t");
    rest = b == std::string::npos ? "" : rest.substr(b);
    if (value == "FAIL") {
      m.fail = true;
      m.reason = rest.empty() ? "unspecified" : rest;
    } else {
      char* end = nullptr;
      m.value = strtod(value.c_str(), &end);
      if (end == value.c_str() || *end) {
        m.fail = true;
        m.reason = "unparsable_value_" + value;
      } else {
        m.unit = rest;
      }
    }
    r->metrics[name] = m;
  }
}

RunResult RunChild(const std::vector<std::string>& argv, const std::vector<EnvChange>& env_changes,
                   double timeout_sec) {
  RunResult r;
  r.ran = true;
  double start = NowSec();

  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) || pipe2(err_pipe, O_CLOEXEC) || pipe2(exec_pipe, O_CLOEXEC)) {
    r.fail = Fmt("pipe_%s", strerror(errno));
    return r;
  }
  std::vector<std::string> env = BuildEnv(env_changes);
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    r.fail = Fmt("fork_%s", strerror(errno));
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]})
      close(fd);
    return r;
  }
  if (pid == 0) {
    setpgid(0, 0);                     // own process group: a timeout kills all of it
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the driver
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(cargv[0], cargv.data(), cenv.data());
    int e = errno;
    ssize_t ignored = write(exec_pipe[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // same as the child does, whichever runs first
  g_child_pgid = pid;
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(exec_pipe[1]);

  std::string out, err;
  const size_t kMaxCapture = 1 << 20;
  double deadline = start + timeout_sec;
  bool timed_out = false;
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    double left = deadline - NowSec();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    int rc = poll(fds, 2, int(left * 1000) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) break;
    for (int i = 0; i < 2; i++) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        std::string& dst = i == 0 ? out : err;
        dst.append(buf, size_t(n));
        if (dst.size() > kMaxCapture) dst.erase(0, dst.size() - kMaxCapture);
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        open_fds--;
      }
    }
  }

  // Both pipes closed (or timed out): reap, still bounded by the deadline.
  int status = 0;
  bool reaped = false;
  while (!timed_out) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    if (w < 0 && errno != EINTR) break;
    if (NowSec() >= deadline) {
      timed_out = true;
      break;
    }
    usleep(5000);
  }
  if (timed_out) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    reaped = true;
  }
  g_child_pgid = 0;
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);

  int exec_errno = 0;
  ssize_t got = read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  close(exec_pipe[0]);

  r.seconds = NowSec() - start;
  r.stderr_text = err;
  ParseResults(out, &r);

  if (got == ssize_t(sizeof exec_errno)) {
    r.fail = Fmt("exec_%s", strerror(exec_errno));
  } else if (timed_out) {
    r.fail = Fmt("timeout_%.0fs", timeout_sec);
  } else if (!reaped) {
    r.fail = "lost_child";
  } else if (WIFSIGNALED(status)) {
    r.fail = SignalName(WTERMSIG(status));
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    r.fail = Fmt("exit_%d", WEXITSTATUS(status));
  }
  // ld.so does not fail when a preload cannot be loaded: it warns and runs natively, which would
  // silently put native numbers into the vthread column.
  size_t preload_err = err.find("cannot be preloaded");
  if (preload_err != std::string::npos) {
    r.fail = "LD_PRELOAD_ignored_by_ld.so";
    r.metrics.clear();
    size_t nl = err.rfind('\n', preload_err);
    size_t begin = nl == std::string::npos ? 0 : nl + 1;
    size_t end = err.find('\n', preload_err);
    r.detail = LastLine(err.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
  } else {
    r.detail = LastLine(err);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Jobs (one workload invocation, run in several modes) and rows (one metric of one job)

// kVthread1: VTHREAD_CARRIERS=1; kVthread1SharedTls: the same with VTHREAD_TLS=carrier (fibers share
// the carrier's TLS: the bare switch, without loading a TCB).
enum Mode { kNative = 0, kVthread = 1, kVthread1 = 2, kVthread1SharedTls = 3, kModes = 4 };
const Mode kAllModes[] = {kNative, kVthread1, kVthread1SharedTls, kVthread};

struct Job {
  std::string key;                 // what --only matches (by prefix)
  std::vector<std::string> args;   // workload arguments
  bool want_vthread1 = false;      // also run with VTHREAD_CARRIERS=1
  bool want_shared_tls = false;    // also run with VTHREAD_CARRIERS=1 VTHREAD_TLS=carrier
  bool skip_native = false;        // e.g. native 100k parked threads in --quick mode
  double timeout_cap = 0;          // >0: per-child timeout for this job unless --timeout was given
  std::string skip_native_reason;
  RunResult res[kModes];
};

std::string ModeName(Mode m, const std::string& carriers_desc) {
  if (m == kVthread1SharedTls) return "vthread carriers=1 tls=carrier";
  return m == kNative ? "native" : m == kVthread1 ? "vthread carriers=1" : "vthread " + carriers_desc;
}

double MedianOf(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Folds the repeats of one job in one mode into one result: each metric is the median of the
// values the repeats produced; a metric no repeat produced keeps the first failure's reason.
// If every repeat failed as a whole, so does the merge; if only some did, failed_runs says so.
RunResult MergeRuns(const std::vector<RunResult>& runs) {
  if (runs.size() == 1 || !runs[0].ran) return runs[0];
  RunResult m;
  m.ran = true;
  m.runs = int(runs.size());
  std::map<std::string, std::vector<double>> values;
  std::map<std::string, std::string> units;
  std::string first_fail, first_detail;
  for (const RunResult& r : runs) {
    m.seconds += r.seconds;
    if (!r.fail.empty() && m.failed_runs++ == 0) {
      first_fail = r.fail;
      first_detail = r.detail;
    }
    for (const auto& kv : r.metrics) {
      if (kv.second.fail) continue;
      values[kv.first].push_back(kv.second.value);
      units[kv.first] = kv.second.unit;
    }
  }
  if (m.failed_runs == m.runs) {
    m.fail = first_fail;
  } else if (m.failed_runs > 0) {
    m.partial = Fmt("%d of %d repeats failed, first: %s", m.failed_runs, m.runs, first_fail.c_str());
  }
  m.detail = first_detail;
  for (const RunResult& r : runs) {
    bool metric_failed = false;
    for (const auto& kv : r.metrics) metric_failed |= kv.second.fail;
    if (m.detail.empty() && metric_failed) m.detail = r.detail;
  }
  for (const RunResult& r : runs) {
    for (const auto& kv : r.metrics)
      if (kv.second.fail && !values.count(kv.first) && !m.metrics.count(kv.first))
        m.metrics[kv.first] = kv.second;
  }
  for (const auto& kv : values) {
    Metric x;
    x.value = MedianOf(kv.second);
    x.unit = units[kv.first];
    m.metrics[kv.first] = x;
  }
  return m;
}

enum Target { kNoTarget, kRatioAtLeast, kVthreadBelow };

struct Row {
  std::string label;
  Job* job;
  std::string metric;
  Mode vmode;  // which vthread run provides the vthread column
  Target target = kNoTarget;
  double target_value = 0;
  std::string target_text = "";
};

struct Cell {
  bool ok = false;
  double value = 0;
  std::string unit;
  std::string text;  // what to print
};

// Human-friendly value: bytes are shown in KiB, everything else as is.
std::string FormatValue(double v, const std::string& unit, std::string* shown_unit) {
  double x = v;
  std::string u = unit;
  if (unit == "B/thread") {
    x = v / 1024.0;
    u = "KiB/thread";
  }
  if (shown_unit) *shown_unit = u;
  if (u == "tasks") return Fmt("%.0f", x);
  double ax = x < 0 ? -x : x;
  if (ax >= 1000) return Fmt("%.0f", x);
  if (ax >= 100) return Fmt("%.1f", x);
  if (ax >= 1 || ax == 0) return Fmt("%.2f", x);
  return Fmt("%.3f", x);  // e.g. us/hop
}

Cell MakeCell(const RunResult& r, const std::string& metric) {
  Cell c;
  if (!r.ran) {
    c.text = "skip (" + r.skip_reason + ")";
    return c;
  }
  auto it = r.metrics.find(metric);
  if (it != r.metrics.end() && !it->second.fail) {
    c.ok = true;
    c.value = it->second.value;
    c.unit = it->second.unit;
    c.text = FormatValue(c.value, c.unit, nullptr);
    return c;
  }
  if (it != r.metrics.end()) {
    c.text = "FAIL " + it->second.reason;
  } else if (!r.fail.empty()) {
    c.text = "FAIL " + r.fail;
  } else {
    c.text = "FAIL no_RESULT";
  }
  return c;
}

std::string Pad(const std::string& s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); }
std::string PadLeft(const std::string& s, size_t w) { return s.size() >= w ? s : std::string(w - s.size(), ' ') + s; }

void Usage(FILE* f) {
  fprintf(f,
          "usage: bench [--lib PATH] [--carriers N] [--quick] [--only NAME...] [--repeat K]\n"
          "             [--timeout SEC] [--workloads PATH] [--report DIR]\n"
          "  --lib PATH        vthread library to preload (default: <workspace>/bazel-bin/libvthread.so,\n"
          "                    workspace = $BUILD_WORKSPACE_DIRECTORY under `bazel run`, else cwd)\n"
          "  --carriers N      VTHREAD_CARRIERS for the vthread runs (default: unset = library default)\n"
          "  --quick           small iteration counts; skips the native 100k-thread run\n"
          "  --only NAME...    only jobs whose name starts with NAME: create_join yield_pingpong\n"
          "                    mutex_uncontended mutex_handoff cond_pingpong threadring\n"
          "                    contended_counter sem_pingpong cpu_throughput_2 cpu_throughput_64 wake_latency\n"
          "                    sleep_storm parked_rss_10000\n"
          "                    parked_rss_100000 (e.g. --only yield mutex parked)\n"
          "  --repeat K        run every child K times (interleaved), report medians (default 1)\n"
          "  --timeout SEC     per-child timeout (default 120; the sync jobs mutex_* cond_pingpong\n"
          "                    threadring contended_counter sem_pingpong get 15 s with --quick, 60 s\n"
          "                    without, unless --timeout is given)\n"
          "  --workloads PATH  workloads binary (default: next to this binary, or in its runfiles)\n"
          "  --report DIR      also time real programs (compressors, sort, thread-ring, chameneos,\n"
          "                    sysbench) and write DIR/bench.md and DIR/bench.png (gnuplot)\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string lib, workloads, carriers, report_dir;
  bool quick = false;
  int repeat = 1;
  double timeout_sec = 120;
  bool timeout_given = false;
  std::vector<std::string> only;

  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto need = [&](const char* what) -> std::string {
      if (i + 1 >= argc) {
        fprintf(stderr, "bench: %s needs %s\n", a.c_str(), what);
        exit(2);
      }
      return argv[++i];
    };
    if (a == "--lib") {
      lib = need("a path");
    } else if (a.rfind("--lib=", 0) == 0) {
      lib = a.substr(6);
    } else if (a == "--workloads") {
      workloads = need("a path");
    } else if (a == "--report") {
      report_dir = need("a directory");
    } else if (a == "--carriers") {
      carriers = need("a number");
    } else if (a.rfind("--carriers=", 0) == 0) {
      carriers = a.substr(11);
    } else if (a == "--timeout") {
      timeout_sec = atof(need("seconds").c_str());
      timeout_given = true;
    } else if (a == "--repeat") {
      repeat = atoi(need("a count").c_str());
      if (repeat < 1 || repeat > 100) {
        fprintf(stderr, "bench: --repeat wants 1..100\n");
        return 2;
      }
    } else if (a == "--quick") {
      quick = true;
    } else if (a == "--only") {
      while (i + 1 < argc && argv[i + 1][0] != '-') only.push_back(argv[++i]);
      if (only.empty()) {
        fprintf(stderr, "bench: --only needs at least one name\n");
        return 2;
      }
    } else if (a == "-h" || a == "--help") {
      Usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "bench: unknown argument '%s'\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (!carriers.empty() && (carriers.find_first_not_of("0123456789") != std::string::npos ||
                            atoi(carriers.c_str()) <= 0)) {
    fprintf(stderr, "bench: --carriers wants a positive integer, got '%s'\n", carriers.c_str());
    return 2;
  }
  if (!(timeout_sec > 0)) {
    fprintf(stderr, "bench: --timeout wants a positive number of seconds\n");
    return 2;
  }

  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, OnFatalSignal);

  // Locate the workloads binary and the library.
  std::string runfiles = RunfilesDir(argv[0]);
  if (workloads.empty()) {
    std::string exe = SelfExe();
    std::string candidate = DirName(exe.empty() ? std::string(argv[0]) : exe) + "/workloads";
    if (IsFile(candidate)) workloads = candidate;
    if (workloads.empty()) workloads = FindInRunfiles(runfiles, "tools/bench/workloads");
  }
  if (!IsFile(workloads) || access(workloads.c_str(), X_OK) != 0) {
    fprintf(stderr, "bench: cannot find the workloads binary (looked next to %s and in runfiles); "
                    "use --workloads PATH\n", SelfExe().c_str());
    return 1;
  }
  workloads = RealPath(workloads);

  std::string workspace = Env("BUILD_WORKSPACE_DIRECTORY");
  if (workspace.empty()) workspace = Cwd();
  while (workspace.size() > 1 && workspace.back() == '/') workspace.pop_back();
  if (workspace == "/") workspace.clear();
  std::string lib_note;
  if (lib.empty()) {
    lib = workspace + "/bazel-bin/libvthread.so";
    if (!IsFile(lib)) {
      std::string rf = FindInRunfiles(runfiles, "libvthread.so");
      if (!rf.empty()) {
        lib_note = " (from runfiles; " + lib + " not found)";
        lib = rf;
      }
    }
  }
  bool lib_ok = IsFile(lib);
  if (lib_ok) lib = RealPath(lib);

  // Workload sizes.
  const char* cj_n = quick ? "2000" : "20000";
  const char* yp_n = quick ? "100000" : "1000000";
  const char* ss_t = quick ? "16" : "64";
  const char* ss_n = quick ? "200" : "2000";
  // Sync workloads. Native costs here (2 cores): mutex pair ~13 ns, mutex hand-off ~7.5 us,
  // cond/sem round trip ~12-16 us, thread-ring hop ~5.5 us, contended increment ~30 ns.
  const char* mu_n = quick ? "2000000" : "10000000";
  const char* mh_n = quick ? "20000" : "100000";
  const char* cp_n = quick ? "10000" : "50000";
  const char* tr_n = quick ? "100000" : "1000000";
  const char* cc_t = "64";
  const char* cc_n = quick ? "20000" : "100000";
  const char* sp_n = quick ? "10000" : "50000";
  // A sync primitive the library does not interpose (yet) blocks a carrier and may hang the
  // child: cap these jobs' timeout well below the default so that a hang costs little.
  const double sync_cap = quick ? 15 : 60;

  std::vector<std::unique_ptr<Job>> jobs;
  auto add_job = [&](const std::string& key, std::vector<std::string> args) -> Job* {
    jobs.emplace_back(new Job);
    jobs.back()->key = key;
    jobs.back()->args = std::move(args);
    return jobs.back().get();
  };
  Job* cj = add_job("create_join", {"create_join", cj_n});
  Job* yp = add_job("yield_pingpong", {"yield_pingpong", yp_n});
  yp->want_vthread1 = true;
  yp->want_shared_tls = true;
  Job* mu = add_job("mutex_uncontended", {"mutex_uncontended", mu_n});
  Job* mh = add_job("mutex_handoff", {"mutex_handoff", mh_n});
  Job* cp = add_job("cond_pingpong", {"cond_pingpong", cp_n});
  cp->want_vthread1 = true;
  Job* tr = add_job("threadring", {"threadring", tr_n});
  tr->want_vthread1 = true;
  Job* cc = add_job("contended_counter", {"contended_counter", cc_t, cc_n});
  Job* sp = add_job("sem_pingpong", {"sem_pingpong", sp_n});
  for (Job* j : {mu, mh, cp, tr, cc, sp}) j->timeout_cap = sync_cap;
  Job* ss = add_job("sleep_storm", {"sleep_storm", ss_t, ss_n});
  // Preemption: CPU-bound threads that never call the library (2 = one per CPU here; 64 = many more
  // than carriers, shared only by preemption), and the wake-up of a sleeper while hogs run.
  const char* cpu_n = quick ? "20000" : "100000";
  Job* cpu2 = add_job("cpu_throughput_2", {"cpu_throughput", "2", cpu_n});
  Job* cpu64 = add_job("cpu_throughput_64", {"cpu_throughput", "64", quick ? "700" : "3000"});
  Job* wl = add_job("wake_latency", {"wake_latency", "4", quick ? "300" : "1000"});
  Job* p10k = add_job("parked_rss_10000", {"parked_rss", "10000"});
  Job* p100k = add_job("parked_rss_100000", {"parked_rss", "100000"});
  if (quick) {
    p100k->skip_native = true;
    p100k->skip_native_reason = "--quick";
  }

  std::string carriers_desc = carriers.empty() ? "default" : "carriers=" + carriers;
  std::vector<Row> rows;
  rows.push_back({"create+join (ns/op)", cj, "create_join", kVthread, kRatioAtLeast, 50, ">=50x faster"});
  rows.push_back({"yield switch, 1 carrier (ns)", yp, "yield_pingpong", kVthread1, kVthreadBelow, 40, "<40 ns"});
  rows.push_back({"  same, fibers share TLS (ns)", yp, "yield_pingpong", kVthread1SharedTls});
  rows.push_back({"yield switch, " + carriers_desc + " (ns)", yp, "yield_pingpong", kVthread});
  rows.push_back({"mutex lock+unlock, uncontended (ns)", mu, "mutex_uncontended", kVthread});
  rows.push_back({"mutex baton hand-off, 2 threads (ns)", mh, "mutex_handoff", kVthread});
  rows.push_back({"cond ping-pong, 1 carrier (ns/round trip)", cp, "cond_pingpong", kVthread1, kVthreadBelow, 300, "<300 ns, 30x"});
  rows.push_back({"cond ping-pong, " + carriers_desc + " (ns/round trip)", cp, "cond_pingpong", kVthread, kVthreadBelow, 300, "<300 ns, 30x"});
  rows.push_back({Fmt("threadring 503 thr, N=%s, 1 carrier (us/hop)", tr_n), tr, "threadring", kVthread1, kVthreadBelow, 0.3, "<0.3 us/hop"});
  rows.push_back({"threadring, " + carriers_desc + " (us/hop)", tr, "threadring", kVthread, kVthreadBelow, 0.3, "<0.3 us/hop"});
  rows.push_back({Fmt("contended counter %sx%s (ns/incr)", cc_t, cc_n), cc, "contended_counter", kVthread});
  rows.push_back({"sem ping-pong, 2 threads (ns/round trip)", sp, "sem_pingpong", kVthread});
  rows.push_back({Fmt("sleep_storm %sx%s nanosleep(0) (ns/call)", ss_t, ss_n), ss, "sleep_storm_0ns", kVthread});
  rows.push_back({"  same, wall (ms)", ss, "sleep_storm_0ns_wall", kVthread});
  rows.push_back({Fmt("sleep_storm %sx%s 1us sleep (ns/call)", ss_t, ss_n), ss, "sleep_storm_1us", kVthread});
  rows.push_back({"  same, wall (ms)", ss, "sleep_storm_1us_wall", kVthread});
  rows.push_back({"2 CPU-bound threads (ns/round)", cpu2, "cpu_throughput_2", kVthread, kRatioAtLeast, 0.97, ">=97% of native"});
  rows.push_back({"64 CPU-bound threads (ns/round)", cpu64, "cpu_throughput_64", kVthread, kRatioAtLeast, 0.97, ">=97% of native"});
  rows.push_back({"wake-up latency, 4 hogs, p50 (us late)", wl, "wake_latency_p50", kVthread});
  rows.push_back({"  same, p99 (us late)", wl, "wake_latency_p99", kVthread});
  rows.push_back({"10k parked: RSS (KiB/thread)", p10k, "parked_rss_10000", kVthread});
  rows.push_back({"10k parked: kernel tasks", p10k, "parked_tasks_10000", kVthread});
  rows.push_back({"100k parked: RSS (KiB/thread)", p100k, "parked_rss_100000", kVthread, kVthreadBelow, 16384, "<16 KiB/thread"});
  rows.push_back({"100k parked: kernel tasks", p100k, "parked_tasks_100000", kVthread});

  // --only filtering: a name equal to a job key selects that job only, otherwise it selects every
  // job whose key starts with it (so "parked_rss_10000" is not also "parked_rss_100000").
  auto matches = [&](const std::string& key, const std::string& o) {
    for (auto& j : jobs)
      if (j->key == o) return key == o;
    return key.rfind(o, 0) == 0;
  };
  std::vector<Job*> selected;
  for (auto& j : jobs) {
    bool take = only.empty();
    for (const std::string& o : only) take |= matches(j->key, o);
    if (take) selected.push_back(j.get());
  }
  for (const std::string& o : only) {
    bool hit = false;
    for (auto& j : jobs) hit |= matches(j->key, o);
    if (!hit) {
      fprintf(stderr, "bench: --only %s matches no benchmark\n", o.c_str());
      Usage(stderr);
      return 2;
    }
  }

  // Run: each job in each mode `repeat` times, modes interleaved so that slow drifts of a busy
  // machine hit native and vthread alike; metrics are then the median over the repeats.
  if (repeat > 1) fprintf(stderr, "each run is repeated %d times; cells are medians\n", repeat);
  int total_runs = 0;
  auto wanted = [](const Job* j, Mode m) {
    return (m != kVthread1 || j->want_vthread1) && (m != kVthread1SharedTls || j->want_shared_tls);
  };
  for (Job* j : selected) total_runs += repeat * (2 + j->want_vthread1 + j->want_shared_tls);
  int run_no = 0;
  for (Job* j : selected) {
    std::vector<std::string> argv_child = {workloads};
    argv_child.insert(argv_child.end(), j->args.begin(), j->args.end());
    std::string cmdline;
    for (size_t k = 1; k < argv_child.size(); k++) cmdline += (k > 1 ? " " : "") + argv_child[k];
    std::vector<RunResult> runs[kModes];
    for (int rep = 0; rep < repeat; rep++) {
      for (Mode m : kAllModes) {
        if (!wanted(j, m)) continue;
        run_no++;
        std::string what = ModeName(m, carriers_desc);
        fprintf(stderr, "[%d/%d] %-26s %-22s ", run_no, total_runs, cmdline.c_str(), what.c_str());
        fflush(stderr);
        RunResult r;
        if (m == kNative && j->skip_native) {
          r.ran = false;
          r.skip_reason = j->skip_native_reason;
          fprintf(stderr, "skipped (%s)\n", r.skip_reason.c_str());
        } else if (m != kNative && !lib_ok) {
          r.ran = true;
          r.fail = "lib_not_found";
          fprintf(stderr, "FAIL lib not found: %s\n", lib.c_str());
        } else {
          std::vector<EnvChange> env;
          if (m == kNative) {
            env = {{"LD_PRELOAD", false, ""}, {"VTHREAD_CARRIERS", false, ""}};
          } else if (m == kVthread1 || m == kVthread1SharedTls) {
            env = {{"LD_PRELOAD", true, lib}, {"VTHREAD_CARRIERS", true, "1"}};
          } else {
            env = {{"LD_PRELOAD", true, lib}, {"VTHREAD_CARRIERS", !carriers.empty(), carriers}};
          }
          env.push_back({"VTHREAD_TLS", m == kVthread1SharedTls, "carrier"});
          double t = timeout_sec;
          if (!timeout_given && j->timeout_cap > 0) t = std::min(t, j->timeout_cap);
          r = RunChild(argv_child, env, t);
          if (r.fail.empty()) {
            fprintf(stderr, "ok   %6.1fs\n", r.seconds);
          } else {
            fprintf(stderr, "FAIL %6.1fs  %s\n", r.seconds, r.fail.c_str());
          }
        }
        runs[m].push_back(std::move(r));
      }
    }
    for (Mode m : kAllModes)
      if (!runs[m].empty()) j->res[m] = MergeRuns(runs[m]);
  }

  // Report.
  struct utsname un;
  uname(&un);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  printf("\nvthread benchmark (%s mode)\n", quick ? "quick" : "full");
  printf("  lib:       %s%s%s\n", lib.c_str(), lib_note.c_str(), lib_ok ? "" : "  [NOT FOUND]");
  printf("  workloads: %s\n", workloads.c_str());
  printf("  vthread:   LD_PRELOAD=<lib>, VTHREAD_CARRIERS=%s\n"
         "             (yield, cond_pingpong and threadring also run with VTHREAD_CARRIERS=1)\n",
         carriers.empty() ? "<unset: library default>" : carriers.c_str());
  printf("  host:      %ld cpus, %s %s, glibc %s, per-child timeout %.0fs%s\n", cpus, un.sysname,
         un.release, gnu_get_libc_version(), timeout_sec,
         timeout_given ? "" : Fmt(" (sync jobs %.0fs)", std::min(timeout_sec, sync_cap)).c_str());
  printf("  FS switch: %s\n", (getauxval(AT_HWCAP2) & 2)
             ? "wrfsbase (the kernel enabled FSGSBASE)"
             : "arch_prctl system call (no FSGSBASE in AT_HWCAP2): per-fiber TLS costs a system call per switch");
  printf("  ratio = native / vthread; every metric is lower-is-better, so ratio > 1 means vthread\n"
         "  is faster (or smaller); FAIL cells carry the reason.\n\n");

  std::vector<std::vector<std::string>> table;
  table.push_back({"benchmark", "native", "vthread", "ratio", "target", "met?"});
  std::vector<bench::ReportEntry> report;
  int targets = 0, met = 0;
  for (const Row& row : rows) {
    bool take = false;
    for (Job* j : selected) take |= j == row.job;
    if (!take) continue;
    Cell n = MakeCell(row.job->res[kNative], row.metric);
    Cell v = MakeCell(row.job->res[row.vmode], row.metric);
    std::string ratio = "-";
    bool have_ratio = n.ok && v.ok && v.value > 0;
    double rv = have_ratio ? n.value / v.value : 0;
    if (have_ratio) ratio = rv >= 100 ? Fmt("%.0fx", rv) : Fmt("%.2fx", rv);
    std::string target = row.target_text.empty() ? "" : row.target_text;
    std::string status;
    if (row.target == kRatioAtLeast) {
      targets++;
      status = !have_ratio ? "n/a" : rv >= row.target_value ? "MET" : "MISS";
    } else if (row.target == kVthreadBelow) {
      targets++;
      status = !v.ok ? "n/a" : v.value < row.target_value ? "MET" : "MISS";
    }
    if (status == "MET") met++;
    table.push_back({row.label, n.text, v.text, ratio, target, status});
    // The same values the table shows, in the units it shows (bytes become KiB).
    std::string unit;
    FormatValue(0, n.ok ? n.unit : v.unit, &unit);
    const double scale = unit == (n.ok ? n.unit : v.unit) ? 1 : 1.0 / 1024;
    report.push_back({row.label, n.value * scale, v.value * scale, unit,
                      have_ratio ? "" : (n.ok ? "vthread: " + v.text : "native: " + n.text)});
  }
  std::vector<size_t> width(table[0].size(), 0);
  for (auto& r : table)
    for (size_t c = 0; c < r.size(); c++) width[c] = std::max(width[c], r[c].size());
  for (size_t i = 0; i < table.size(); i++) {
    std::string line;
    for (size_t c = 0; c < table[i].size(); c++) {
      bool numeric = c >= 1 && c <= 3 && i > 0;
      line += (c ? " | " : "") + (numeric ? PadLeft(table[i][c], width[c]) : Pad(table[i][c], width[c]));
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    printf("%s\n", line.c_str());
    if (i == 0) {
      std::string sep;
      for (size_t c = 0; c < width.size(); c++) sep += (c ? "-+-" : "") + std::string(width[c], '-');
      printf("%s\n", sep.c_str());
    }
  }
  // What per-fiber TLS adds to a switch: the same yield ping-pong with and without it.
  bool yield_selected = false;
  for (Job* j : selected) yield_selected |= j == yp;
  if (yield_selected) {
    Cell with = MakeCell(yp->res[kVthread1], "yield_pingpong");
    Cell without = MakeCell(yp->res[kVthread1SharedTls], "yield_pingpong");
    if (with.ok && without.ok) {
      double cost = with.value - without.value;
      targets++;
      met += cost < 20;
      printf("\nper-fiber TLS costs %.1f ns per switch (%.1f vs %.1f ns, 1 carrier); target <20 ns: %s\n", cost,
             with.value, without.value, cost < 20 ? "MET" : "MISS");
    }
  }
  if (targets) printf("\ntargets met: %d of %d\n", met, targets);

  // Failure details: the reason plus the most telling line the child wrote on stderr.
  bool header = false;
  for (Job* j : selected) {
    for (Mode m : kAllModes) {
      const RunResult& r = j->res[m];
      if (!r.ran || !wanted(j, m)) continue;
      std::string reason = r.fail.empty() ? r.partial : r.fail;
      if (reason.empty()) {
        for (auto& kv : r.metrics)
          if (kv.second.fail) reason = kv.first + ": " + kv.second.reason;
      }
      if (reason.empty()) {
        for (const Row& row : rows)
          if (row.job == j && !r.metrics.count(row.metric)) reason = row.metric + ": no_RESULT";
      }
      if (reason.empty()) continue;
      if (!header) {
        printf("\nfailures:\n");
        header = true;
      }
      std::string what = ModeName(m, carriers_desc);
      const std::string& tail = r.detail;
      printf("  %s [%s]: %s%s%s\n", j->key.c_str(), what.c_str(), reason.c_str(),
             tail.empty() ? "" : "\n      stderr: ", tail.c_str());
    }
  }
  if (!report_dir.empty()) {
    if (mkdir(report_dir.c_str(), 0777) != 0 && errno != EEXIST) {
      fprintf(stderr, "bench: --report %s: %s\n", report_dir.c_str(), strerror(errno));
      return 1;
    }
    bench::ProgramPaths paths;
    paths.corpus_gen = FindInRunfiles(runfiles, "tests/compat/corpus_gen");
    paths.thread_ring = FindInRunfiles(runfiles, "tests/compat/thread_ring");
    paths.chameneos = FindInRunfiles(runfiles, "tests/compat/chameneos");
    paths.scratch_dir = report_dir;
    auto time = [&](const std::string& command, bool vthread, std::string* failed) {
      std::vector<EnvChange> env = {{"LD_PRELOAD", vthread, lib},
                                    {"VTHREAD_CARRIERS", vthread && !carriers.empty(), carriers}};
      RunResult r = RunChild({"/bin/sh", "-c", command}, env, timeout_sec);
      if (!r.fail.empty()) *failed = r.fail + (r.detail.empty() ? "" : ": " + r.detail);
      return r.seconds;
    };
    std::vector<bench::ReportEntry> programs = bench::TimePrograms(paths, repeat, time);
    report.insert(report.end(), programs.begin(), programs.end());
    std::vector<std::string> header = {
        Fmt("host: %ld cpus, %s %s, glibc %s", cpus, un.sysname, un.release, gnu_get_libc_version()),
        "vthread: VTHREAD_CARRIERS=" + (carriers.empty() ? std::string("library default") : carriers) +
            "; micro benchmarks in " + (quick ? "quick" : "full") + " mode; programs: wall time" +
            (repeat > 1 ? ", median of " + std::to_string(repeat) + " runs" : "")};
    if (!bench::WriteReport(report_dir, header, report)) return 1;
    printf("\nreport: %s/bench.md, %s/bench.png\n", report_dir.c_str(), report_dir.c_str());
  }
  return 0;
}
