// The runtime's handler for every signal the program catches (installed by sigaction.cc), and the
// router that gives process-directed signals to fibers.
//
// Where an instance goes. The kernel hands a signal to a carrier thread whose running fiber does
// not block it (a carrier's mask is its fiber's), or to an idle carrier; one that every running
// fiber blocks and a parked one accepts, the monitor thread takes from the kernel for the process
// (sched/signals.cc). The handler sorts what it is given as Linux would have:
//   - For the fiber running here: a synchronous fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
//     SIGSYS with si_code > 0); the runtime raising one of the fiber's pending signals
//     (sched::take_delivering_mark); a tgkill from within the process (raise(), which glibc sends to
//     the carrier's thread id); SIGPIPE and SIGXFSZ from the kernel (SI_USER and our own pid: it
//     sends them to the writing thread); SIGPROF and SIGVTALRM of CPU-time timers, which the kernel
//     charges to the thread it found running (where no fiber runs they are handled there: a
//     spinning idle carrier uses CPU time too). If the fiber blocks it, it stays pending on the fiber.
//   - Anything else is process-directed: Linux gives it to the main thread unless that blocks it,
//     else to a thread that does not block it, or waits for it in sigwait. So the fiber running here
//     takes it if it is the main fiber and accepts it, or if the main fiber does not and it does.
//     Otherwise (the main fiber is elsewhere, no fiber runs here, or this one blocks it) it is held
//     for the process (sched::hold_signal_for_process) and the router gives it to a fiber. One
//     exception: a main fiber parked at a wait that signals do not end (one the runtime makes for
//     itself) would run the handler only when woken, perhaps by a thread that waits for what the
//     handler does; the signal then goes to another fiber that accepts it, if there is one.
// On a thread glibc made itself (neither a fiber nor the runtime's), the kernel's choice stands.
//
// Running the disposition in a fiber. SIG_IGN drops the instance (the runtime's handler only sees
// ignored signals that were pending when the program ignored them). SIG_DFL takes the default
// action: nothing for those ignored by default, else the real disposition is reset to SIG_DFL and
// the signal raised again on this thread (a fault instead returns to the faulting instruction,
// so that the core shows it), and if the process was only stopped, the runtime's handler goes back
// when it is continued. A handler is called on the fiber's stack, with the fiber's own mask
// extended by sa_mask and the signal for the call (so the mask follows the fiber if the handler
// waits or is preempted, and an instance arriving meanwhile goes to another fiber or waits, as for
// a thread), and counted in ThreadState::handlers_run; with SA_ONSTACK, on the alternate stack the
// thread set (altstack.cc), which is its own. Then the fiber's mask is restored (or set to
// the uc_sigmask the handler wrote, which the kernel would honour), and rt_sigreturn is made to
// install that mask and the alternate stack of the carrier the fiber is on now.
//
// The router runs on the monitor thread, outside any signal handler, so it may take the locks that
// ending a park needs. For each signal pending for the process it picks the main fiber if that
// accepts it, else the first fiber in the fiber table that does (either time preferring one that is
// not parked at a wait signals do not end); if none does, the signal stays pending until one
// unblocks it or waits for it (sched/signals.cc). A default action that ends or stops the process
// is taken at once, on the monitor thread, as the kernel takes it when a thread accepts the signal.
// Otherwise the fiber gets it as from pthread_kill, with its siginfo: a sigwait for it wakes; an
// interruptible wait (the sleeps, the semaphore waits, pause, sigsuspend, mutex locks, joins,
// condition waits) ends so that the handler runs as the fiber resumes; a fiber running program code
// or blocked in a system call is kicked on its carrier's thread and runs it there at once
// (sched::hurry_signal); a runnable fiber runs it when next dispatched. Until the fiber took the
// signal, the router looks at it again every monitor period.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "arch/call_on_stack.h"
#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/parking_lot.h"
#include "sched/preempt.h"
#include "sched/stack_overflow.h"
#include "shim/cancel.h"
#include "shim/signals.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

using arch::raw_syscall;

constexpr int kMaxSignal = 64;

sched::Fiber* g_main = nullptr;
// The router's (monitor thread only): per signal, a fiber it gave the signal to and must hurry.
sched::Fiber* g_watched[kMaxSignal + 1];

bool synchronous_fault(int sig, const siginfo_t* info) {
  bool fault_signal = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS;
  return fault_signal && info->si_code > 0;
}

// A sample of a CPU-time timer, for the thread that was running.
bool cpu_time_sample(int sig, const siginfo_t* info) {
  return (sig == SIGPROF || sig == SIGVTALRM) && (info->si_code == SI_KERNEL || info->si_code == SI_TIMER);
}

// Sent by the process to the thread that runs here: raise(), and the kernel's SIGPIPE and SIGXFSZ.
bool sent_to_this_thread(int sig, const siginfo_t* info) {
  bool from_us = info->si_pid == static_cast<pid_t>(raw_syscall(SYS_getpid));
  if (info->si_code == SI_TKILL && from_us) return true;
  return (sig == SIGPIPE || sig == SIGXFSZ) && info->si_code == SI_USER && from_us;
}

bool alive(const sched::Fiber* f) {
  sched::FiberState state = sched::state_of(f->sched_word.load(std::memory_order_acquire));
  return f->magic == sched::kFiberMagic && state != sched::FiberState::kFree && state != sched::FiberState::kExited;
}

// The main fiber while it lives (its record may be reused by a fiber that is not the main one).
sched::Fiber* main_fiber() { return g_main && g_main->is_main && alive(g_main) ? g_main : nullptr; }

bool waits_for(const sched::Fiber* f, int sig) { return f->sigwait_set.load(std::memory_order_seq_cst) & sig_bit(sig); }

// Whether Linux would give `f` a process-directed `sig`: it does not block it, or waits for it.
bool accepts(const sched::Fiber* f, int sig) { return !(sched::blocked_signals(f) & sig_bit(sig)) || waits_for(f, sig); }

// Whether `f` would take `sig` soon: it waits for it, or is not parked at a wait signals do not end.
bool reachable(const sched::Fiber* f, int sig) { return waits_for(f, sig) || signals_end_wait(f); }

void invoke(const struct sigaction& app, int sig, siginfo_t* info, void* context) {
  if (app.sa_flags & SA_SIGINFO) {
    app.sa_sigaction(sig, info, context);
  } else {
    app.sa_handler(sig);
  }
}

struct Invocation {
  const struct sigaction* app;
  int sig;
  siginfo_t* info;
  void* context;
};

void invoke_as_planned(void* planned) {
  auto* call = static_cast<Invocation*>(planned);
  invoke(*call->app, call->sig, call->info, call->context);
}

// Faults that recur when the faulting instruction runs again.
bool refaults(int sig) { return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL; }

void take_default_action(int sig, bool fault) {
  if (ignored_by_default(sig)) return;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  libc::sigaction(sig, &dfl, nullptr);
  if (fault && refaults(sig)) return;
  uint64_t bit = sig_bit(sig), old = 0;
  raw_syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &bit, &old, sizeof bit);
  raw_syscall(SYS_tgkill, raw_syscall(SYS_getpid), raw_syscall(SYS_gettid), sig);
  // Still alive: the default action stopped us, and we were continued.
  raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
  reinstall_real_disposition(sig);
}

// The program's handler in fiber `self`, as described at the top.
void call_in_fiber(sched::Fiber* self, uint64_t block, const struct sigaction& app, int sig, siginfo_t* info,
                   void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  uint64_t before = thread_mask(self);
  uint64_t uc_before = low_word(&uc->uc_sigmask);
  set_thread_mask(self, before | block);
  if (auto* state = static_cast<ThreadState*>(self->user_data)) {
    ++state->handlers_run;
    state->handler_restarts = app.sa_flags & SA_RESTART;
  }
  // The tick signal's handler is never preempted (sched/preempt.h); others may be, like any code.
  bool tick = sig == sched::preempt::tick_signal();
  uintptr_t outer = tick ? sched::preempt::begin_app_handler(self, __builtin_frame_address(0)) : 0;
  // On the thread's alternate stack if it asked (not the tick signal's: begin_app_handler marks
  // the handler's frames by their place on the fiber's stack).
  Invocation call = {&app, sig, info, context};
  sched::ProgramHandlerScope outer_scope = sched::enter_program_handler(self);
  call_program_handler(self, (app.sa_flags & SA_ONSTACK) && !tick, uc, invoke_as_planned, &call);
  sched::leave_program_handler(self, outer_scope);
  if (tick) sched::preempt::end_app_handler(self, outer);
  // The kernel lets a handler choose the mask its thread returns to by editing uc_sigmask.
  uint64_t uc_after = low_word(&uc->uc_sigmask);
  uint64_t restored = uc_after == uc_before ? before : (uc_after & ~kUnblockable) | (before & tick_signal_bit());
  // As the kernel does it: what the call blocked stays blocked until rt_sigreturn pops this frame,
  // so instances that came meanwhile run one after another, not nested in it (a stream of them
  // would grow the stack without bound).
  sched::set_signal_mask_at_return(self, restored, block);
  // (dispatch() puts the fiber's mask, and its carrier's alternate stack, in the ucontext.)
}

// Runs the program's disposition of `sig` on this thread, in fiber `self` if it is one.
void act(sched::Fiber* self, int sig, siginfo_t* info, void* context) {
  struct sigaction app = program_action(sig);
  bool fault = synchronous_fault(sig, info);
  if (!catches(app)) {
    // (A fault cannot be ignored: the kernel kills for it.)
    if (app.sa_handler != SIG_IGN || fault) take_default_action(sig, fault);
    return;
  }
  if (app.sa_flags & SA_RESETHAND) reset_to_default(sig);
  uint64_t block = (low_word(&app.sa_mask) | ((app.sa_flags & SA_NODEFER) ? 0 : sig_bit(sig))) & ~kUnblockable;
  if (self) {
    call_in_fiber(self, block, app, sig, info, context);
    return;
  }
  uint64_t old = 0;
  raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, &block, &old, sizeof block);
  invoke(app, sig, info, context);
  raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, sizeof old);
}

// Whether the fiber running here takes this process-directed instance. Not inside the runtime, nor
// on its way to a park (a wait the handler should end): then the router gives it to a fiber.
bool taken_here(sched::Fiber* self, int sig) {
  sched::Fiber* main = main_fiber();
  if (main && main != self && accepts(main, sig) && reachable(main, sig)) return false;
  return !(sched::blocked_signals(self) & sig_bit(sig)) && sched::takes_signals_now(self);
}

// ---- the router ----

// The fiber to give a process-directed `sig` to, or nullptr: the one Linux would choose, unless it
// is parked at a wait that signals do not end and another could run the handler now.
sched::Fiber* choose_fiber(int sig) {
  sched::Fiber* main = main_fiber();
  if (main && accepts(main, sig) && reachable(main, sig)) return main;
  sched::Fiber* now = nullptr;
  sched::Fiber* later = main && accepts(main, sig) ? main : nullptr;
  sched::FiberTable::for_each([&](sched::Fiber* f) {
    if (now || f == main || !alive(f) || !accepts(f, sig)) return;
    if (reachable(f, sig)) {
      now = f;
    } else if (!later) {
      later = f;
    }
  });
  return now ? now : later;
}

void route(int sig) {
  sched::Fiber* target = choose_fiber(sig);
  if (!target) return;  // pending until a fiber unblocks it or waits for it
  bool waits = waits_for(target, sig);
  struct sigaction app = program_action(sig);
  if (!waits && !catches(app)) {
    if (!sched::take_process_signal(sig)) return;
    if (app.sa_handler != SIG_IGN) take_default_action(sig, false);
    return;
  }
  if (!sched::give_process_signal(sig, target)) return;  // a fiber took it meanwhile
  if (waits) {
    sched::parking_lot::unpark_all(&target->pending_signals);
    return;
  }
  if (interrupts_waits(sig)) interrupt_park_for_signal(target);
  sched::hurry_signal(target, sig);
  g_watched[sig] = target;
}

// Hurries the fibers given a signal that have not taken it yet. Returns true while any is left.
bool hurry_watched() {
  bool left = false;
  for (int sig = 1; sig <= kMaxSignal; ++sig) {
    sched::Fiber* f = g_watched[sig];
    if (!f) continue;
    bool waiting = alive(f) && (f->pending_signals.load(std::memory_order_acquire) & sig_bit(sig)) &&
                   !(sched::blocked_signals(f) & sig_bit(sig));
    if (!waiting) {
      g_watched[sig] = nullptr;  // taken; or blocked now, to be taken when it unblocks it
      continue;
    }
    sched::hurry_signal(f, sig);  // (a kick may find it gone from program code: kick again)
    left = true;
  }
  return left;
}


// Everything on_signal does but for the tick and SIGSEGV's first steps.
void dispatch(int sig, siginfo_t* info, void* context) {
  int saved_errno = errno;
  sched::Fiber* self = sched::current();
  const void* entered_on = self ? self->carrier : nullptr;
  // The kernel blocked the signal on this thread until rt_sigreturn (sigaction.cc): the carrier's
  // mask says so until then, so that a fiber switched in meanwhile gets its own applied, and a
  // raise of the signal here is known to wait for this frame to be popped (sched::raise_here).
  if (self && blocked_while_handled(sig)) {
    sched::enter_signal_handler(self, sig == SIGSEGV ? ~uint64_t{0} : sig_bit(sig));
  }
  bool here = synchronous_fault(sig, info) || cpu_time_sample(sig, info);
  if (sched::take_kick(self, info)) {
    // (taken: it raised the fiber's pending signals)
  } else if (!self) {
    if (here || !sched::on_runtime_thread()) {
      act(nullptr, sig, info, context);
    } else {
      sched::hold_signal_for_process(sig, info);  // an idle carrier, or the monitor
    }
  } else if (sched::take_delivering_mark(self, sig) || here || sent_to_this_thread(sig, info)) {
    if ((sched::blocked_signals(self) & sig_bit(sig)) && !synchronous_fault(sig, info)) {
      sched::post_signal(self, sig, info);  // the program blocked it in this thread: it waits here
    } else if (here && !sched::takes_signals_now(self)) {
      // A sample or fault inside the runtime (a profiler's SIGPROF, say): the handler runs as on
      // a thread that is no fiber, so that no other signal's handler is raised in runtime code.
      act(nullptr, sig, info, context);
    } else {
      act(self, sig, info, context);
    }
  } else if (taken_here(self, sig)) {
    act(self, sig, info, context);
  } else {
    sched::hold_signal_for_process(sig, info);
  }
  if (self) sched::leave_signal_handler(self, static_cast<ucontext_t*>(context), entered_on);
  errno = saved_errno;
}

// SIGSEGV is delivered on the carrier's alternate stack (sigaction.cc), which every fiber of the
// carrier shares: a handler of the program that waited there (for a lock, say) would have its
// frames overwritten by the next fault of another fiber on that carrier. So unless the fiber's
// own stack has overflowed, the kernel's frame is copied to the fiber's stack, just below the
// interrupted stack pointer and its red zone (where the kernel puts a frame for a handler without
// SA_ONSTACK), and the handling goes on there as if the kernel had put it there (its return runs
// rt_sigreturn on the copy, and unwinding walks from it into the faulting code). The frame
// is the restorer's return address, the ucontext, the siginfo and, 64-byte aligned above them,
// the FPU/XSAVE state that uc_mcontext.fpregs points to (its size is in the XSAVE software
// bytes); the copy keeps the alignment, and its fpregs is pointed at its own state.
constexpr size_t kRoomForHandler = 32 * 1024;  // left below the copy, else it stays where it is
constexpr uint32_t kXstateMagic = 0x46505853;   // FP_XSTATE_MAGIC1
constexpr size_t kFxsaveSize = 512;
constexpr size_t kSwBytesOffset = 464;          // struct _fpx_sw_bytes within the FXSAVE area

struct MovedSignal {
  int sig;
  siginfo_t* info;
  ucontext_t* uc;
};

void handle_moved(void* arg) {
  MovedSignal moved = *static_cast<MovedSignal*>(arg);  // (it lives on the stack left behind)
  dispatch(moved.sig, moved.info, moved.uc);
}

bool on_signal_stack() {
  stack_t now;
  return raw_syscall(SYS_sigaltstack, nullptr, &now) == 0 && (now.ss_flags & SS_ONSTACK);
}

// Returns only if the frame stays where it is.
void move_frame_to_fiber_stack(sched::Fiber* self, int sig, siginfo_t* info, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  char* frame = static_cast<char*>(context) - sizeof(void*);
  auto* fp = reinterpret_cast<char*>(uc->uc_mcontext.fpregs);
  if (!fp || fp < frame || reinterpret_cast<char*>(info) < frame || reinterpret_cast<char*>(info) >= fp) return;
  uint32_t magic, extended;
  memcpy(&magic, fp + kSwBytesOffset, sizeof magic);
  memcpy(&extended, fp + kSwBytesOffset + sizeof magic, sizeof extended);
  size_t fp_size = magic == kXstateMagic && extended >= kFxsaveSize ? extended : kFxsaveSize;
  auto sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  if (!self->stack.lo || !self->stack.contains(reinterpret_cast<void*>(sp))) return;
  uintptr_t fp_copy = (sp - 128 - fp_size) & ~uintptr_t{63};
  uintptr_t copy = fp_copy - static_cast<uintptr_t>(fp - frame);
  if (copy < reinterpret_cast<uintptr_t>(self->stack.lo) + kRoomForHandler) return;
  memcpy(reinterpret_cast<void*>(copy), frame, static_cast<size_t>(fp - frame) + fp_size);
  MovedSignal moved;
  moved.sig = sig;
  moved.info = reinterpret_cast<siginfo_t*>(copy + static_cast<uintptr_t>(reinterpret_cast<char*>(info) - frame));
  moved.uc = reinterpret_cast<ucontext_t*>(copy + sizeof(void*));
  moved.uc->uc_mcontext.fpregs = reinterpret_cast<fpregset_t>(fp_copy);
  arch::enter_handler(handle_moved, &moved, reinterpret_cast<void*>(copy));
}

}  // namespace

void on_signal(int sig, siginfo_t* info, void* context) {
  if (sched::preempt::is_tick(info)) {
    sched::preempt::on_tick(context);
    return;
  }
  if (sig == SIGSEGV) {
    int saved_errno = errno;
    sched::stack_overflow::report_if_overflowed(info);
    sched::Fiber* self = sched::current();
    bool move = self && on_signal_stack();
    errno = saved_errno;
    if (move) move_frame_to_fiber_stack(self, sig, info, context);
  }
  dispatch(sig, info, context);
}

bool route_process_signals() {
  uint64_t pending = sched::process_pending_signals();
  for (int sig = 1; pending; ++sig, pending >>= 1) {
    if (pending & 1) route(sig);
  }
  return hurry_watched();
}

void set_main_fiber_for_signals(sched::Fiber* main) { g_main = main; }

void reset_routing_after_fork() {
  for (sched::Fiber*& f : g_watched) f = nullptr;
}

}  // namespace vthread::shim
