// The program's signal dispositions, owned by the runtime once it has started.
//
// Before the runtime starts, sigaction and signal go straight to glibc, so a program that never
// creates a thread pays nothing. When it starts (start_preemption, on the main fiber), the runtime
// takes over every signal but SIGKILL, SIGSTOP and glibc's own two (SIGCANCEL, SIGSETXID): the
// program's disposition of each is kept here, virtually, read by handlers on any thread through a
// sequence lock; sigaction/signal read and write it and return it as the old one. Handlers the
// program installed before are taken over the same way. The real disposition is then:
//   - the runtime's handler (signal_route.cc) for a signal the program catches, for the tick signal
//     (preemption ticks arrive as it, sched/preempt.h) and for SIGSEGV (stack-overflow reports,
//     sched/stack_overflow.h). It gives each instance to the fiber Linux would have given it to and
//     runs the program's handler there, with the same siginfo and ucontext, plain or SA_SIGINFO,
//     doing what the kernel would: sa_mask and the signal itself (unless SA_NODEFER) blocked in the
//     thread for the call, SA_RESETHAND. The runtime's handler itself runs with the signal blocked
//     in the kernel until rt_sigreturn, as any handler without SA_NODEFER, so that a stream of
//     instances is handled one after another rather than nested; but for the tick signal (whose
//     handler switches fibers and must leave the next one's mask alone, sched/preempt.cc).
//     SIGSEGV's blocks every signal until the handling has left the carrier's alternate stack. SA_RESTART, SA_NOCLDSTOP and SA_NOCLDWAIT are mirrored on
//     the real handler (under SIG_DFL/SIG_IGN it restarts, so that the tick signal's ticks never
//     interrupt a call). SA_ONSTACK is not: a carrier's alternate stack is shared by every fiber
//     it runs, and a handler may wait, which parks its fiber; the runtime's handler moves to the
//     thread's own alternate stack instead (altstack.cc). SIGSEGV's runtime handler alone always
//     starts on the carrier's, as the report of an overflowed stack needs, and then moves to the
//     fiber's stack unless that overflowed (signal_route.cc).
//   - SIG_IGN for SIG_IGN, and SIG_DFL for SIG_DFL where the default is to ignore: the kernel does
//     these best (nothing to deliver, no call interrupted).
//   - SIG_DFL of a signal that kills or stops: the kernel's, unless the runtime's handler was once
//     installed for the signal. The monitor thread leaves those unblocked (sched/signals.cc), where
//     SIG_DFL would kill the process for an instance every fiber blocks; so the handler stays, and
//     takes the default action itself (reset to SIG_DFL, raise again) once a fiber accepts one.
// Writers block every signal on their thread first, so a handler never spins on a write it
// interrupted.
//
// Not seen: glibc's sigset, sysv_signal and siginterrupt call glibc's internal sigaction, which sets
// the real disposition directly (the program's handler then runs wherever the kernel delivers).
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include <atomic>
#include <new>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/preempt.h"
#include "sched/spinlock.h"
#include "sched/stack_overflow.h"
#include "shim/entry.h"
#include "shim/signals.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

using arch::raw_syscall;

constexpr int kMaxSignal = 64;

std::atomic<bool> g_owned{false};  // the runtime owns the dispositions
int g_tick = 0;                    // the tick signal (0: preemption off)

sched::Spinlock g_app_lock;
std::atomic<uint32_t> g_app_seq{0};
struct sigaction g_app[kMaxSignal + 1];  // by signal number
// Under g_app_lock: the signals whose real disposition is the runtime's handler, and those it ever was.
uint64_t g_handled = 0;
uint64_t g_ever_handled = 0;

// siginterrupt's choices: signal() installs these without SA_RESTART.
std::atomic<uint64_t> g_interrupting{0};

void record_interrupting(int sig, bool interrupt) {
  if (sig < 1 || sig > kMaxSignal) return;
  if (interrupt) {
    g_interrupting.fetch_or(sig_bit(sig), std::memory_order_relaxed);
  } else {
    g_interrupting.fetch_and(~sig_bit(sig), std::memory_order_relaxed);
  }
}

bool owned(int sig) { return sig >= 1 && sig <= kMaxSignal && !(kUnblockable & sig_bit(sig)); }

uint64_t block_all() {
  uint64_t all = ~uint64_t{0}, old = 0;
  raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, &old, sizeof all);
  return old;
}

void restore_mask(uint64_t old) { raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old); }

bool wants_runtime_handler(int sig, const struct sigaction& app) {
  if (catches(app) || sig == g_tick || sig == SIGSEGV) return true;
  if (app.sa_handler == SIG_IGN || ignored_by_default(sig)) return false;
  return g_ever_handled & sig_bit(sig);
}

// Sets the real disposition of `sig` for the program's `app`. g_app_lock held, signals blocked.
void install_real(int sig, const struct sigaction& app) {
  uint64_t bit = sig_bit(sig);
  uint64_t handled = g_handled;
  if (!wants_runtime_handler(sig, app)) {
    libc::sigaction(sig, &app, nullptr);
    handled &= ~bit;
  } else {
    struct sigaction ours;
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_signal;
    ours.sa_flags = SA_SIGINFO;
    if (!catches(app) || (app.sa_flags & SA_RESTART)) ours.sa_flags |= SA_RESTART;
    if (sig == SIGCHLD) ours.sa_flags |= app.sa_flags & (SA_NOCLDSTOP | SA_NOCLDWAIT);
    if (sig == SIGSEGV) ours.sa_flags |= SA_ONSTACK;
    sigemptyset(&ours.sa_mask);
    if (sig == SIGSEGV) {
      // Nothing else may run on the carrier's alternate stack before the frame moves off it
      // (signal_route.cc); a fault in the handler itself then kills at once. But ticks: their
      // handler does not switch there (sched/preempt.cc), and held back they would be taken
      // later for the program's own instances of the signal.
      sigfillset(&ours.sa_mask);
      if (g_tick) sigdelset(&ours.sa_mask, g_tick);
    } else if (blocked_while_handled(sig)) {
      sigaddset(&ours.sa_mask, sig);
    } else {
      ours.sa_flags |= SA_NODEFER;
    }
    libc::sigaction(sig, &ours, nullptr);
    handled |= bit;
    g_ever_handled |= bit;
  }
  if (handled != g_handled) {
    g_handled = handled;
    sched::set_routed_signals(handled);
  }
}

// Replaces the program's disposition of `sig` (if `action`) and the real one; returns the old one.
struct sigaction write_app(int sig, const struct sigaction* action) {
  uint64_t old_mask = block_all();
  struct sigaction previous;
  {
    sched::SpinlockGuard hold(g_app_lock);
    previous = g_app[sig];
    if (action) {
      g_app_seq.fetch_add(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      memcpy(&g_app[sig], action, sizeof g_app[sig]);
      g_app_seq.fetch_add(1, std::memory_order_release);
      install_real(sig, *action);
    }
  }
  restore_mask(old_mask);
  return previous;
}

// Reads every disposition the program set before the runtime started, and installs the runtime's
// handler where it wants it.
void take_over_dispositions() {
  uint64_t old_mask = block_all();
  {
    sched::SpinlockGuard hold(g_app_lock);
    for (int sig = 1; sig <= kMaxSignal; ++sig) {
      if (!owned(sig)) continue;
      // sched::start() already put its SIGSEGV handler in place of the program's.
      if (sig == SIGSEGV) {
        g_app[sig] = sched::stack_overflow::program_action();
      } else {
        libc::sigaction(sig, nullptr, &g_app[sig]);
      }
      if (wants_runtime_handler(sig, g_app[sig])) install_real(sig, g_app[sig]);
    }
  }
  g_owned.store(true, std::memory_order_release);
  restore_mask(old_mask);
}

}  // namespace

bool blocked_while_handled(int sig) { return sig != g_tick; }

struct sigaction program_action(int sig) {
  struct sigaction copy;
  for (;;) {
    uint32_t before = g_app_seq.load(std::memory_order_acquire);
    if (before & 1) {
      sched::cpu_relax();
      continue;
    }
    memcpy(&copy, &g_app[sig], sizeof copy);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_app_seq.load(std::memory_order_relaxed) == before) return copy;
  }
}

void reset_to_default(int sig) {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  write_app(sig, &dfl);
}

void reinstall_real_disposition(int sig) {
  uint64_t old_mask = block_all();
  {
    sched::SpinlockGuard hold(g_app_lock);
    install_real(sig, g_app[sig]);
  }
  restore_mask(old_mask);
}

uint64_t tick_signal_bit() { return g_owned.load(std::memory_order_acquire) && g_tick ? sig_bit(g_tick) : 0; }

void reset_signals_after_fork() {
  // Another thread may have been writing a disposition (odd sequence, lock held) at the fork.
  new (&g_app_lock) sched::Spinlock();
  g_app_seq.store(g_app_seq.load(std::memory_order_relaxed) & ~1u, std::memory_order_relaxed);
  sched::reset_signals_after_fork();
  reset_routing_after_fork();
}

// Called once the runtime has started, on the thread that started it (the main fiber).
void start_preemption() {
  if (g_owned.load(std::memory_order_acquire)) return;
  g_tick = sched::preempt::configured_signal();
  sched::Fiber* self = sched::current();
  set_main_fiber_for_signals(self);
  sched::set_signal_router(route_process_signals);
  take_over_dispositions();
  if (self) {
    sched::count_signal_mask(self);
    // The program may have blocked the tick signal before it made its first thread: that is now
    // the fiber's wish (set_signal_mask keeps it aside), and the carrier lets ticks through.
    sched::set_signal_mask(self, self->sigmask);
  }
  sched::preempt::start();
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int sigaction(int sig, const struct sigaction* action, struct sigaction* old_action) {
  ShimEntry entry("sigaction");
  if (!shim::g_owned.load(std::memory_order_acquire) || !shim::owned(sig)) {
    return libc::sigaction(sig, action, old_action);
  }
  struct sigaction previous = shim::write_app(sig, action);
  if (old_action) *old_action = previous;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  ShimEntry entry("signal");
  if (!shim::g_owned.load(std::memory_order_acquire) || !shim::owned(sig)) return libc::signal(sig, handler);
  if (handler == SIG_ERR) {
    errno = EINVAL;
    return SIG_ERR;
  }
  // glibc's signal() has BSD semantics: restarting (unless siginterrupt said otherwise), the signal
  // blocked in its own handler.
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = shim::g_interrupting.load(std::memory_order_relaxed) & shim::sig_bit(sig) ? 0 : SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, sig);
  return shim::write_app(sig, &action).sa_handler;
}

// glibc's also records the choice for later signal() calls (its _sigintr), which glibc's signal()
// reads before the runtime starts and ours after: both are kept.
int siginterrupt(int sig, int interrupt) {
  ShimEntry entry("siginterrupt");
  if (!shim::g_owned.load(std::memory_order_acquire) || !shim::owned(sig)) {
    int r = libc::siginterrupt(sig, interrupt);
    if (r == 0) shim::record_interrupting(sig, interrupt);
    return r;
  }
  shim::record_interrupting(sig, interrupt);
  struct sigaction action = shim::write_app(sig, nullptr);
  if (interrupt) {
    action.sa_flags &= ~SA_RESTART;
  } else {
    action.sa_flags |= SA_RESTART;
  }
  shim::write_app(sig, &action);
  return 0;
}

}  // extern "C"
