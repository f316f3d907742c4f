// The stress harness's shared pieces: scenario registration, the per-round context that scenarios
// report through, a seeded random generator, clocks, and a thread-group helper.
//
// tools/stress is an ordinary pthread program. It never includes or links vthread, so everything
// here is plain POSIX and must behave identically natively and under LD_PRELOAD=libvthread.so.
#ifndef VTHREAD_TOOLS_STRESS_HARNESS_H_
#define VTHREAD_TOOLS_STRESS_HARNESS_H_

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace stress {

constexpr int64_t kNsPerUs = 1000;
constexpr int64_t kNsPerMs = 1000 * kNsPerUs;
constexpr int64_t kNsPerSec = 1000 * kNsPerMs;

inline int64_t Now(clockid_t clock = CLOCK_MONOTONIC) {
  timespec ts;
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * kNsPerSec + ts.tv_nsec;
}

inline timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNsPerSec);
  ts.tv_nsec = static_cast<long>(ns % kNsPerSec);
  return ts;
}

// splitmix64: small, fast, and every seed (including 0) gives a good stream. One Rng per thread;
// they are never shared.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return Next() % n; }
  // Uniform in [lo, hi].
  int Range(int lo, int hi) { return lo + static_cast<int>(Below(static_cast<uint64_t>(hi - lo) + 1)); }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  // A seed for a derived stream (a thread of this round), independent of this stream's position.
  uint64_t Fork(uint64_t salt) { return Rng(state_ ^ (salt * 0xd1342543de82ef95ull)).Next(); }

 private:
  uint64_t state_;
};

// Counters of one scenario. They live in memory shared with the watchdog process, which reads them
// without locks: only atomics of lock-free types.
struct Slot {
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> rounds{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<int64_t> max_latency_ns{0};
  std::atomic<int> state{0};  // kIdle, kRunning, kDone
  char name[24] = {};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared counters must be lock-free");

enum SlotState { kIdle = 0, kRunning = 1, kDone = 2 };

struct Scenario;

// One round of one scenario: a fresh random configuration, its own threads, checked invariants.
// Everything a scenario reports goes through here.
class Round {
 public:
  Round(const Scenario& scenario, Slot& slot, uint64_t seed, uint64_t index, int max_threads,
        int64_t stop_ns)
      : scenario_(scenario), slot_(slot), seed_(seed), index_(index), max_threads_(max_threads),
        stop_ns_(stop_ns) {}

  uint64_t seed() const { return seed_; }
  // --threads: the most threads a round may start (besides its driver).
  int max_threads() const { return max_threads_; }
  // True once the run's duration is over; loops end early and still check what they did.
  bool Stopping() const { return Now() >= stop_ns_; }

  // One unit of progress; the watchdog declares a hang when these stop.
  void Op(uint64_t n = 1) { slot_.ops.fetch_add(n, std::memory_order_relaxed); }
  // A blocking operation's latency (what it means is per scenario; see --list).
  void Latency(int64_t ns);
  // An invariant violation. Printed (the first few per scenario) with the round and seed.
  void Fail(const char* fmt, ...) __attribute__((format(printf, 2, 3)));

 private:
  const Scenario& scenario_;
  Slot& slot_;
  const uint64_t seed_;
  const uint64_t index_;
  const int max_threads_;
  const int64_t stop_ns_;
};

struct Scenario {
  const char* name;
  // One line for --list: what is checked.
  const char* description;
  // What the "max latency" column measures for this scenario.
  const char* latency_is;
  // Non-empty: the scenario is opt-in (only run when named), and this says why.
  const char* opt_in_reason;
  void (*run_round)(Round&);
};

std::vector<Scenario>& Registry();

struct Register {
  explicit Register(Scenario s) { Registry().push_back(s); }
};

// Starts n threads running body(i) and joins them. A failed pthread_create is reported through
// round.Fail and that thread is skipped; returns the number of threads that ran.
int RunThreads(Round& round, int n, const std::function<void(int)>& body, size_t stack_size = 0);

// Nanosleep that restarts after EINTR, for pacing (not for checking sleeps).
void SleepNs(int64_t ns);

}  // namespace stress

#endif  // VTHREAD_TOOLS_STRESS_HARNESS_H_
