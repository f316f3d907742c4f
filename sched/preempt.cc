// Asynchronous preemption.
//
// A fiber that never enters the shim (a CPU loop, a spin on a flag) would keep its carrier forever.
// Each carrier therefore gets ticks, and a fiber whose dispatch has lasted a quantum while others
// wait is switched out from inside the tick handler. The tick signal is SIGALRM unless
// VTHREAD_PREEMPT_SIGNAL says otherwise; on_tick() runs on the interrupted fiber's own stack (no
// SA_ONSTACK; SA_NODEFER, so the carrier's mask is never changed and the next fiber runs with the
// signal open).
//
// Where ticks come from
//   The monitor (monitor.cc) sends them with rt_tgsigqueueinfo, only to a carrier whose dispatch has
//   used a quantum of CPU while fibers wait, or at once to one whose fiber is outranked by a waiting
//   one; make_runnable() sends one directly when a woken fiber outranks the running one or the
//   running one is CPU-bound (on_runnable()). Idle carriers and carriers blocked in the kernel
//   get none: no EINTR in the program's slow calls, no wake-ups of an idle process.
//   Rejected: a POSIX timer per carrier on its thread's CPU-time clock (SIGEV_THREAD_ID). It needs
//   no monitor, but CPU-time timers are checked at the kernel's tick (4 ms at HZ=250 here), so a
//   1 ms quantum became 16 ms and fairness suffered more than from the monitor's lag. Wall-clock
//   timers per carrier (the PPoPP'21 choice) tick idle and blocked carriers.
//
// Telling ticks from the program's own signal
//   A tick carries a private negative si_code, our pid, and a random per-process cookie in
//   si_value. The kernel lets a process queue any si_code < 0 to its own threads, and nothing the
//   program does (alarm, setitimer, timer_create, kill, raise, sigqueue) produces that triple, so
//   every other instance of the signal is the program's and shim/sigaction.cc passes it on to the
//   program's handler. (The research note advised against SIGALRM because Go could not tell its
//   ticks from the program's; the cookie is what makes it safe, and the issue asks for SIGALRM.)
//
// The safe-point rule (checked in this order, all lock-free reads)
//   1. A fiber is running: current() is null in carrier context (the scheduler loop, idle).
//   2. The fiber is not inside an interposed call (Fiber::in_call). That covers the runtime's own
//      critical sections entered from a fiber, and app code the shim runs while glibc or ld.so holds
//      a lock for it (constructors run by dlopen under dl_load_lock; pthread_once initialisers).
//      It is the "nopreempt counter" of the design: ShimEntry already maintains it.
//   3. The fiber is not running the program's handler for the tick signal (app_handler_sp; a
//      handler left by longjmp is noticed because the stack pointer is then above its frame).
//   4. The handler's frame is on the interrupted stack (not an alternate signal stack: switching
//      away from one lets the next signal overwrite the suspended frame), and the fiber's stack has
//      kHeadroom left below it for the scheduler's calls.
//   5. The interrupted PC is in code that may be re-entered by another fiber: not libc, ld.so,
//      libgcc_s, libstdc++, the thread stubs, NSS/resolver, the vDSO or this library (they hold
//      locks a fiber switch would leave held, or are the runtime itself). The ranges come from
//      dl_iterate_phdr into a sorted, immutable CodeMap published through an atomic pointer. A PC
//      in no known range (a library loaded since) defers the tick and asks the monitor to rebuild;
//      if nothing was loaded, unknown code (JIT) is then treated as preemptible. Old maps are never
//      freed: a handler may still be reading one, and there is one per dlopen at most.
//   Any failure defers: preempt_pending is set and taken at the fiber's next shim entry (ShimEntry);
//   the monitor re-sends the tick every period meanwhile, and one soon lands in program code.
//
// Switching in the handler (option A of the research note)
//   The handler switches to the next fiber with the ordinary switch_out(), PostSwitch::kPreempted.
//   The kernel saved every register, FP/AVX state included, in the signal frame on the fiber's
//   stack, so when the fiber is resumed (perhaps on another carrier) the handler simply returns
//   and rt_sigreturn restores it all. Before returning it patches the frame: uc_stack gets the
//   current carrier's sigaltstack (rt_sigreturn would otherwise install the old carrier's), and the
//   tick signal is removed from uc_sigmask. errno is saved and restored around the whole.
//
// Rejected
//   - Go's injected call (rewrite RIP to an asyncPreempt trampoline that saves state itself): no
//     scheduler code in signal context, but hand-written XSAVE handling and unwind info; the switch
//     path here is already async-signal-safe (spinlocks, no allocation).
//   - Always preempting and letting libc locks be handed off: sound only with the blocked-carrier
//     hand-off, and far more expensive than deferring a tick that lands in libc.
#include "sched/preempt.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "arch/raw_syscall.h"
#include "sched/carrier.h"
#include "sched/handoff.h"
#include "sched/monitor.h"

namespace vthread::sched {

// The shared queue of preempted fibers (see requeue_preempted() below).
namespace {
Spinlock g_preempted_lock;
RunQueue g_preempted;
std::atomic<size_t> g_preempted_count{0};
}  // namespace

namespace preempt {
namespace {

// si_code of a tick. Negative codes are user-sent; -6 (SI_TKILL) and above are taken by the kernel
// and glibc. Any other negative value is ours to choose.
constexpr int kTickCode = -0x7674;  // "vt"

// Stack a fiber must have left below the handler's frame for the scheduler's calls.
constexpr uintptr_t kHeadroom = 8 * 1024;
// The handler's frame is on the interrupted stack if the interrupted sp lies at most this far above
// it (the signal frame with AVX-512 state is ~3.5 KiB).
constexpr uintptr_t kMaxSignalFrame = 64 * 1024;

bool g_started = false;
bool g_enabled = false;
int g_signal = 0;
pid_t g_pid = 0;
uintptr_t g_cookie = 0;
std::atomic<uint64_t> g_ticks_sent{0};

// ---- the code map ------------------------------------------------------------------------------

struct CodeRange {
  uintptr_t lo, hi;
  bool preemptible;
};

struct CodeMap {
  unsigned long long adds;                 // dlpi_adds when built
  std::atomic<bool> unknown_preemptible;   // set once a rebuild found nothing new: unknown code is JIT
  size_t n;
  CodeRange ranges[];
};

std::atomic<CodeMap*> g_map{nullptr};
std::atomic<bool> g_map_stale{false};

// Objects whose code must never be interrupted by a switch, by file-name prefix.
constexpr const char* kDenied[] = {
    "libc.so", "ld-linux", "ld64.so", "libgcc_s.so", "libstdc++.so", "libpthread.so", "libdl.so",
    "librt.so", "libnss_", "libresolv.so", "libunwind", "linux-vdso", "linux-gate",
};

bool denied_name(const char* path) {
  const char* base = strrchr(path, '/');
  base = base ? base + 1 : path;
  for (const char* prefix : kDenied) {
    if (strncmp(base, prefix, strlen(prefix)) == 0) return true;
  }
  return false;
}

struct Collect {
  CodeMap* map;            // null: only count
  size_t capacity;
  size_t count;
  unsigned long long adds;
};

int collect_object(struct dl_phdr_info* info, size_t, void* arg) {
  auto* col = static_cast<Collect*>(arg);
  col->adds = info->dlpi_adds;
  auto self = reinterpret_cast<uintptr_t>(&collect_object);
  bool preemptible = !denied_name(info->dlpi_name ? info->dlpi_name : "");
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (self >= lo && self < lo + ph.p_memsz) preemptible = false;  // this library
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    if (col->map && col->count < col->capacity) {
      uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      col->map->ranges[col->count] = CodeRange{lo, lo + ph.p_memsz, preemptible};
    }
    ++col->count;
  }
  return 0;
}

// Builds and publishes a new map. Not in signal context (start, the monitor).
void build_code_map() {
  Collect counting{nullptr, 0, 0, 0};
  dl_iterate_phdr(collect_object, &counting);
  size_t capacity = counting.count + 16;  // objects loaded between the two walks are picked up later
  auto* map = static_cast<CodeMap*>(malloc(sizeof(CodeMap) + capacity * sizeof(CodeRange)));
  if (!map) return;  // keep the old map; the next stale tick asks again
  new (&map->unknown_preemptible) std::atomic<bool>(false);
  Collect filling{map, capacity, 0, 0};
  dl_iterate_phdr(collect_object, &filling);
  map->n = filling.count < capacity ? filling.count : capacity;
  map->adds = filling.adds;
  // Insertion sort: a few dozen ranges, once per library load.
  for (size_t i = 1; i < map->n; ++i) {
    CodeRange r = map->ranges[i];
    size_t j = i;
    for (; j > 0 && map->ranges[j - 1].lo > r.lo; --j) map->ranges[j] = map->ranges[j - 1];
    map->ranges[j] = r;
  }
  g_map.store(map, std::memory_order_release);
}

int read_adds(struct dl_phdr_info* info, size_t, void* arg) {
  *static_cast<unsigned long long*>(arg) = info->dlpi_adds;
  return 1;
}

// Async-signal-safe: reads an immutable map.
bool code_preemptible(uintptr_t pc) {
  CodeMap* map = g_map.load(std::memory_order_acquire);
  if (!map) return false;
  size_t lo = 0, hi = map->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (pc < map->ranges[mid].lo) {
      hi = mid;
    } else if (pc >= map->ranges[mid].hi) {
      lo = mid + 1;
    } else {
      return map->ranges[mid].preemptible;
    }
  }
  if (map->unknown_preemptible.load(std::memory_order_relaxed)) return true;
  g_map_stale.store(true, std::memory_order_relaxed);
  return false;
}

// ---- the safe-point rule -----------------------------------------------------------------------

// True if the calling thread runs on its alternate signal stack (a system call: only on the rare
// path of a deferred tick).
bool on_signal_stack() {
  stack_t altstack;
  return arch::raw_syscall(SYS_sigaltstack, nullptr, &altstack) == 0 && (altstack.ss_flags & SS_ONSTACK);
}

bool at_safe_point(Fiber* self, const ucontext_t* uc, uintptr_t frame) {
  if (self->in_call) return false;
  uintptr_t sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  // In a program's handler on its carrier's alternate signal stack (the frame holds the thread's
  // setting, not whether it was in use): switched out there, the fiber would leave its frames on
  // a stack the next handler on that carrier reuses, while it resumes on another carrier.
  uintptr_t altstack = reinterpret_cast<uintptr_t>(uc->uc_stack.ss_sp);
  if (!(uc->uc_stack.ss_flags & SS_DISABLE) && sp > altstack && sp - altstack <= uc->uc_stack.ss_size) return false;
  if (self->app_handler_sp) {
    if (sp < self->app_handler_sp) return false;
    self->app_handler_sp = 0;  // the program's handler was left by longjmp
  }
  if (!(frame < sp && sp - frame < kMaxSignalFrame)) return false;
  if (self->stack.lo && frame - reinterpret_cast<uintptr_t>(self->stack.lo) < kHeadroom) return false;
  return code_preemptible(static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]));
}

void switch_away(Fiber* self, Fiber* next) {
  ++self->preemptions;
  self->cpu_bound = true;
  self->quantum_cut = !self->carrier->quantum_over.exchange(false, std::memory_order_relaxed);
  self->carrier->preemptions.fetch_add(1, std::memory_order_relaxed);
  // The switch is the runtime's code, which a signal's handler must not interrupt (sched.h's
  // takes_signals_now); dumps show the fiber as preempted meanwhile.
  const char* outer = self->in_call;
  self->in_call = "(preempted)";
  switch_out(self, next, PostSwitch::kPreempted, nullptr, nullptr);
  self->in_call = outer;
}

}  // namespace

int configured_signal() {
  bool on = g_config.quantum > 0 && arch::switch_backend() == arch::SwitchBackend::kAssembly;
  return on ? g_config.preempt_signal : 0;
}

bool enabled() { return g_enabled; }
int tick_signal() { return g_enabled ? g_signal : 0; }
uint64_t ticks_sent() { return g_ticks_sent.load(std::memory_order_relaxed); }

void unblock_tick_signal() {
  if (g_config.quantum <= 0) return;
  uint64_t bit = uint64_t{1} << (g_config.preempt_signal - 1);
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &bit, nullptr, sizeof bit);
}

void start() {
  if (g_started) return;
  g_started = true;
  handoff::start();
  if (!configured_signal()) {
    monitor::start(0);  // hand-off only
    return;
  }
  g_signal = configured_signal();
  g_pid = static_cast<pid_t>(arch::raw_syscall(SYS_getpid));
  uintptr_t cookie = 0;
  if (arch::raw_syscall(SYS_getrandom, &cookie, sizeof cookie, 0) != sizeof cookie || cookie == 0) {
    cookie = static_cast<uintptr_t>(monotonic_now()) * 0x9e3779b97f4a7c15ull ^ reinterpret_cast<uintptr_t>(&cookie);
  }
  g_cookie = cookie;
  build_code_map();
  g_enabled = true;
  monitor::start(g_config.quantum);
}

bool is_tick(const siginfo_t* info) {
  return g_enabled && info && info->si_code == kTickCode && info->si_pid == g_pid &&
         reinterpret_cast<uintptr_t>(info->si_value.sival_ptr) == g_cookie;
}

void send_tick(int tid) {
  if (!g_enabled) return;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  info.si_signo = g_signal;
  info.si_code = kTickCode;
  info.si_pid = g_pid;
  info.si_uid = static_cast<uid_t>(arch::raw_syscall(SYS_getuid));
  info.si_value.sival_ptr = reinterpret_cast<void*>(g_cookie);
  g_ticks_sent.fetch_add(1, std::memory_order_relaxed);
  arch::raw_syscall(SYS_rt_tgsigqueueinfo, g_pid, tid, g_signal, &info);
}

void (*g_tick_hook)(Fiber*, bool) = nullptr;

void set_tick_hook(void (*hook)(Fiber* self, bool at_safe_point)) { g_tick_hook = hook; }

void interrupt_running(Fiber* target) {
  if (!g_enabled || state_of(target->sched_word.load(std::memory_order_acquire)) != FiberState::kRunning) return;
  Carrier* c = __atomic_load_n(&target->carrier, __ATOMIC_RELAXED);
  if (c && __atomic_load_n(&c->current, __ATOMIC_RELAXED) == target) send_tick(c->tid);
}

void on_tick(void* context) {
  int saved_errno = errno;
  auto* uc = static_cast<ucontext_t*>(context);
  Fiber* self = current();
  if (!self) return;  // carrier context: the scheduler is choosing anyway
  auto frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  Carrier* c = self->carrier;
  if (!at_safe_point(self, uc, frame)) {
    if (g_tick_hook) g_tick_hook(self, false);  // may unwind, from a cancellation point's system call
    self->preempt_pending.store(true, std::memory_order_relaxed);
    c->ticks_deferred.fetch_add(1, std::memory_order_relaxed);
    errno = saved_errno;
    return;
  }
  if (g_tick_hook) {
    errno = saved_errno;
    g_tick_hook(self, true);  // may unwind out of this handler (the tick handler is SA_NODEFER)
  }
  // A spare no longer needed (handoff.cc) switches to its loop, which retires it.
  bool retire = handoff::should_retire(c);
  Fiber* next = retire ? nullptr : pick_peer_or_better(c, self->next_priority.load(std::memory_order_relaxed));
  if (!next && !retire) next = take_preempted(self->next_priority.load(std::memory_order_relaxed));
  if (next || retire) {
    self->preempt_pending.store(false, std::memory_order_relaxed);
    switch_away(self, next);
    // Resumed, perhaps on another carrier: make rt_sigreturn restore this carrier's alternate
    // signal stack, not the one of the carrier we were interrupted on.
    stack_t altstack;
    if (arch::raw_syscall(SYS_sigaltstack, nullptr, &altstack) == 0) uc->uc_stack = altstack;
    // Still at the same safe point: what became due while it waited its turn (a cancel sent to a
    // preempted fiber finds it not running, so no tick of its own) is acted on now.
    if (g_tick_hook) {
      errno = saved_errno;
      g_tick_hook(self, true);
    }
  }
  sigdelset(&uc->uc_sigmask, g_signal);
  errno = saved_errno;
}

void take_pending(Fiber* self) {
  // Not from the program's handler for the tick signal: it may have interrupted libc. Nor from any
  // handler on the alternate signal stack (see at_safe_point); the tick waits for a later entry.
  if (self->app_handler_sp || on_signal_stack()) return;
  if (!self->preempt_pending.exchange(false, std::memory_order_relaxed)) return;
  Fiber* next = pick_peer_or_better(self->carrier, self->next_priority.load(std::memory_order_relaxed));
  if (!next) next = take_preempted(self->next_priority.load(std::memory_order_relaxed));
  if (next) switch_away(self, next);
}

// A fiber woken from a park does not wait for the end of the quantum of a CPU-bound fiber (one
// whose last dispatch was preempted) of its priority, nor for any lower-priority fiber: the carrier
// is ticked at once, as a kernel preempts a CPU hog for a task that wakes (the wake-up latency row
// of tools/bench went from ~11 ms to the tick's latency). Threads that only compute still get whole
// quanta among themselves.
void on_runnable(Carrier* target, Fiber* f) {
  if (!g_enabled) return;
  f->cpu_bound = false;
  Fiber* running = __atomic_load_n(&target->current, __ATOMIC_RELAXED);
  if (!running || !target->tid) return;
  // Not a carrier in a blocking call the shim wraps: the tick would end a poll() or select() with
  // EINTR, which the kernel never restarts once a handler ran. The hand-off takes care of it.
  if (target->blocking_since.load(std::memory_order_relaxed)) return;
  // Levels as set_priority() last set them: a running fiber's `priority` is the level it was
  // queued at, which pthread_setschedparam may have changed since.
  int level = f->next_priority.load(std::memory_order_relaxed);
  int running_level = running->next_priority.load(std::memory_order_relaxed);
  if (level > running_level) {
    send_tick(target->tid);
  } else if (level == running_level && running->cpu_bound) {
    // Once per dispatch: a burst of wake-ups would otherwise keep the hog from running at all.
    uint64_t dispatch = target->switches.load(std::memory_order_relaxed);
    if (target->boosted_dispatch.exchange(dispatch, std::memory_order_relaxed) != dispatch) send_tick(target->tid);
  }
}

uintptr_t begin_app_handler(Fiber* self, void* frame) {
  uintptr_t previous = self->app_handler_sp;
  self->app_handler_sp = reinterpret_cast<uintptr_t>(frame);
  return previous;
}

void end_app_handler(Fiber* self, uintptr_t previous) { self->app_handler_sp = previous; }

void refresh_code_map_if_stale() {
  if (!g_map_stale.exchange(false, std::memory_order_relaxed)) return;
  unsigned long long adds = 0;
  dl_iterate_phdr(read_adds, &adds);
  CodeMap* map = g_map.load(std::memory_order_acquire);
  if (map && map->adds == adds) {
    map->unknown_preemptible.store(true, std::memory_order_relaxed);
  } else {
    build_code_map();
  }
}

void after_fork_in_child() {
  // Every other fiber is gone, and another carrier may have held the lock at the fork.
  new (&g_preempted_lock) Spinlock();
  new (&g_preempted) RunQueue();
  g_preempted_count.store(0);
  if (!g_started) return;
  g_pid = static_cast<pid_t>(arch::raw_syscall(SYS_getpid));
  monitor::after_fork_in_child();
}

}  // namespace preempt

// ---- shared with scheduler.cc ------------------------------------------------------------------

// The queue of preempted fibers, shared by every carrier (Go's global run queue, which is where
// Go's preempted goroutines go too). A preempted fiber joins its tail, and a carrier whose own queue
// is empty takes from its head, so CPU-bound fibers are served in one FIFO whichever carrier frees
// up: each gets slices in turn, however unevenly the kernel shares the CPUs among the carriers
// (other processes' load). Rejected: requeueing on the least loaded carrier's queue. Fibers that
// land on the carrier the kernel favours are served faster, and the fairness test saw shares
// differ by 2x on a loaded two-CPU machine.
// A fiber whose quantum a woken fiber cut short goes to the head, to finish it next: otherwise
// the hogs that happen to run when others wake lose CPU to the rest.
void requeue_preempted(Fiber* f) {
  {
    SpinlockGuard hold(g_preempted_lock);
    if (f->quantum_cut) {
      g_preempted.push_front(f);
    } else {
      g_preempted.push_back(f);
    }
    g_preempted_count.store(g_preempted.size(), std::memory_order_relaxed);
  }
  // Pairs with the fence in idle_sleep(), as enqueue() does.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (any_carrier_idle()) wake_idle_carrier();
}

// A fiber whose dispatches overran the quantum by a whole quantum or more (cpu_debt, charged by
// the monitor, whose ticks come late when the kernel deschedules it) gives up its turn and goes
// back to the tail, one quantum repaid per turn skipped: deficit round robin, which keeps shares
// even however late the ticks were. Bounded: after a lap of the queue the head is taken anyway.
Fiber* take_preempted(int priority) {
  if (g_preempted_count.load(std::memory_order_relaxed) == 0) return nullptr;
  SpinlockGuard hold(g_preempted_lock);
  if (g_preempted.highest_level() < priority) return nullptr;
  Fiber* f = g_preempted.pop_highest();
  for (size_t lap = g_preempted.size(); lap > 0; --lap) {
    Nanos debt = f->cpu_debt.load(std::memory_order_relaxed);
    if (debt < g_config.quantum || f->priority < g_preempted.highest_level()) break;
    f->cpu_debt.store(debt - g_config.quantum, std::memory_order_relaxed);
    g_preempted.push_back(f);
    f = g_preempted.pop_highest();
  }
  g_preempted_count.store(g_preempted.size(), std::memory_order_relaxed);
  return f;
}

size_t preempted_queued() { return g_preempted_count.load(std::memory_order_relaxed); }

int preempted_top_priority() {
  if (g_preempted_count.load(std::memory_order_relaxed) == 0 || !g_preempted_lock.try_lock()) return -1;
  int top = g_preempted.highest_level();
  g_preempted_lock.unlock();
  return top;
}

Fiber* pick_peer_or_better(Carrier* c, int priority) {
  Nanos now;
  if (timers_due(c, &now)) fire_due_timers(c, now);
  if (c->queued.load(std::memory_order_relaxed) == 0) return nullptr;
  SpinlockGuard hold(c->queue_lock);
  if (c->queue.highest_level() < priority) return nullptr;
  Fiber* f = c->queue.pop_highest();
  c->queued.store(c->queue.size(), std::memory_order_relaxed);
  return f;
}

}  // namespace vthread::sched
