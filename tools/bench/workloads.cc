// Benchmark workloads for vthread.
//
// This is an ORDINARY pthread program: it never links against vthread. The driver (bench.cc) runs
// it once natively and once with LD_PRELOAD=libvthread.so, so every pthread_create / sched_yield /
// nanosleep / usleep / pthread_mutex_* / pthread_cond_* / sem_* below is whatever the preloaded
// library turns it into.
//
// Every subcommand prints machine-readable lines on stdout:
//     RESULT <name> <value> <unit>
//     RESULT <name> FAIL <reason>
// plus free-form diagnostics on stderr. Each subcommand uses only the primitives it is about
// (plus create/join, sched_yield and atomics), so one that the shim does not interpose yet only
// affects its own workload (which may then block a carrier and hang: the driver's timeout catches
// that). An unexpected error code from a sync call prints a FAIL line and exits at once, since the
// other thread would otherwise wait forever.
//
// Subcommands:
//     create_join N          create+join an empty thread N times in a row      -> ns per create+join
//     yield_pingpong N       two threads hand a turn counter back and forth,
//                            spinning with sched_yield()                        -> ns per hand-off
//     sleep_storm T N        T threads x N nanosleep(0), then T x N 1us sleeps -> ns per call, wall
//     parked_rss T [POLL_US] T threads parked in a usleep(POLL_US) poll loop   -> RSS/thread, tasks
//     mutex_uncontended N    lock+unlock of an uncontended mutex, one thread   -> ns per pair
//     mutex_handoff N        two threads pass a baton through two mutexes used
//                            as binary semaphores                               -> ns per hand-off
//     cond_pingpong N        mutex + two condvars, turn ping-pong               -> ns per round trip
//     threadring N           Benchmarks Game thread-ring: 503 threads, per-thread
//                            mutex as binary semaphore, token passed N times    -> us per hop
//     contended_counter T N  T threads x N increments under one mutex          -> ns per increment
//     sem_pingpong N         two threads, two sem_t, ping-pong                  -> ns per round trip

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <vector>

namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char* ErrName(int err) {
  switch (err) {
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EDEADLK: return "EDEADLK";
    case ESRCH: return "ESRCH";
    default: {
      static char buf[32];
      snprintf(buf, sizeof buf, "errno%d", err);
      return buf;
    }
  }
}

void Result(const char* name, double value, const char* unit) {
  printf("RESULT %s %.3f %s\n", name, value, unit);
  fflush(stdout);
}

void ResultFail(const char* name, const char* reason) {
  printf("RESULT %s FAIL %s\n", name, reason);
  fflush(stdout);
}

// Creates a thread; on failure prints a FAIL line for `name` and returns false (never aborts).
bool Spawn(pthread_t* t, void* (*fn)(void*), void* arg, const char* name, long index) {
  int rc = pthread_create(t, nullptr, fn, arg);
  if (rc == 0) return true;
  char reason[96];
  snprintf(reason, sizeof reason, "pthread_create_%s_at_%ld", ErrName(rc), index);
  ResultFail(name, reason);
  return false;
}

long ParseCount(const char* s, const char* what) {
  char* end = nullptr;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v <= 0) {
    fprintf(stderr, "workloads: bad %s '%s' (want a positive integer)\n", what, s);
    exit(2);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// create_join N

void* EmptyThread(void*) { return nullptr; }

int CreateJoin(long n) {
  const char* kName = "create_join";
  const int kReps = 5;
  long warmup = std::min<long>(std::max<long>(n / 10, 10), 1000);
  for (long i = 0; i < warmup; i++) {
    pthread_t t;
    if (!Spawn(&t, EmptyThread, nullptr, kName, i)) return 0;
    pthread_join(t, nullptr);
  }
  std::vector<double> per_op;
  for (int r = 0; r < kReps; r++) {
    int64_t t0 = NowNs();
    for (long i = 0; i < n; i++) {
      pthread_t t;
      if (!Spawn(&t, EmptyThread, nullptr, kName, i)) return 0;
      int rc = pthread_join(t, nullptr);
      if (rc != 0) {
        char reason[64];
        snprintf(reason, sizeof reason, "pthread_join_%s", ErrName(rc));
        ResultFail(kName, reason);
        return 0;
      }
    }
    per_op.push_back(double(NowNs() - t0) / double(n));
  }
  fprintf(stderr, "create_join: reps(ns/op) min=%.1f max=%.1f\n",
          *std::min_element(per_op.begin(), per_op.end()),
          *std::max_element(per_op.begin(), per_op.end()));
  Result(kName, Median(per_op), "ns/op");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// yield_pingpong N
//
// A shared counter `turn`; player p may only advance it when turn % 2 == p, and spins with
// sched_yield() otherwise. Each increment is one hand-off to the other player. The thread doing
// the increment that lands on a rep boundary stamps the time, so the measurement contains neither
// thread creation nor join.

constexpr int kPingReps = 5;

struct PingPong {
  alignas(64) std::atomic<uint64_t> turn{0};
  alignas(64) uint64_t warmup = 0;
  uint64_t per_rep = 0;
  std::atomic<uint64_t> total{0};
  int64_t stamp[kPingReps + 1] = {};
};

struct Player {
  PingPong* pp;
  uint64_t parity;
};

void* PingPongPlayer(void* arg) {
  Player* me = static_cast<Player*>(arg);
  PingPong* pp = me->pp;
  for (;;) {
    uint64_t t = pp->turn.load(std::memory_order_acquire);
    while (t < pp->total.load(std::memory_order_relaxed) && t % 2 != me->parity) {
      sched_yield();
      t = pp->turn.load(std::memory_order_acquire);
    }
    if (t >= pp->total.load(std::memory_order_relaxed)) return nullptr;
    uint64_t next = t + 1;
    if (next >= pp->warmup && (next - pp->warmup) % pp->per_rep == 0) {
      // Boundary reached: stamp before publishing (start) or after the work is done (end);
      // either way it is the same instant from the point of view of the hand-off sequence.
      pp->stamp[(next - pp->warmup) / pp->per_rep] = NowNs();
    }
    pp->turn.store(next, std::memory_order_release);
  }
}

int YieldPingPong(long n) {
  const char* kName = "yield_pingpong";
  PingPong pp;
  pp.warmup = std::min<uint64_t>(std::max<uint64_t>(n / 10, 100), 100000);
  pp.per_rep = uint64_t(n);
  pp.total = pp.warmup + uint64_t(n) * kPingReps;
  Player players[2] = {{&pp, 0}, {&pp, 1}};
  pthread_t t[2];
  if (!Spawn(&t[0], PingPongPlayer, &players[0], kName, 0)) return 0;
  if (!Spawn(&t[1], PingPongPlayer, &players[1], kName, 1)) {
    pp.total = 0;  // release player 0
    pthread_join(t[0], nullptr);
    return 0;
  }
  pthread_join(t[0], nullptr);
  pthread_join(t[1], nullptr);
  std::vector<double> per_handoff;
  for (int r = 0; r < kPingReps; r++)
    per_handoff.push_back(double(pp.stamp[r + 1] - pp.stamp[r]) / double(n));
  fprintf(stderr, "yield_pingpong: reps(ns/handoff) min=%.1f max=%.1f\n",
          *std::min_element(per_handoff.begin(), per_handoff.end()),
          *std::max_element(per_handoff.begin(), per_handoff.end()));
  Result(kName, Median(per_handoff), "ns/handoff");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// sleep_storm T N
//
// T threads, each calling nanosleep(sleep_ns) N times. Threads are released together by a flag
// (polled with sched_yield). Reported: mean per-call latency across threads and wall time from
// release until the last thread finished.

struct Storm {
  std::atomic<int> go{0};
  std::atomic<long> finished{0};
  std::atomic<int64_t> last_end{0};
  long calls = 0;
  long sleep_ns = 0;
};

struct StormThread {
  Storm* storm;
  double ns_per_call;
};

void* StormWorker(void* arg) {
  StormThread* me = static_cast<StormThread*>(arg);
  Storm* s = me->storm;
  while (!s->go.load(std::memory_order_acquire)) sched_yield();
  struct timespec ts = {0, s->sleep_ns};
  int64_t t0 = NowNs();
  for (long i = 0; i < s->calls; i++) nanosleep(&ts, nullptr);
  int64_t t1 = NowNs();
  me->ns_per_call = double(t1 - t0) / double(s->calls);
  int64_t prev = s->last_end.load();
  while (prev < t1 && !s->last_end.compare_exchange_weak(prev, t1)) {
  }
  s->finished.fetch_add(1);
  return nullptr;
}

// One storm; returns false (after printing FAIL lines) if threads could not be created.
bool RunStorm(long threads, long calls, long sleep_ns, const char* name, const char* wall_name,
              double* per_call, double* wall_ms) {
  Storm s;
  s.calls = calls;
  s.sleep_ns = sleep_ns;
  std::vector<StormThread> ctx(threads, StormThread{&s, 0});
  std::vector<pthread_t> tids(threads);
  long created = 0;
  for (; created < threads; created++) {
    if (!Spawn(&tids[created], StormWorker, &ctx[created], name, created)) break;
  }
  bool ok = created == threads;
  if (!ok) {
    ResultFail(wall_name, "pthread_create_failed");
    s.calls = 0;
  }
  int64_t t0 = NowNs();
  s.go.store(1, std::memory_order_release);
  for (long i = 0; i < created; i++) pthread_join(tids[i], nullptr);
  if (!ok) return false;
  double sum = 0;
  for (auto& c : ctx) sum += c.ns_per_call;
  *per_call = sum / double(threads);
  *wall_ms = double(s.last_end.load() - t0) / 1e6;
  return true;
}

int SleepStorm(long threads, long calls) {
  struct Variant {
    long sleep_ns;
    const char* name;
    const char* wall_name;
  } variants[] = {
      {0, "sleep_storm_0ns", "sleep_storm_0ns_wall"},
      {1000, "sleep_storm_1us", "sleep_storm_1us_wall"},
  };
  const int kReps = 3;
  for (const Variant& v : variants) {
    double per_call = 0, wall = 0;
    // Warm-up: a short storm with the same thread count.
    if (!RunStorm(threads, std::max<long>(calls / 10, 1), v.sleep_ns, v.name, v.wall_name,
                  &per_call, &wall))
      continue;
    std::vector<double> per_calls, walls;
    bool ok = true;
    for (int r = 0; r < kReps && ok; r++) {
      ok = RunStorm(threads, calls, v.sleep_ns, v.name, v.wall_name, &per_call, &wall);
      per_calls.push_back(per_call);
      walls.push_back(wall);
    }
    if (!ok) continue;
    Result(v.name, Median(per_calls), "ns/call");
    Result(v.wall_name, Median(walls), "ms");
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// parked_rss T
//
// T threads that each park by polling a shared flag with usleep(POLL_US). While all of them are
// alive, read VmRSS and count kernel tasks. Reports (RSS - baseline) / T and the task count. A
// failed pthread_create is reported as "FAIL <ERR>_at_<n>" and the threads created so far are
// released and joined.
//
// POLL_US defaults to 500 ms rather than 10 ms: natively, 10,000 threads polling every 10 ms are
// 1M wakeups/s, which saturates a 2-core machine (load average in the thousands, the main thread
// starves and the run never finishes). The interval does not change what a parked thread costs
// in memory; pass a smaller POLL_US explicitly to stress the timer path instead.

struct Parked {
  std::atomic<int> release{0};
  std::atomic<long> started{0};
  useconds_t poll_us = 500000;
};

void* ParkedWorker(void* arg) {
  Parked* p = static_cast<Parked*>(arg);
  p->started.fetch_add(1, std::memory_order_relaxed);
  while (!p->release.load(std::memory_order_acquire)) usleep(p->poll_us);
  return nullptr;
}

long ReadVmRssBytes() {
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, nullptr, 10);
      break;
    }
  }
  fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

long CountTasks() {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  long n = 0;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

int ParkedRss(long threads, long poll_us) {
  char name[64], tasks_name[64];
  snprintf(name, sizeof name, "parked_rss_%ld", threads);
  snprintf(tasks_name, sizeof tasks_name, "parked_tasks_%ld", threads);

  // Pre-size everything that allocates so the baseline already contains it.
  std::vector<pthread_t> tids(threads);
  for (auto& t : tids) t = pthread_t{};
  Parked p;
  p.poll_us = useconds_t(poll_us);
  long baseline = ReadVmRssBytes();
  long tasks_before = CountTasks();

  long created = 0;
  int err = 0;
  int64_t t0 = NowNs();
  for (; created < threads; created++) {
    int rc = pthread_create(&tids[created], nullptr, ParkedWorker, &p);
    if (rc != 0) {
      err = rc;
      break;
    }
  }
  int64_t t1 = NowNs();
  if (err != 0) {
    // Release first (the system may be out of pids/maps), report afterwards.
    p.release.store(1, std::memory_order_release);
    char reason[64];
    snprintf(reason, sizeof reason, "%s_at_%ld", ErrName(err), created);
    ResultFail(name, reason);
    ResultFail(tasks_name, reason);
    fprintf(stderr, "parked_rss: pthread_create failed after %ld threads (%.1f ms)\n", created,
            double(t1 - t0) / 1e6);
  } else {
    while (p.started.load(std::memory_order_relaxed) < created) usleep(10000);
    usleep(30000);  // let every thread get through at least one poll/sleep
    long rss = ReadVmRssBytes();
    long tasks = CountTasks();
    fprintf(stderr,
            "parked_rss: %ld threads created in %.1f ms; VmRSS %ld -> %ld KiB; tasks %ld -> %ld\n",
            created, double(t1 - t0) / 1e6, baseline / 1024, rss / 1024, tasks_before, tasks);
    p.release.store(1, std::memory_order_release);
    if (baseline < 0 || rss < 0) {
      ResultFail(name, "no_VmRSS");
    } else {
      Result(name, double(rss - baseline) / double(threads), "B/thread");
    }
    if (tasks < 0)
      ResultFail(tasks_name, "no_/proc/self/task");
    else
      Result(tasks_name, double(tasks), "tasks");
  }
  for (long i = 0; i < created; i++) pthread_join(tids[i], nullptr);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Synchronisation workloads: shared helpers

// Exits (after a FAIL line for `name`) when a sync call returns an error: the other side of a
// hand-off would otherwise wait forever.
void Check(int rc, const char* name, const char* what) {
  if (rc == 0) return;
  char reason[96];
  snprintf(reason, sizeof reason, "%s_%s", what, ErrName(rc));
  ResultFail(name, reason);
  _exit(1);
}

void SemWait(sem_t* s, const char* name) {
  while (sem_wait(s) != 0) {
    if (errno != EINTR) Check(errno, name, "sem_wait");
  }
}

void SemPost(sem_t* s, const char* name) {
  if (sem_post(s) != 0) Check(errno, name, "sem_post");
}

// Time stamps at rep boundaries of a hand-off sequence: after `warmup` hand-offs, kSyncReps reps
// of `per_rep` hand-offs each. Whoever performs hand-off number `next` calls At(next) while it
// holds the baton, so the measurement contains neither thread creation nor join.
constexpr int kSyncReps = 5;

struct HandoffClock {
  uint64_t warmup = 0;
  uint64_t per_rep = 0;
  uint64_t total = 0;
  int64_t stamp[kSyncReps + 1] = {};

  void Init(uint64_t handoffs_per_rep, uint64_t unit) {
    // Warm-up: ~10% of a rep, at least 100, at most 100k hand-offs, a multiple of `unit`.
    warmup = std::min<uint64_t>(std::max<uint64_t>(handoffs_per_rep / 10, 100), 100000);
    warmup -= warmup % unit;
    per_rep = handoffs_per_rep;
    total = warmup + per_rep * kSyncReps;
  }
  void At(uint64_t next) {
    if (next >= warmup && (next - warmup) % per_rep == 0) stamp[(next - warmup) / per_rep] = NowNs();
  }
  // Median over the reps of (rep time / units_per_rep); prints min/max on stderr.
  double Report(const char* name, double units_per_rep, const char* unit) const {
    std::vector<double> v;
    for (int r = 0; r < kSyncReps; r++) v.push_back(double(stamp[r + 1] - stamp[r]) / units_per_rep);
    fprintf(stderr, "%s: reps(%s) min=%.1f max=%.1f\n", name, unit,
            *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
    double med = Median(v);
    Result(name, med, unit);
    return med;
  }
};

// ---------------------------------------------------------------------------------------------
// mutex_uncontended N
//
// One (created) thread locks and unlocks a default mutex N times per rep; nobody else touches it.

struct Uncontended {
  long n;
  std::vector<double> per_pair;
};

void* UncontendedWorker(void* arg) {
  const char* kName = "mutex_uncontended";
  Uncontended* u = static_cast<Uncontended*>(arg);
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  for (long i = 0; i < std::max<long>(u->n / 10, 1000); i++) {
    Check(pthread_mutex_lock(&m), kName, "lock");
    Check(pthread_mutex_unlock(&m), kName, "unlock");
  }
  for (int r = 0; r < kSyncReps; r++) {
    int64_t t0 = NowNs();
    for (long i = 0; i < u->n; i++) {
      Check(pthread_mutex_lock(&m), kName, "lock");
      Check(pthread_mutex_unlock(&m), kName, "unlock");
    }
    u->per_pair.push_back(double(NowNs() - t0) / double(u->n));
  }
  return nullptr;
}

int MutexUncontended(long n) {
  const char* kName = "mutex_uncontended";
  Uncontended u{n, {}};
  pthread_t t;
  if (!Spawn(&t, UncontendedWorker, &u, kName, 0)) return 0;
  pthread_join(t, nullptr);
  fprintf(stderr, "%s: reps(ns/pair) min=%.1f max=%.1f\n", kName,
          *std::min_element(u.per_pair.begin(), u.per_pair.end()),
          *std::max_element(u.per_pair.begin(), u.per_pair.end()));
  Result(kName, Median(u.per_pair), "ns/pair");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// mutex_handoff N
//
// Two default mutexes used as binary semaphores (as the gcc thread-ring program does): a locked
// mutex is "empty", and whoever holds the baton gives it away by unlocking the other player's
// mutex, which that player is blocked locking. Both start locked by main; main unlocks player 0's.
// Each successful lock is one hand-off.

struct MutexBaton {
  pthread_mutex_t m[2] = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};
  uint64_t count = 0;  // protected by the baton
  HandoffClock clk;
};

struct MutexBatonPlayer {
  MutexBaton* b;
  int me;
};

void* MutexBatonWorker(void* arg) {
  const char* kName = "mutex_handoff";
  MutexBatonPlayer* p = static_cast<MutexBatonPlayer*>(arg);
  MutexBaton* b = p->b;
  for (;;) {
    Check(pthread_mutex_lock(&b->m[p->me]), kName, "lock");
    if (b->count >= b->clk.total) {
      Check(pthread_mutex_unlock(&b->m[1 - p->me]), kName, "unlock_other");
      return nullptr;
    }
    b->clk.At(++b->count);
    Check(pthread_mutex_unlock(&b->m[1 - p->me]), kName, "unlock_other");
  }
}

int MutexHandoff(long n) {
  const char* kName = "mutex_handoff";
  MutexBaton b;
  b.clk.Init(uint64_t(n), 1);
  Check(pthread_mutex_lock(&b.m[0]), kName, "lock");
  Check(pthread_mutex_lock(&b.m[1]), kName, "lock");
  MutexBatonPlayer players[2] = {{&b, 0}, {&b, 1}};
  pthread_t t[2];
  if (!Spawn(&t[0], MutexBatonWorker, &players[0], kName, 0)) return 0;
  if (!Spawn(&t[1], MutexBatonWorker, &players[1], kName, 1)) _exit(1);
  Check(pthread_mutex_unlock(&b.m[0]), kName, "unlock_start");
  pthread_join(t[0], nullptr);
  pthread_join(t[1], nullptr);
  b.clk.Report(kName, double(n), "ns/handoff");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// cond_pingpong N
//
// One mutex, one condvar per player, a turn counter: player p waits on its condvar until
// turn % 2 == p, advances the turn and signals the other's condvar. Two turns = one round trip.

struct CondPingPong {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c[2] = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};
  uint64_t turn = 0;  // protected by m
  HandoffClock clk;
};

struct CondPlayer {
  CondPingPong* pp;
  int me;
};

void* CondPingPongWorker(void* arg) {
  const char* kName = "cond_pingpong";
  CondPlayer* p = static_cast<CondPlayer*>(arg);
  CondPingPong* pp = p->pp;
  Check(pthread_mutex_lock(&pp->m), kName, "lock");
  for (;;) {
    while (pp->turn < pp->clk.total && pp->turn % 2 != uint64_t(p->me))
      Check(pthread_cond_wait(&pp->c[p->me], &pp->m), kName, "cond_wait");
    if (pp->turn >= pp->clk.total) break;
    pp->clk.At(++pp->turn);
    Check(pthread_cond_signal(&pp->c[1 - p->me]), kName, "cond_signal");
  }
  Check(pthread_cond_signal(&pp->c[1 - p->me]), kName, "cond_signal");
  Check(pthread_mutex_unlock(&pp->m), kName, "unlock");
  return nullptr;
}

int CondPingPongRun(long n) {
  const char* kName = "cond_pingpong";
  CondPingPong pp;
  pp.clk.Init(2 * uint64_t(n), 2);
  CondPlayer players[2] = {{&pp, 0}, {&pp, 1}};
  pthread_t t[2];
  if (!Spawn(&t[0], CondPingPongWorker, &players[0], kName, 0)) return 0;
  if (!Spawn(&t[1], CondPingPongWorker, &players[1], kName, 1)) _exit(1);
  pthread_join(t[0], nullptr);
  pthread_join(t[1], nullptr);
  pp.clk.Report(kName, double(n), "ns/roundtrip");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// sem_pingpong N
//
// Two sem_t, both 0; player p waits on its own and posts the other's. Main posts player 0's.
// Two hand-offs = one round trip.

struct SemPingPong {
  sem_t s[2];
  uint64_t count = 0;  // protected by the baton
  HandoffClock clk;
};

struct SemPlayer {
  SemPingPong* pp;
  int me;
};

void* SemPingPongWorker(void* arg) {
  const char* kName = "sem_pingpong";
  SemPlayer* p = static_cast<SemPlayer*>(arg);
  SemPingPong* pp = p->pp;
  for (;;) {
    SemWait(&pp->s[p->me], kName);
    if (pp->count >= pp->clk.total) {
      SemPost(&pp->s[1 - p->me], kName);
      return nullptr;
    }
    pp->clk.At(++pp->count);
    SemPost(&pp->s[1 - p->me], kName);
  }
}

int SemPingPongRun(long n) {
  const char* kName = "sem_pingpong";
  SemPingPong pp;
  for (sem_t& s : pp.s)
    if (sem_init(&s, 0, 0) != 0) Check(errno, kName, "sem_init");
  pp.clk.Init(2 * uint64_t(n), 2);
  SemPlayer players[2] = {{&pp, 0}, {&pp, 1}};
  pthread_t t[2];
  if (!Spawn(&t[0], SemPingPongWorker, &players[0], kName, 0)) return 0;
  if (!Spawn(&t[1], SemPingPongWorker, &players[1], kName, 1)) _exit(1);
  SemPost(&pp.s[0], kName);
  pthread_join(t[0], nullptr);
  pthread_join(t[1], nullptr);
  pp.clk.Report(kName, double(n), "ns/roundtrip");
  for (sem_t& s : pp.s) sem_destroy(&s);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// threadring N
//
// The Benchmarks Game thread-ring (https://benchmarksgame-team.pages.debian.net/benchmarksgame/
// description/threadring.html), as its C gcc program does it: 503 threads, numbered 1..503, each
// with its own mutex used as a binary semaphore (created locked; the previous thread unlocks it to
// pass the token). Thread 1 gets the token N; every thread that gets it decrements it and passes
// it on; the thread that receives 0 prints its number, which must be (N % 503) + 1. Instead of
// exiting the process from the winner (as the original does) the winner raises `done` and passes
// on once more, so every thread leaves its loop and main can join them and report the time from
// handing the token to thread 1 until the winner saw 0: N hops.

constexpr int kRingSize = 503;

struct Ring {
  pthread_mutex_t m[kRingSize];
  long token = 0;   // protected by the baton
  bool done = false;
  int winner = 0;
  int64_t t_end = 0;
  std::atomic<int> started{0};
};

struct RingMember {
  Ring* ring;
  int index;  // 0-based; printed 1-based
};

void* RingWorker(void* arg) {
  const char* kName = "threadring";
  RingMember* me = static_cast<RingMember*>(arg);
  Ring* r = me->ring;
  pthread_mutex_t* mine = &r->m[me->index];
  pthread_mutex_t* next = &r->m[(me->index + 1) % kRingSize];
  r->started.fetch_add(1, std::memory_order_release);
  for (;;) {
    Check(pthread_mutex_lock(mine), kName, "lock");
    if (r->done) {
      Check(pthread_mutex_unlock(next), kName, "unlock_next");
      return nullptr;
    }
    if (r->token == 0) {
      r->t_end = NowNs();
      r->winner = me->index + 1;
      printf("%d\n", r->winner);
      fflush(stdout);
      r->done = true;
      Check(pthread_mutex_unlock(next), kName, "unlock_next");
      return nullptr;
    }
    r->token--;
    Check(pthread_mutex_unlock(next), kName, "unlock_next");
  }
}

int ThreadRing(long n) {
  const char* kName = "threadring";
  Ring r;
  for (pthread_mutex_t& m : r.m) {
    Check(pthread_mutex_init(&m, nullptr), kName, "mutex_init");
    Check(pthread_mutex_lock(&m), kName, "lock");
  }
  r.token = n;
  std::vector<RingMember> members(kRingSize);
  std::vector<pthread_t> tids(kRingSize);
  for (int i = 0; i < kRingSize; i++) {
    members[i] = {&r, i};
    if (!Spawn(&tids[i], RingWorker, &members[i], kName, i)) _exit(1);  // a ring with a gap hangs
  }
  while (r.started.load(std::memory_order_acquire) < kRingSize) sched_yield();
  int64_t t0 = NowNs();
  Check(pthread_mutex_unlock(&r.m[0]), kName, "unlock_start");
  for (pthread_t t : tids) pthread_join(t, nullptr);
  int expected = int(n % kRingSize) + 1;
  fprintf(stderr, "threadring: N=%ld winner=%d expected=%d, %.3f s\n", n, r.winner, expected,
          double(r.t_end - t0) / 1e9);
  if (r.winner != expected) {
    char reason[64];
    snprintf(reason, sizeof reason, "winner_%d_expected_%d", r.winner, expected);
    ResultFail(kName, reason);
    return 0;
  }
  Result(kName, double(r.t_end - t0) / 1e3 / double(n), "us/hop");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// contended_counter T N
//
// T threads, released together, each do N increments of one counter under one default mutex.
// The total is checked; reported is wall time (release until the last thread finished) per
// increment, median of 3 runs after a short warm-up run.

struct Counter {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  uint64_t value = 0;  // protected by m
  long n = 0;
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<int64_t> last_end{0};
};

void* CounterWorker(void* arg) {
  const char* kName = "contended_counter";
  Counter* c = static_cast<Counter*>(arg);
  c->ready.fetch_add(1);
  while (!c->go.load(std::memory_order_acquire)) sched_yield();
  for (long i = 0; i < c->n; i++) {
    Check(pthread_mutex_lock(&c->m), kName, "lock");
    c->value++;
    Check(pthread_mutex_unlock(&c->m), kName, "unlock");
  }
  int64_t t1 = NowNs();
  int64_t prev = c->last_end.load();
  while (prev < t1 && !c->last_end.compare_exchange_weak(prev, t1)) {
  }
  return nullptr;
}

// One run; returns ns per increment, or -1 after printing a FAIL line.
double CounterRun(long threads, long n) {
  const char* kName = "contended_counter";
  Counter c;
  c.n = n;
  std::vector<pthread_t> tids(threads);
  for (long i = 0; i < threads; i++)
    if (!Spawn(&tids[i], CounterWorker, &c, kName, i)) _exit(1);
  while (c.ready.load() < threads) sched_yield();
  int64_t t0 = NowNs();
  c.go.store(1, std::memory_order_release);
  for (pthread_t t : tids) pthread_join(t, nullptr);
  uint64_t expected = uint64_t(threads) * uint64_t(n);
  if (c.value != expected) {
    char reason[96];
    snprintf(reason, sizeof reason, "total_%llu_expected_%llu", (unsigned long long)c.value,
             (unsigned long long)expected);
    ResultFail(kName, reason);
    return -1;
  }
  return double(c.last_end.load() - t0) / double(expected);
}

int ContendedCounter(long threads, long n) {
  const char* kName = "contended_counter";
  if (CounterRun(threads, std::max<long>(n / 10, 1)) < 0) return 0;
  std::vector<double> v;
  for (int r = 0; r < 3; r++) {
    double x = CounterRun(threads, n);
    if (x < 0) return 0;
    v.push_back(x);
  }
  fprintf(stderr, "%s: %ld threads x %ld, reps(ns/incr) min=%.1f max=%.1f\n", kName, threads, n,
          *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  Result(kName, Median(v), "ns/incr");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// cpu_throughput T N: T threads each do N rounds of a register-only computation (no calls into the
// library, so under vthread with more threads than carriers only preemption shares the CPU).
// Result: wall time / N (per round of every thread): lower is better.

std::atomic<uint64_t> g_cpu_sink{0};

void* CpuWorker(void* arg) {
  long rounds = *static_cast<long*>(arg);
  uint64_t x = reinterpret_cast<uintptr_t>(&rounds);
  for (long i = 0; i < rounds; ++i) {
    for (int k = 0; k < 1000; ++k) x = x * 6364136223846793005ull + 1442695040888963407ull;
  }
  g_cpu_sink.fetch_add(x, std::memory_order_relaxed);
  return nullptr;
}

int CpuThroughput(long threads, long rounds) {
  char name[64];
  snprintf(name, sizeof name, "cpu_throughput_%ld", threads);
  std::vector<pthread_t> ts(threads);
  int64_t t0 = NowNs();
  for (long i = 0; i < threads; ++i) {
    if (!Spawn(&ts[i], CpuWorker, &rounds, name, i)) return 1;
  }
  for (auto& t : ts) pthread_join(t, nullptr);
  int64_t wall = NowNs() - t0;
  // Wall time per 1000-step round of all threads: lower is better, and native/vthread is the
  // throughput ratio.
  Result(name, static_cast<double>(wall) / rounds, "ns/round");
  return 0;
}

// ---------------------------------------------------------------------------------------------
// wake_latency H N: H CPU hogs run while one thread, made high priority (SCHED_FIFO 10 natively,
// which needs privilege: failures are ignored), sleeps 1 ms N times; how late each wake-up is.

std::atomic<bool> g_hogs_stop{false};

void* LatencyHog(void*) {
  uint64_t x = 1;
  while (!g_hogs_stop.load(std::memory_order_relaxed)) {
    for (int k = 0; k < 1000; ++k) x = x * 6364136223846793005ull + 1;
  }
  g_cpu_sink.fetch_add(x, std::memory_order_relaxed);
  return nullptr;
}

struct LatencyRun {
  long n;
  std::vector<double> late_us;
};

void* LatencySleeper(void* arg) {
  auto* run = static_cast<LatencyRun*>(arg);
  struct sched_param param;
  param.sched_priority = 10;
  pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  for (long i = 0; i < run->n; ++i) {
    int64_t before = NowNs();
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, nullptr);
    run->late_us.push_back((NowNs() - before - 1000 * 1000) / 1000.0);
  }
  return nullptr;
}

int WakeLatency(long hogs, long n) {
  std::vector<pthread_t> hs(hogs);
  for (long i = 0; i < hogs; ++i) {
    if (!Spawn(&hs[i], LatencyHog, nullptr, "wake_latency_p50", i)) return 1;
  }
  LatencyRun run{n, {}};
  run.late_us.reserve(n);
  pthread_t sleeper;
  if (!Spawn(&sleeper, LatencySleeper, &run, "wake_latency_p50", hogs)) return 1;
  pthread_join(sleeper, nullptr);
  g_hogs_stop = true;
  for (auto& t : hs) pthread_join(t, nullptr);
  std::sort(run.late_us.begin(), run.late_us.end());
  Result("wake_latency_p50", run.late_us[run.late_us.size() / 2], "us");
  Result("wake_latency_p99", run.late_us[run.late_us.size() * 99 / 100], "us");
  return 0;
}

int Usage() {
  fprintf(stderr,
          "usage: workloads create_join N\n"
          "       workloads yield_pingpong N\n"
          "       workloads sleep_storm T N\n"
          "       workloads parked_rss T [POLL_US]\n"
          "       workloads mutex_uncontended N\n"
          "       workloads mutex_handoff N\n"
          "       workloads cond_pingpong N\n"
          "       workloads threadring N\n"
          "       workloads contended_counter T N\n"
          "       workloads sem_pingpong N\n"
          "       workloads cpu_throughput T N\n"
          "       workloads wake_latency H N\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const char* cmd = argv[1];
  if (!strcmp(cmd, "create_join") && argc == 3) return CreateJoin(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "yield_pingpong") && argc == 3) return YieldPingPong(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "sleep_storm") && argc == 4)
    return SleepStorm(ParseCount(argv[2], "T"), ParseCount(argv[3], "N"));
  if (!strcmp(cmd, "parked_rss") && (argc == 3 || argc == 4))
    return ParkedRss(ParseCount(argv[2], "T"), argc == 4 ? ParseCount(argv[3], "POLL_US") : 500000);
  if (!strcmp(cmd, "mutex_uncontended") && argc == 3) return MutexUncontended(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "mutex_handoff") && argc == 3) return MutexHandoff(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "cond_pingpong") && argc == 3) return CondPingPongRun(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "threadring") && argc == 3) return ThreadRing(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "contended_counter") && argc == 4)
    return ContendedCounter(ParseCount(argv[2], "T"), ParseCount(argv[3], "N"));
  if (!strcmp(cmd, "sem_pingpong") && argc == 3) return SemPingPongRun(ParseCount(argv[2], "N"));
  if (!strcmp(cmd, "cpu_throughput") && argc == 4)
    return CpuThroughput(ParseCount(argv[2], "T"), ParseCount(argv[3], "N"));
  if (!strcmp(cmd, "wake_latency") && argc == 4)
    return WakeLatency(ParseCount(argv[2], "H"), ParseCount(argv[3], "N"));
  return Usage();
}
