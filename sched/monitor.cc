// The monitor: Go's sysmon, reduced to what preemption needs.
//
// One kernel thread made with the real pthread_create. It is not a carrier and runs no fibers, and
// it blocks every signal but while it sleeps (signals.cc). Its own work takes no runtime lock
// except try_locks on run queues and the timer heaps' locks that fire_all_due_timers() takes, but
// the router of process-directed signals it runs (the shim's) may take a fiber's locks to end its
// park. Every period it
//   - reads, per carrier, the running fiber and the dispatch counter (`switches`, which dispatch
//     keeps anyway), and remembers the carrier thread's CPU time when it first saw each (fiber,
//     counter) pair: the same pair seen over a quantum of CPU time means one dispatch has run at
//     least that long, with no clock read on the switch path. It ticks such a carrier only if fibers
//     wait for it (its queue or the shared queue of preempted fibers), so an idle or uncontended
//     carrier is never interrupted; and at once if a waiting fiber outranks the running one;
//   - fires due timers when no carrier does: a carrier fires its own only when it schedules, idle
//     carriers fire everyone's, and with every carrier in a long dispatch a sleeper would otherwise
//     wait for the next preemption (it sleeps until the earliest timer if that comes first);
//   - hands the queues of carriers blocked in the kernel to others and to spares (handoff.cc);
//   - rebuilds preempt.cc's map of non-preemptible code when a tick found unknown code;
//   - takes from the kernel the process-directed signals that every running fiber blocks and a
//     parked one accepts, and runs the router of process-directed signals when asked (signals.cc).
// A tick that lands at an unsafe point is simply re-sent next period.
//
// CPU time, not wall time: on a loaded machine the kernel deschedules carriers mid-slice, and
// wall-clock slices would give fibers unequal CPU; nor does a fiber blocked in the kernel use up
// its quantum. The CPU clock of another thread costs a system call, one per busy carrier per
// period. The period is a quarter of the quantum (100 us to 1 ms), so a fiber runs 1 to 1.25 quanta
// before it is ticked while the monitor gets the CPU in time; when the kernel runs the monitor late,
// the overrun is charged to the fiber (Fiber::cpu_debt) and repaid by skipping turns in the shared
// queue (preempt.cc), so shares stay even anyway. When every carrier is asleep or in a blocking call,
// the monitor sleeps on a futex until one wakes or returns (notify_busy), so an idle process, or one
// waiting in accept(), costs no CPU. The
// 1 ms cap bounds how late a sleeper on a fully busy carrier wakes when its timer was armed after
// the monitor went to sleep (tools/bench's wake-up latency row); a wake of the monitor from
// arm_timer() would do better but costs a system call on the sleep path.
// Rejected: a clock read in dispatch to time each dispatch exactly (a system call for CPU time on
// a ~40 ns switch path); per-carrier timers (see preempt.cc).
#include "sched/monitor.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include <atomic>

#include "arch/raw_syscall.h"
#include "sched/carrier.h"
#include "sched/futex.h"
#include "sched/handoff.h"
#include "sched/libc.h"
#include "sched/preempt.h"

namespace vthread::sched::monitor {
namespace {

constexpr Nanos kMinPeriod = 100 * 1000;
constexpr Nanos kMaxPeriod = 1000 * 1000;
// Consecutive periods without a running fiber before the monitor considers sleeping.
constexpr int kQuietPeriodsBeforeSleep = 8;
// How long it sleeps at most while carriers are in blocking calls and nothing else runs.
constexpr Nanos kBlockedRecheck = 20 * 1000 * 1000;

Nanos g_quantum = 0;
Nanos g_period = 0;
std::atomic<bool> g_asleep{false};
std::atomic<uint32_t> g_wake_word{0};

// What the monitor last saw on each carrier. Its own memory; nobody else reads it.
struct Watch {
  Fiber* fiber;
  uint64_t switches;
  Nanos cpu_since;  // the carrier thread's CPU time when the monitor first saw this dispatch
  Nanos charged;    // how much of its overrun was added to the fiber's cpu_debt
};
Watch* g_watch = nullptr;

// CPU time the kernel thread `tid` has used (glibc's pthread_getcpuclockid encoding for a tid:
// per-thread, scheduler clock; exact, not sampled at the kernel's tick).
Nanos thread_cpu_time(pid_t tid) {
  auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  struct timespec ts;
  if (arch::raw_syscall(SYS_clock_gettime, clock, &ts) != 0) return 0;
  return timespec_to_nanos(ts);
}

// The highest priority waiting for `c` (its queue and the shared queue of preempted fibers), or -1
// (also if a lock is busy: next period).
int top_waiting(Carrier* c) {
  int top = preempted_top_priority();
  if (c->queued.load(std::memory_order_relaxed) == 0 || !c->queue_lock.try_lock()) return top;
  int local = c->queue.highest_level();
  c->queue_lock.unlock();
  return local > top ? local : top;
}

// Returns true if some carrier is running a fiber.
bool scan() {
  bool running = false;
  for (int i = 0; i < g_ncarriers; ++i) {
    Carrier* c = &g_carriers[i];
    Watch& w = g_watch[i];
    Fiber* f = __atomic_load_n(&c->current, __ATOMIC_RELAXED);
    pid_t tid = __atomic_load_n(&c->tid, __ATOMIC_RELAXED);
    uint64_t switches = c->switches.load(std::memory_order_relaxed);
    // A carrier in a blocking call is handoff.cc's; a tick would only interrupt the call.
    if (!f || !tid || c->blocking_since.load(std::memory_order_relaxed)) {
      w.fiber = nullptr;  // a carrier in a blocking call is handoff.cc's; a tick would only interrupt it
      continue;
    }
    running = true;
    bool waiting = c->queued.load(std::memory_order_relaxed) > 0 || preempted_queued() > 0;
    if (f != w.fiber || switches != w.switches) {
      w = Watch{f, switches, thread_cpu_time(tid), 0};
      if (waiting && top_waiting(c) > f->priority) preempt::send_tick(tid);
      continue;
    }
    if (!waiting) continue;
    Nanos used = thread_cpu_time(tid) - w.cpu_since;
    if (used >= g_quantum) {
      // Whatever it ran past the quantum it repays by skipping turns (preempt.cc, take_preempted).
      Nanos overrun = used - g_quantum;
      if (overrun > w.charged) {
        f->cpu_debt.fetch_add(overrun - w.charged, std::memory_order_relaxed);
        w.charged = overrun;
      }
      c->quantum_over.store(true, std::memory_order_relaxed);
      preempt::send_tick(tid);
    } else if (top_waiting(c) > f->priority) {
      preempt::send_tick(tid);
    }
  }
  return running;
}

void sleep_for(Nanos ns) {
  struct timespec ts = nanos_to_timespec(ns);
  arch::raw_syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, nullptr);
}

// Carriers whose fiber is in a blocking call the shim wraps: they run nothing until it returns.
int blocked_carriers() {
  int n = 0;
  for (int i = 0; i < g_ncarriers; ++i) n += g_carriers[i].blocking_since.load(std::memory_order_seq_cst) != 0;
  return n;
}

// True if no carrier runs a fiber (each is idle, dormant, or in a wrapped blocking call) and none
// is queued. Counts the carriers in blocking calls into *blocked.
bool quiet(int* blocked) {
  *blocked = blocked_carriers();
  return all_carriers_idle(*blocked) && !any_work_queued();
}

// Sleeps until a carrier leaves its idle sleep or a blocking call, unless one already has (Dekker
// with notify_busy: either we see it busy, or it sees us asleep). With carriers in blocking calls
// it also wakes every kBlockedRecheck: work queued for one of them wakes nobody (it is not idle).
void sleep_until_busy() {
  g_wake_word.store(0, std::memory_order_relaxed);
  g_asleep.store(true, std::memory_order_seq_cst);
  int blocked;
  if (quiet(&blocked) && !signal_routing_wanted()) {
    struct timespec recheck = nanos_to_timespec(kBlockedRecheck);
    open_monitor_signals();  // a signal for a parked fiber wakes it
    futex_wait(&g_wake_word, 0, blocked ? &recheck : nullptr);
    block_monitor_signals();
  }
  g_asleep.store(false, std::memory_order_relaxed);
}

void* monitor_main(void*) {
  enter_monitor_signals();
  // Its lateness is the fibers' slice error (see above), and it runs microseconds per period: ask
  // the kernel to run it promptly. Only a privileged process may lower its nice value; otherwise
  // it keeps the default and relies on cpu_debt.
  arch::raw_syscall(SYS_setpriority, PRIO_PROCESS, arch::raw_syscall(SYS_gettid), -20);
  int quiet_periods = 0;
  for (;;) {
    if (earliest_timer_anywhere() <= monotonic_now()) fire_all_due_timers();
    bool running = scan();
    handoff::retake(monotonic_now());
    preempt::refresh_code_map_if_stale();
    monitor_signal_period();
    quiet_periods = running ? 0 : quiet_periods + 1;
    int blocked;
    if (quiet_periods >= kQuietPeriodsBeforeSleep && quiet(&blocked) && !signal_routing_wanted()) {
      sleep_until_busy();
      quiet_periods = 0;
    } else {
      // Wake for the earliest timer too, so sleepers on busy carriers wake on time.
      Nanos until_timer = earliest_timer_anywhere() - monotonic_now();
      sleep_for(until_timer < kMinPeriod / 2 ? kMinPeriod / 2 : until_timer < g_period ? until_timer : g_period);
    }
  }
}

void start_thread() {
  // Room for every carrier there may be: spares (handoff.cc) are added while the monitor runs.
  g_watch = static_cast<Watch*>(calloc(static_cast<size_t>(g_config.carriers + g_config.max_spare), sizeof(Watch)));
  if (!g_watch) die("out of memory for the monitor");
  pthread_t thread;
  if (libc::pthread_create(&thread, nullptr, monitor_main, nullptr) != 0) die("cannot create the monitor thread");
  libc::pthread_setname_np(thread, "vthread/mon");
}

}  // namespace

void start(Nanos quantum) {
  g_quantum = quantum > 0 ? quantum : kNoDeadline;
  g_period = quantum > 0 ? quantum / 4 : kMaxPeriod;
  if (g_period < kMinPeriod) g_period = kMinPeriod;
  if (g_period > kMaxPeriod) g_period = kMaxPeriod;
  start_thread();
}

void notify_busy() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!g_asleep.load(std::memory_order_relaxed)) return;
  g_wake_word.store(1, std::memory_order_relaxed);
  futex_wake(&g_wake_word, 1);
}

void after_fork_in_child() {
  g_asleep.store(false);
  g_wake_word.store(0);
  start_thread();  // the parent's g_watch stays allocated in the child: a few bytes, once per fork
}

}  // namespace vthread::sched::monitor
