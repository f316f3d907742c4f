// Hand-off of blocked carriers (Go's retake/handoffp, shaped to this runtime).
//
// A carrier is a kernel thread running fibers from its queue. When that thread is stuck in the
// kernel, the fibers queued for it wait too, and with one carrier so does the whole program: a
// thread blocked in read() on a pipe, or a fiber blocked on a glibc-internal lock (stdio, malloc)
// that a preempted fiber holds, which preemption makes possible (research note §2.3: the hand-off is
// needed for progress, not an optimisation).
//
// Noticing. The shim's wrappers of blocking calls mark the carrier (enter_blocking: a timestamp, no
// system call). Blocking no wrapper saw (an uninterposed call, a libc-internal futex) the monitor
// infers: the same dispatch, its thread's CPU time not moving for a threshold, and
// /proc/self/task/TID/stat saying S or D. Either way it acts only after kHandoffAfter, and only if
// fibers wait (the carrier's queue or the shared queue of preempted fibers), as Go retakes a P only
// when there is other work. A thread that /proc shows R there is one the kernel is not running
// (its CPU went to others): its queue is given away too, but no spare is started for it.
//
// Handing off. The Carrier struct holds a queue, timers and a scheduler loop bound to its kernel
// thread; rather than split it into Go's P and M (a deep change to every switch), the monitor moves
// the blocked carrier's queue to the shared queue, which every carrier takes from, and wakes an idle
// carrier or, if none is idle, starts a spare: an extra Carrier in slots reserved after the
// configured ones, with its own kernel thread, that runs fibers like any other. Its timers are
// fired by the monitor and idle carriers like everyone's. Spares are capped (VTHREAD_MAX_SPARE);
// hitting the cap is reported once.
//
// Giving back. When the call returns, the stuck thread simply goes on running its fiber: it is a
// carrier again. The monitor counts blocked carriers every period; while more spares run than
// carriers are blocked, a spare retires at its next scheduling point (a switch, a tick, its loop),
// gives its queue to the shared queue and sleeps (dormant, outside the idle list) until the monitor
// wakes it for the next blocked carrier. So at most VTHREAD_CARRIERS kernel threads run fibers at
// a time, give or take a scheduling point, as with Go's GOMAXPROCS.
#include "sched/handoff.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#include <atomic>
#include <new>

#include "arch/raw_syscall.h"
#include "sched/carrier.h"
#include "sched/futex.h"
#include "sched/monitor.h"
#include "sched/sched.h"

namespace vthread::sched {

namespace {

// How long a carrier may stay in the kernel while fibers wait before a spare takes over. Go waits
// one sysmon tick (20 us to 10 ms); a spare costs a thread wake-up (or creation, once), so a
// millisecond keeps short calls from churning spares and still bounds the delay.
constexpr Nanos kHandoffAfter = 1000 * 1000;

std::atomic<int> g_spares_active{0};   // spare carriers not dormant
std::atomic<int> g_spares_wanted{0};   // carriers the monitor found blocked last period
std::atomic<int> g_spares_dormant{0};
bool g_warned_cap = false;

// The monitor's own per-carrier memory for inferring blocking no wrapper marked.
struct Stall {
  uint64_t switches;
  Nanos cpu;
  Nanos since;  // when CPU time stopped moving for this dispatch; 0: it moves
};
Stall* g_stalls = nullptr;
uint64_t g_carrier_mask = 0;  // the signal mask carriers run with

Nanos thread_cpu_time(pid_t tid) {
  auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  struct timespec ts;
  if (arch::raw_syscall(SYS_clock_gettime, clock, &ts) != 0) return 0;
  return timespec_to_nanos(ts);
}

// Thread `tid`'s state letter in /proc (R running or runnable, S and D asleep in the kernel, ...),
// or 0 if unreadable.
char kernel_state(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
  long fd = arch::raw_syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[512];
  long n = arch::raw_syscall(SYS_read, fd, buf, sizeof buf - 1);
  arch::raw_syscall(SYS_close, fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* paren = strrchr(buf, ')');  // the name may contain anything, but not after this
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

bool work_waiting(Carrier* c) { return c->queued.load(std::memory_order_relaxed) > 0 || preempted_queued() > 0; }

// Moves every fiber queued on `c` to the shared queue, where any carrier takes it.
void give_away_queue(Carrier* c) {
  for (;;) {
    Fiber* f;
    {
      SpinlockGuard hold(c->queue_lock);
      f = c->queue.pop_highest();
      c->queued.store(c->queue.size(), std::memory_order_relaxed);
    }
    if (!f) return;
    requeue_preempted(f);
  }
}

// What keeps carrier `c`, running a fiber, from going on for kHandoffAfter, if anything: it is
// stuck in the kernel (a blocking call), or its thread is runnable but the kernel runs others on
// its CPU (a real-time thread, a busier process, nice): CPU time still and /proc saying R. The
// second needs no spare, which would compete for the same CPUs, but the fibers queued on the
// carrier must not wait for it: a carrier that always has work of its own never steals them.
enum class Stalled { kNo, kInKernel, kDescheduled };

Stalled stalled(Carrier* c, Stall* s, Nanos now) {
  Nanos since = c->blocking_since.load(std::memory_order_relaxed);
  if (since) return now - since >= kHandoffAfter ? Stalled::kInKernel : Stalled::kNo;
  pid_t tid = __atomic_load_n(&c->tid, __ATOMIC_RELAXED);
  uint64_t switches = c->switches.load(std::memory_order_relaxed);
  if (!tid || !work_waiting(c)) {
    s->since = 0;
    return Stalled::kNo;
  }
  Nanos cpu = thread_cpu_time(tid);
  if (switches != s->switches || cpu != s->cpu) {
    *s = Stall{switches, cpu, 0};
    return Stalled::kNo;
  }
  if (!s->since) s->since = now;
  if (now - s->since < kHandoffAfter) return Stalled::kNo;
  switch (kernel_state(tid)) {
    case 'S': case 'D': return Stalled::kInKernel;
    case 'R': return Stalled::kDescheduled;
    default: return Stalled::kNo;
  }
}

// Wakes a dormant spare, or starts a new one if the cap allows. Returns false at the cap.
bool add_spare() {
  for (int i = g_config.carriers; i < g_ncarriers; ++i) {
    Carrier* c = &g_carriers[i];
    bool dormant = true;
    if (c->dormant.compare_exchange_strong(dormant, false, std::memory_order_acq_rel)) {
      g_spares_active.fetch_add(1, std::memory_order_relaxed);
      c->wake_word.store(1, std::memory_order_release);
      futex_wake(&c->wake_word, 1);
      return true;
    }
  }
  if (g_ncarriers - g_config.carriers >= g_config.max_spare) {
    if (!g_warned_cap) {
      g_warned_cap = true;
      char line[200];
      int n = snprintf(line, sizeof line,
                       "vthread: all %d spare kernel threads (VTHREAD_MAX_SPARE) are in use; threads wait "
                       "for carriers blocked in the kernel\n", g_config.max_spare);
      arch::raw_syscall(SYS_write, 2, line, n);
    }
    return false;
  }
  int index = g_ncarriers;
  Carrier* c = new (&g_carriers[index]) Carrier();
  c->index = index;
  c->steal_seed = 0x9e3779b97f4a7c15ull * (index + 1);
  c->spare = true;
  g_spares_active.fetch_add(1, std::memory_order_relaxed);
  __atomic_store_n(&g_ncarriers, index + 1, __ATOMIC_RELEASE);
  // The new thread inherits our mask, which blocks everything: give it the carriers' for the start.
  uint64_t monitor_mask;
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &g_carrier_mask, &monitor_mask, sizeof(uint64_t));
  start_carrier_thread(c);
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &monitor_mask, nullptr, sizeof(uint64_t));
  return true;
}

}  // namespace

void enter_blocking() {
  Fiber* self = current();
  if (self) self->carrier->blocking_since.store(monotonic_now(), std::memory_order_relaxed);
}

void exit_blocking() {
  Fiber* self = current();
  if (!self) return;
  self->carrier->blocking_since.store(0, std::memory_order_relaxed);
  monitor::notify_busy();  // it may have gone to sleep because this carrier ran nothing
}

Nanos suspend_blocking() {
  Fiber* self = current();
  if (!self) return 0;
  return self->carrier->blocking_since.exchange(0, std::memory_order_relaxed);
}

void resume_blocking(Nanos since) {
  Fiber* self = current();
  if (self && since) self->carrier->blocking_since.store(since, std::memory_order_relaxed);
}

namespace handoff {

void start() { arch::raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &g_carrier_mask, sizeof(uint64_t)); }

void retake(Nanos now) {
  if (!g_stalls) {
    g_stalls = static_cast<Stall*>(calloc(static_cast<size_t>(g_config.carriers + g_config.max_spare), sizeof(Stall)));
    if (!g_stalls) return;
  }
  int stuck = 0;
  bool need_spare = false;
  for (int i = 0; i < g_ncarriers; ++i) {
    Carrier* c = &g_carriers[i];
    if (c->dormant.load(std::memory_order_relaxed) || !__atomic_load_n(&c->current, __ATOMIC_RELAXED)) {
      g_stalls[i].since = 0;
      continue;
    }
    Stalled how = stalled(c, &g_stalls[i], now);
    if (how == Stalled::kNo) continue;
    if (how == Stalled::kDescheduled) {
      if (c->queued.load(std::memory_order_relaxed) > 0) give_away_queue(c);
      continue;
    }
    ++stuck;
    if (!work_waiting(c)) continue;
    give_away_queue(c);
    need_spare = true;
  }
  g_spares_wanted.store(stuck, std::memory_order_relaxed);
  // The queues went to the shared queue, which wakes an idle carrier; a spare only if none is.
  if (need_spare && !any_carrier_idle() && g_spares_active.load(std::memory_order_relaxed) < stuck) add_spare();
}

bool should_retire(Carrier* c) {
  return c->spare && g_spares_active.load(std::memory_order_relaxed) > g_spares_wanted.load(std::memory_order_relaxed);
}

void go_dormant(Carrier* c) {
  int active = g_spares_active.load(std::memory_order_relaxed);
  do {
    if (active <= g_spares_wanted.load(std::memory_order_relaxed)) return;
  } while (!g_spares_active.compare_exchange_weak(active, active - 1, std::memory_order_relaxed));
  c->wake_word.store(0, std::memory_order_relaxed);
  g_spares_dormant.fetch_add(1, std::memory_order_relaxed);
  {
    // Under the queue lock: a waker that queues a fiber here (the monitor firing a timer of a
    // fiber that last ran here) either sees `dormant` and picks carrier 0, or queued it before
    // and give_away_queue() finds it. Before this, one queued in between stayed here for good.
    SpinlockGuard hold(c->queue_lock);
    c->dormant.store(true, std::memory_order_release);
  }
  give_away_queue(c);
  while (c->dormant.load(std::memory_order_acquire)) futex_wait(&c->wake_word, 0, nullptr);
  g_spares_dormant.fetch_sub(1, std::memory_order_relaxed);
}

int dormant_spares() { return g_spares_dormant.load(std::memory_order_relaxed); }

void after_fork_in_child() {
  g_spares_active.store(0);
  g_spares_wanted.store(0);
  g_spares_dormant.store(0);
  g_stalls = nullptr;  // the parent's stays allocated in the child: a few bytes, once per fork
}

}  // namespace handoff
}  // namespace vthread::sched
