// The tick signal, shared with the program. Preemption ticks (sched/preempt.h) arrive as the
// program's own signal (SIGALRM unless VTHREAD_PREEMPT_SIGNAL names another), so once the runtime
// starts, the signal's real disposition is always the runtime's handler, and the program's
// disposition is kept here, virtually:
//   - sigaction/signal on the tick signal read and write the virtual disposition (and return it as
//     the old one); the real handler stays. Before the runtime starts they go straight to glibc, so
//     a program that never creates a thread pays nothing.
//   - The handler hands ticks to the runtime and every other instance to the program as the kernel
//     would have: SIG_IGN ignores it, SIG_DFL takes the default action (for SIGALRM, death by the
//     signal: the real disposition is reset and the signal re-raised), a handler is called with
//     the same siginfo and ucontext, plain or SA_SIGINFO, with its sa_mask blocked for the call,
//     SA_RESETHAND honoured, and another instance arriving during the call held back (unless
//     SA_NODEFER) and delivered when it returns. SA_RESTART is mirrored on the real handler, so
//     the program's slow calls are interrupted or restarted as it asked (ticks never reach a
//     carrier in the shim's blocking calls; a tick in another slow call restarts it under the
//     default). SA_ONSTACK is not: the handler must run on the fiber's stack to switch fibers, so
//     the program's handler for this one signal runs there too.
//   - sigprocmask/pthread_sigmask (signal.cc) never block the tick signal on a carrier (that would
//     stop preemption there); whether the program asked to is remembered per fiber
//     (Fiber::app_blocks_tick) and reported back in the old mask. An instance of the program's
//     signal that arrives while the running fiber "blocks" it is held back and delivered when that
//     fiber unblocks it (tick_signal_unblocked).
// Standard signals do not queue, so one held-back instance is all a thread could have pending.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/preempt.h"
#include "sched/spinlock.h"
#include "shim/entry.h"

namespace vthread::shim {
namespace {

using arch::raw_syscall;

int g_sig = 0;                             // the tick signal, once the runtime's handler is installed
std::atomic<bool> g_installed{false};

// The program's disposition, read by handlers on any carrier through a sequence lock. Writers
// block the signal on their own thread first, so a handler never spins on a write it interrupted.
sched::Spinlock g_app_lock;
std::atomic<uint32_t> g_app_seq{0};
struct sigaction g_app;

// One instance of the program's signal it could not take yet (0 empty, 1 busy, 2 full).
std::atomic<int> g_held_state{0};
siginfo_t g_held;

uint64_t sig_bit(int sig) { return uint64_t{1} << (sig - 1); }

// Blocks or unblocks only the tick signal on this thread; returns the previous kernel mask.
uint64_t mask_tick(int how) {
  uint64_t bit = sig_bit(g_sig), old = 0;
  raw_syscall(SYS_rt_sigprocmask, how, &bit, &old, sizeof bit);
  return old;
}

void restore_mask(uint64_t old) { raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old); }

struct sigaction read_app() {
  struct sigaction copy;
  for (;;) {
    uint32_t before = g_app_seq.load(std::memory_order_acquire);
    if (before & 1) {
      sched::cpu_relax();
      continue;
    }
    memcpy(&copy, &g_app, sizeof copy);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_app_seq.load(std::memory_order_relaxed) == before) return copy;
  }
}

// Replaces the virtual disposition; returns the previous one.
struct sigaction write_app(const struct sigaction* action) {
  uint64_t old_mask = mask_tick(SIG_BLOCK);
  struct sigaction previous;
  {
    sched::SpinlockGuard hold(g_app_lock);
    previous = g_app;
    if (action) {
      g_app_seq.fetch_add(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      memcpy(&g_app, action, sizeof g_app);
      g_app_seq.fetch_add(1, std::memory_order_release);
    }
  }
  restore_mask(old_mask);
  return previous;
}

void on_signal(int sig, siginfo_t* info, void* context);

// (Re)installs the runtime's handler, restarting slow calls as the program's handler asks (ticks
// alone, under SIG_DFL/SIG_IGN, must always restart them).
void install_runtime_handler(const struct sigaction& app) {
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = on_signal;
  bool no_handler = !(app.sa_flags & SA_SIGINFO) && (app.sa_handler == SIG_DFL || app.sa_handler == SIG_IGN);
  ours.sa_flags = SA_SIGINFO | SA_NODEFER | (no_handler || (app.sa_flags & SA_RESTART) ? SA_RESTART : 0);
  sigemptyset(&ours.sa_mask);
  libc::sigaction(g_sig, &ours, nullptr);
}

void hold_back(const siginfo_t* info) {
  int expected = 0;
  if (!g_held_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;  // coalesces
  g_held = *info;
  g_held_state.store(2, std::memory_order_release);
}

// Delivers a held-back instance to the calling thread, with its original siginfo (the kernel lets a
// process queue any si_code to its own threads).
void release_held() {
  int expected = 2;
  if (!g_held_state.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
  siginfo_t info = g_held;
  g_held_state.store(0, std::memory_order_release);
  raw_syscall(SYS_rt_tgsigqueueinfo, raw_syscall(SYS_getpid), raw_syscall(SYS_gettid), g_sig, &info);
}

bool ignored_by_default(int sig) { return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT; }

// The default action, as if the runtime had never installed a handler.
void default_action(int sig) {
  if (ignored_by_default(sig)) return;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  libc::sigaction(sig, &dfl, nullptr);
  uint64_t old = mask_tick(SIG_UNBLOCK);
  raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid), raw_syscall(SYS_gettid), sig);
  // Still alive (the default action stopped and continued us): take the signal back.
  restore_mask(old);
  install_runtime_handler(read_app());
}

void to_program(int sig, siginfo_t* info, void* context) {
  struct sigaction app = read_app();
  if (!(app.sa_flags & SA_SIGINFO) && app.sa_handler == SIG_IGN) return;
  sched::Fiber* self = sched::current();
  void* frame = __builtin_frame_address(0);
  bool in_handler = self && self->app_handler_sp && reinterpret_cast<uintptr_t>(frame) < self->app_handler_sp;
  if ((self && self->app_blocks_tick) || (in_handler && !(app.sa_flags & SA_NODEFER))) {
    hold_back(info);
    return;
  }
  if (!(app.sa_flags & SA_SIGINFO) && app.sa_handler == SIG_DFL) {
    default_action(sig);
    return;
  }
  if (app.sa_flags & SA_RESETHAND) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    write_app(&dfl);
  }
  sigset_t block = app.sa_mask;
  sigdelset(&block, sig);
  sigset_t old;
  bool masked = !sigisemptyset(&block);
  if (masked) raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old, sizeof(uint64_t));
  uintptr_t outer = self ? sched::preempt::begin_app_handler(self, frame) : 0;
  if (app.sa_flags & SA_SIGINFO) {
    app.sa_sigaction(sig, info, context);
  } else {
    app.sa_handler(sig);
  }
  if (self) sched::preempt::end_app_handler(self, outer);
  if (masked) raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof(uint64_t));
  if (!self || !self->app_blocks_tick) release_held();
}

void on_signal(int sig, siginfo_t* info, void* context) {
  if (sched::preempt::is_tick(info)) {
    sched::preempt::on_tick(context);
    return;
  }
  to_program(sig, info, context);
}

}  // namespace

uint64_t tick_signal_bit() { return g_installed.load(std::memory_order_acquire) ? sig_bit(g_sig) : 0; }

void tick_signal_unblocked() { release_held(); }

void reset_tick_signal_after_fork() {
  // Another thread may have been writing the disposition (odd sequence, lock held) or holding
  // back an instance (state 1) at the fork.
  new (&g_app_lock) sched::Spinlock();
  g_app_seq.store(g_app_seq.load(std::memory_order_relaxed) & ~1u, std::memory_order_relaxed);
  int busy = 1;
  g_held_state.compare_exchange_strong(busy, 0, std::memory_order_relaxed);
}

// Called once the runtime has started, on the thread that started it (the main fiber).
void start_preemption() {
  int sig = sched::preempt::configured_signal();
  if (g_installed.load(std::memory_order_acquire)) return;
  if (!sig) {
    sched::preempt::start();  // no ticks, but the monitor still hands off blocked carriers
    return;
  }
  g_sig = sig;
  uint64_t before = mask_tick(SIG_BLOCK);
  libc::sigaction(sig, nullptr, &g_app);
  install_runtime_handler(g_app);
  g_installed.store(true, std::memory_order_release);
  // The program may have blocked the signal before it made its first thread.
  if (sched::Fiber* self = sched::current()) {
    self->app_blocks_tick = before & sig_bit(sig);
    self->sigmask &= ~sig_bit(sig);  // its mask as the carriers apply it
  }
  restore_mask(before & ~sig_bit(sig));
  sched::preempt::start();
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int sigaction(int sig, const struct sigaction* action, struct sigaction* old_action) {
  ShimEntry entry("sigaction");
  if (!shim::g_installed.load(std::memory_order_acquire) || sig != shim::g_sig) {
    return libc::sigaction(sig, action, old_action);
  }
  struct sigaction previous = shim::write_app(action);
  if (action) shim::install_runtime_handler(*action);
  if (old_action) *old_action = previous;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  ShimEntry entry("signal");
  if (!shim::g_installed.load(std::memory_order_acquire) || sig != shim::g_sig) return libc::signal(sig, handler);
  // glibc's signal() has BSD semantics: restarting, the signal blocked in its own handler.
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, sig);
  struct sigaction previous = shim::write_app(&action);
  shim::install_runtime_handler(action);
  return previous.sa_handler;
}

}  // extern "C"
