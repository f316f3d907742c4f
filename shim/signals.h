// What the shim's signal files share: sigaction.cc keeps the program's dispositions, signal_route.cc
// is the runtime's handler and the router of process-directed signals, signal.cc has masks and
// the waits (pthread_kill, sigprocmask, the sigwait family, sigsuspend, pause, sigpending).
#ifndef VTHREAD_SHIM_SIGNALS_H_
#define VTHREAD_SHIM_SIGNALS_H_

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include "sched/sched.h"

namespace vthread::shim {

constexpr uint64_t sig_bit(int sig) { return uint64_t{1} << (sig - 1); }

// The signals nobody can block or wait for: SIGKILL and SIGSTOP (the kernel's rule), and the two
// glibc keeps for itself, SIGCANCEL and SIGSETXID (glibc's pthread_sigmask drops them). The runtime
// leaves their dispositions alone too.
constexpr uint64_t kUnblockable = sig_bit(SIGKILL) | sig_bit(SIGSTOP) | sig_bit(__SIGRTMIN) | sig_bit(__SIGRTMIN + 1);

// Signals 1..64, the part of a sigset_t the kernel reads (glibc's is 1024 bits).
inline uint64_t low_word(const sigset_t* set) {
  uint64_t word;
  memcpy(&word, set, sizeof word);
  return word;
}

// Whether a disposition runs a handler (sa_handler and sa_sigaction share their storage, so
// SA_SIGINFO with a null function is SIG_DFL, as the kernel reads it).
inline bool catches(const struct sigaction& action) {
  return action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN;
}

// Signals whose default action is to ignore them.
inline bool ignored_by_default(int sig) {
  return sig == SIGCHLD || sig == SIGURG || sig == SIGWINCH || sig == SIGCONT;
}

// ---- sigaction.cc ----

// The program's disposition of `sig`, as it set it. Once start_preemption() ran; async-signal-safe.
struct sigaction program_action(int sig);
// SA_RESETHAND: the program's disposition of `sig` becomes SIG_DFL. Async-signal-safe.
void reset_to_default(int sig);
// Whether the runtime's handler runs with `sig` blocked in the kernel until it returns (all but
// the tick signal; SIGSEGV's blocks every signal). Async-signal-safe.
bool blocked_while_handled(int sig);
// Installs the real disposition of `sig` for the program's current one again (after the runtime's
// handler took a default action that stopped the process, and it was continued).
void reinstall_real_disposition(int sig);

// ---- signal_route.cc ----

// The runtime's handler, installed for every signal the program catches, the tick signal and
// SIGSEGV.
void on_signal(int sig, siginfo_t* info, void* context);
// The router of process-directed signals (sched::set_signal_router).
bool route_process_signals();
// The main fiber, which gets process-directed signals first (set once, when the runtime starts).
void set_main_fiber_for_signals(sched::Fiber* main);
// In a fork child.
void reset_routing_after_fork();

// ---- altstack.cc ----

// Calls handler(arg), the program's handler of a signal delivered to fiber `self` with context
// `uc`, where the kernel would: on the thread's alternate stack if `onstack` (SA_ONSTACK) and the
// thread set one it is not running on, else here. For the call uc->uc_stack shows the thread's
// setting, as the kernel saves it, and what the handler leaves there is its setting afterwards.
void call_program_handler(sched::Fiber* self, bool onstack, ucontext_t* uc, void (*handler)(void*), void* arg);

// Whether `sp` is on the alternate stack `self`'s thread set (the kernel's on_sig_stack()).
bool on_thread_altstack(const sched::Fiber* self, uintptr_t sp);

// ---- signal.cc ----

// The calling fiber's signal mask as the program sees it (the tick signal included), and setting
// it, which applies it to the carrier and runs the handlers of pending signals it unblocks.
uint64_t thread_mask(const sched::Fiber* self);
void set_thread_mask(sched::Fiber* self, uint64_t mask);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_SIGNALS_H_
