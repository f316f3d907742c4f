// stress: randomized, seeded scenarios against the pthread API, with invariant checks.
//
//   stress [--scenarios a,b,c|default|all] [--threads N] [--duration 10s|2m|10m] [--seed S]
//          [--hang-timeout 30s] [--under-vthread] [--list]
//
// Every selected scenario runs concurrently, in rounds, until the duration is over. A round picks a
// random configuration from its seed, starts its own threads, and checks its invariants. The seed
// is printed at the start; `--seed S --scenarios X` replays the same sequence of configurations.
//
// A watchdog process, forked before any thread exists, reads each scenario's progress counter from
// shared memory, prints a progress line about once a second, and kills the run when a scenario stops
// making progress. It is a process, not a thread: under vthread a watchdog thread would itself be a
// fiber, and whatever starves the scenarios could starve it too.
//
// Exit status: 0 when every invariant held, 1 on any violation, 2 on bad usage; a run the watchdog
// killed dies of SIGKILL after the watchdog said why.

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tools/stress/harness.h"

extern char** environ;

namespace stress {
namespace {

constexpr int kMaxScenarios = 32;

// Set in the environment of the re-executed run, so that it can check the library really loaded
// (ld.so ignores a preload it cannot open with only a warning).
constexpr char kExpectVthreadEnv[] = "STRESS_EXPECT_VTHREAD";

struct Shared {
  Slot slots[kMaxScenarios];
  std::atomic<int> finished{0};
};

struct Options {
  std::vector<const Scenario*> scenarios;
  int threads = 8;
  int64_t duration_ns = 10 * kNsPerSec;
  int64_t hang_timeout_ns = 30 * kNsPerSec;
  uint64_t seed = 0;
  bool seed_given = false;
  bool under_vthread = false;
};

[[noreturn]] void Usage(const char* why) {
  fprintf(stderr,
          "stress: %s\n"
          "usage: stress [--scenarios a,b,c|default|all] [--threads N] [--duration 10s|2m|10m]\n"
          "              [--seed S] [--hang-timeout 30s] [--under-vthread] [--list]\n",
          why);
  exit(2);
}

// "500ms", "10s", "2m", "1h"; a bare number is seconds.
bool ParseDuration(const char* s, int64_t* ns) {
  char* end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || v < 0) return false;
  double unit = kNsPerSec;
  std::string suffix(end);
  if (suffix == "ms") unit = kNsPerMs;
  else if (suffix == "m") unit = 60.0 * kNsPerSec;
  else if (suffix == "h") unit = 3600.0 * kNsPerSec;
  else if (suffix != "" && suffix != "s") return false;
  *ns = static_cast<int64_t>(v * unit);
  return true;
}

const Scenario* FindScenario(const std::string& name) {
  for (const Scenario& s : Registry()) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

void SelectScenarios(const std::string& list, Options* options) {
  options->scenarios.clear();
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (name.empty()) continue;
    if (name == "default" || name == "all") {
      for (const Scenario& s : Registry()) {
        if (name == "all" || s.opt_in_reason[0] == '\0') options->scenarios.push_back(&s);
      }
      continue;
    }
    const Scenario* s = FindScenario(name);
    if (s == nullptr) Usage(("unknown scenario '" + name + "' (see --list)").c_str());
    options->scenarios.push_back(s);
  }
  std::sort(options->scenarios.begin(), options->scenarios.end());
  options->scenarios.erase(std::unique(options->scenarios.begin(), options->scenarios.end()),
                           options->scenarios.end());
  if (options->scenarios.empty()) Usage("no scenario selected");
}

void List() {
  printf("%-10s %-8s %s\n", "scenario", "set", "what it checks / max latency is");
  for (const Scenario& s : Registry()) {
    bool opt_in = s.opt_in_reason[0] != '\0';
    printf("%-10s %-8s %s\n%19s latency: %s\n", s.name, opt_in ? "opt-in" : "default",
           s.description, "", s.latency_is);
    if (opt_in) printf("%19s opt-in: %s\n", "", s.opt_in_reason);
  }
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  SelectScenarios("default", &options);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage((arg + " needs a value").c_str());
      return argv[++i];
    };
    if (arg == "--list") {
      List();
      exit(0);
    } else if (arg == "--scenarios") {
      SelectScenarios(value(), &options);
    } else if (arg == "--threads") {
      const char* v = value();
      char* end;
      long n = strtol(v, &end, 10);
      if (*end != '\0' || n < 2 || n > 4096) Usage("--threads must be a number from 2 to 4096");
      options.threads = static_cast<int>(n);
    } else if (arg == "--duration") {
      if (!ParseDuration(value(), &options.duration_ns)) Usage("bad --duration (e.g. 10s, 2m)");
    } else if (arg == "--hang-timeout") {
      if (!ParseDuration(value(), &options.hang_timeout_ns) || options.hang_timeout_ns < kNsPerSec) {
        Usage("bad --hang-timeout (at least 1s)");
      }
    } else if (arg == "--seed") {
      const char* v = value();
      char* end;
      errno = 0;
      options.seed = strtoull(v, &end, 0);
      if (errno != 0 || *end != '\0' || end == v) Usage("bad --seed");
      options.seed_given = true;
    } else if (arg == "--under-vthread") {
      options.under_vthread = true;
    } else {
      Usage(("unknown option '" + arg + "'").c_str());
    }
  }
  if (options.scenarios.size() > kMaxScenarios) Usage("too many scenarios");
  if (!options.seed_given) {
    options.seed = static_cast<uint64_t>(Now(CLOCK_REALTIME)) ^ (uint64_t{static_cast<uint32_t>(getpid())} << 32);
  }
  return options;
}

// --- finding and preloading libvthread.so ----------------------------------------------------

bool IsFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string SelfExe() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

// VTHREAD_LIB; else the library in this binary's runfiles (bazel run / bazel test); else
// libvthread.so or bazel-bin/libvthread.so in a directory above the binary (bazel-bin/tools/stress/
// stress resolves into bazel-out/.../bin, which holds libvthread.so two levels up).
std::string FindLibrary(const char* argv0) {
  if (const char* env = getenv("VTHREAD_LIB"); env != nullptr && *env != '\0') {
    if (!IsFile(env)) {
      fprintf(stderr, "stress: VTHREAD_LIB=%s is not a file\n", env);
      exit(2);
    }
    return env;
  }
  std::vector<std::string> runfiles;
  if (const char* dir = getenv("RUNFILES_DIR"); dir != nullptr) runfiles.push_back(dir);
  if (const char* dir = getenv("TEST_SRCDIR"); dir != nullptr) runfiles.push_back(dir);
  runfiles.push_back(std::string(argv0) + ".runfiles");
  for (const std::string& dir : runfiles) {
    if (IsFile(dir + "/vthread/libvthread.so")) return dir + "/vthread/libvthread.so";
  }
  std::string dir = SelfExe();
  while (!dir.empty()) {
    size_t slash = dir.rfind('/');
    if (slash == std::string::npos) break;
    dir.resize(slash);
    for (const char* candidate : {"/libvthread.so", "/bazel-bin/libvthread.so"}) {
      if (IsFile(dir + candidate)) return dir + candidate;
    }
  }
  fprintf(stderr,
          "stress: --under-vthread: libvthread.so not found (no VTHREAD_LIB, nothing in the "
          "runfiles or above %s); build it with 'bazel build //:libvthread.so' or set "
          "VTHREAD_LIB\n",
          SelfExe().c_str());
  exit(2);
}

[[noreturn]] void ReexecUnderVthread(int argc, char** argv) {
  std::string lib = FindLibrary(argv[0]);
  char real[PATH_MAX];
  if (realpath(lib.c_str(), real) != nullptr) lib = real;
  const char* old = getenv("LD_PRELOAD");
  std::string preload = lib + (old != nullptr && *old != '\0' ? ":" + std::string(old) : "");
  setenv("LD_PRELOAD", preload.c_str(), 1);
  setenv(kExpectVthreadEnv, lib.c_str(), 1);
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (strcmp(argv[i], "--under-vthread") != 0) args.push_back(argv[i]);
  }
  args.push_back(nullptr);
  execve("/proc/self/exe", args.data(), environ);
  fprintf(stderr, "stress: re-executing under vthread: %s\n", strerror(errno));
  exit(2);
}

// The path of a mapped libvthread, or "" when running natively.
std::string MappedVthread() {
  FILE* maps = fopen("/proc/self/maps", "r");
  if (maps == nullptr) return "";
  char line[4096];
  std::string found;
  while (found.empty() && fgets(line, sizeof line, maps) != nullptr) {
    if (const char* p = strstr(line, "/libvthread.so"); p != nullptr) {
      const char* path = strchr(line, '/');
      found.assign(path, strcspn(path, "\n"));
    }
  }
  fclose(maps);
  return found;
}

// --- the watchdog process --------------------------------------------------------------------

void WriteLine(const std::string& line) {
  if (write(STDERR_FILENO, line.data(), line.size()) < 0) {
    // stderr is gone; the exit status still tells.
  }
}

std::string Rate(double per_sec) {
  char buf[32];
  if (per_sec >= 1e6) snprintf(buf, sizeof buf, "%.1fM/s", per_sec / 1e6);
  else if (per_sec >= 1e3) snprintf(buf, sizeof buf, "%.1fk/s", per_sec / 1e3);
  else snprintf(buf, sizeof buf, "%.0f/s", per_sec);
  return buf;
}

// Runs in the forked child until the run ends (EOF on `parent_gone`) or hangs. Only async-safe
// work after fork would matter if the parent had threads; it has none yet, so stdio is fine, but
// the lines go out with single write()s to stay whole next to the parent's.
[[noreturn]] void Watchdog(Shared* shared, int n, int parent_gone, pid_t parent,
                           const Options& options) {
  const int64_t start = Now();
  std::vector<uint64_t> last_ops(n, 0);
  std::vector<int64_t> last_change(n, start);
  int64_t last_print = start;
  for (;;) {
    pollfd pfd = {parent_gone, POLLIN, 0};
    int ready = poll(&pfd, 1, 1000);
    if (ready > 0 || getppid() != parent || shared->finished.load()) _exit(0);
    const int64_t now = Now();
    std::string progress = "stress " + std::to_string((now - start) / kNsPerSec) + "s:";
    std::string hung;
    for (int i = 0; i < n; ++i) {
      Slot& slot = shared->slots[i];
      uint64_t ops = slot.ops.load(std::memory_order_relaxed);
      int state = slot.state.load();
      double secs = static_cast<double>(now - last_print) / kNsPerSec;
      progress += std::string(" ") + slot.name + " " +
                  (state == kDone ? "done" : Rate(static_cast<double>(ops - last_ops[i]) / secs));
      if (ops != last_ops[i] || state != kRunning) {
        last_ops[i] = ops;
        last_change[i] = now;
      } else if (now - last_change[i] >= options.hang_timeout_ns) {
        hung += std::string(" ") + slot.name + " (no progress for " +
                std::to_string((now - last_change[i]) / kNsPerSec) + " s, ops stuck at " +
                std::to_string(ops) + ")";
      } else if (now - start > options.duration_ns + options.hang_timeout_ns) {
        hung += std::string(" ") + slot.name + " (still running " +
                std::to_string((now - start - options.duration_ns) / kNsPerSec) +
                " s after the end of the run)";
      }
    }
    last_print = now;
    WriteLine(progress + "\n");
    if (!hung.empty()) {
      char seed[32];
      snprintf(seed, sizeof seed, "%#llx", static_cast<unsigned long long>(options.seed));
      WriteLine("stress: WATCHDOG: hang in:" + hung + "; killing the run (seed " + seed + ")\n");
      kill(parent, SIGKILL);
      _exit(1);
    }
  }
}

// --- running the scenarios --------------------------------------------------------------------

struct Driver {
  const Scenario* scenario;
  Slot* slot;
  uint64_t seed;
  const Options* options;
  int64_t stop_ns;
};

uint64_t HashName(const char* name) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (; *name != '\0'; ++name) h = (h ^ static_cast<unsigned char>(*name)) * 1099511628211ull;
  return h;
}

void* DriveScenario(void* arg) {
  Driver& d = *static_cast<Driver*>(arg);
  // Seeded from the run's seed and the scenario's name only, so a scenario replays the same rounds
  // whichever other scenarios run beside it.
  Rng rng(d.seed ^ HashName(d.scenario->name));
  d.slot->state.store(kRunning);
  for (uint64_t index = 0;; ++index) {
    Round round(*d.scenario, *d.slot, rng.Next(), index, d.options->threads, d.stop_ns);
    d.scenario->run_round(round);
    d.slot->rounds.fetch_add(1, std::memory_order_relaxed);
    round.Op();
    if (round.Stopping()) break;
  }
  d.slot->state.store(kDone);
  return nullptr;
}

std::string FormatNs(int64_t ns) {
  char buf[32];
  if (ns >= kNsPerSec) snprintf(buf, sizeof buf, "%.2f s", static_cast<double>(ns) / kNsPerSec);
  else if (ns >= kNsPerMs) snprintf(buf, sizeof buf, "%.2f ms", static_cast<double>(ns) / kNsPerMs);
  else snprintf(buf, sizeof buf, "%.1f us", static_cast<double>(ns) / kNsPerUs);
  return buf;
}

int Run(int argc, char** argv) {
  Options options = ParseOptions(argc, argv);
  if (options.under_vthread) ReexecUnderVthread(argc, argv);

  std::string vthread = MappedVthread();
  if (const char* expected = getenv(kExpectVthreadEnv); expected != nullptr && vthread.empty()) {
    fprintf(stderr, "stress: --under-vthread: LD_PRELOAD=%s did not load (see ld.so's warning)\n",
            expected);
    return 2;
  }
  std::string names;
  for (const Scenario* s : options.scenarios) names += (names.empty() ? "" : ",") + std::string(s->name);
  printf("stress: seed %#llx (replay: --seed %#llx --scenarios %s)\n",
         static_cast<unsigned long long>(options.seed),
         static_cast<unsigned long long>(options.seed), names.c_str());
  printf("stress: %zu scenarios, up to %d threads each, %s, %s\n", options.scenarios.size(),
         options.threads, FormatNs(options.duration_ns).c_str(),
         vthread.empty() ? "native pthreads" : ("under " + vthread).c_str());
  fflush(stdout);

  const int n = static_cast<int>(options.scenarios.size());
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror("stress: mmap");
    return 2;
  }
  Shared* shared = new (mem) Shared;
  for (int i = 0; i < n; ++i) {
    snprintf(shared->slots[i].name, sizeof shared->slots[i].name, "%s", options.scenarios[i]->name);
  }

  // The watchdog learns that the run ended when the pipe's write end closes with this process.
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    perror("stress: pipe");
    return 2;
  }
  const pid_t self = getpid();
  pid_t watchdog = fork();
  if (watchdog < 0) {
    perror("stress: fork");
    return 2;
  }
  if (watchdog == 0) {
    close(pipe_fds[1]);
    Watchdog(shared, n, pipe_fds[0], self, options);
  }
  close(pipe_fds[0]);

  const int64_t stop_ns = Now() + options.duration_ns;
  std::vector<Driver> drivers(n);
  std::vector<pthread_t> threads(n);
  for (int i = 0; i < n; ++i) {
    drivers[i] = Driver{options.scenarios[i], &shared->slots[i], options.seed, &options, stop_ns};
    int rc = pthread_create(&threads[i], nullptr, DriveScenario, &drivers[i]);
    if (rc != 0) {
      fprintf(stderr, "stress: pthread_create: %s\n", strerror(rc));
      return 2;
    }
  }
  for (int i = 0; i < n; ++i) pthread_join(threads[i], nullptr);

  shared->finished.store(1);
  close(pipe_fds[1]);
  int status;
  while (waitpid(watchdog, &status, 0) < 0 && errno == EINTR) {
  }

  uint64_t failures = 0;
  printf("\n%-10s %8s %12s %9s %12s  %s\n", "scenario", "rounds", "operations", "failures",
         "max latency", "latency is");
  for (int i = 0; i < n; ++i) {
    const Slot& slot = shared->slots[i];
    failures += slot.failures.load();
    printf("%-10s %8llu %12llu %9llu %12s  %s\n", slot.name,
           static_cast<unsigned long long>(slot.rounds.load()),
           static_cast<unsigned long long>(slot.ops.load()),
           static_cast<unsigned long long>(slot.failures.load()),
           FormatNs(slot.max_latency_ns.load()).c_str(), options.scenarios[i]->latency_is);
  }
  if (failures != 0) {
    printf("stress: %llu invariant violations; replay with --seed %#llx\n",
           static_cast<unsigned long long>(failures), static_cast<unsigned long long>(options.seed));
    return 1;
  }
  printf("stress: all invariants held\n");
  return 0;
}

}  // namespace
}  // namespace stress

int main(int argc, char** argv) { return stress::Run(argc, argv); }
