// The System V and BSD signal calls (sigset, sighold, sigrelse, sigignore, sigpause, sysv_signal,
// bsd_signal, ssignal, sigblock, sigsetmask, siggetmask, sigstack; siginterrupt is with signal()
// in sigaction.cc). glibc builds them on its internal
// sigaction, sigprocmask and sigsuspend, which bypass the interposed ones: once the runtime owns the
// program's dispositions and masks are per thread, a handler set that way would be called wherever
// the kernel delivers, and a mask set that way would land on the carrier, for whichever thread runs
// there next. So they are rebuilt here, as glibc 2.36 writes them, on the interposed calls; before
// the runtime starts those go straight to glibc, so nothing changes for a program without threads.
//
// A program built with a strict standard (-std=c11, no _DEFAULT_SOURCE) calls __sysv_signal for
// signal(), and __xpg_sigpause or __sigpause for sigpause(): those are here too, and sigstack,
// which glibc builds on its internal sigaltstack.
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "shim/entry.h"

namespace {

constexpr size_t kBsdSignalStackSize = 8192;  // glibc's sigstack(): "hopefully large enough"

bool valid_signal(int sig) { return sig >= 1 && sig < NSIG; }

sigset_t only(int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  return set;
}

// The BSD calls' mask: the low 32 signals as bits of an int.
sigset_t from_old_mask(int mask) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig = 1; sig <= 32; ++sig) {
    if (static_cast<unsigned>(mask) & (1u << (sig - 1))) sigaddset(&set, sig);
  }
  return set;
}

int to_old_mask(const sigset_t& set) {
  unsigned mask = 0;
  for (int sig = 1; sig <= 32; ++sig) {
    if (sigismember(&set, sig) == 1) mask |= 1u << (sig - 1);
  }
  return static_cast<int>(mask);
}

// One-shot, not blocked in its own handler, interrupting (the System V signal()).
sighandler_t sysv_signal_impl(int sig, sighandler_t handler) {
  if (handler == SIG_ERR || !valid_signal(sig)) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction action, old;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_NODEFER;
  if (sigaction(sig, &action, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}

int sigpause_with(const sigset_t& mask) { return sigsuspend(&mask); }

}  // namespace

using vthread::shim::ShimEntry;

extern "C" {

sighandler_t sysv_signal(int sig, sighandler_t handler) {
  ShimEntry entry("sysv_signal");
  return sysv_signal_impl(sig, handler);
}

sighandler_t __sysv_signal(int sig, sighandler_t handler) {
  ShimEntry entry("__sysv_signal");
  return sysv_signal_impl(sig, handler);
}

// glibc's signal() under its other names.
sighandler_t bsd_signal(int sig, sighandler_t handler) { return signal(sig, handler); }
sighandler_t ssignal(int sig, sighandler_t handler) { return signal(sig, handler); }

sighandler_t sigset(int sig, sighandler_t disposition) {
  ShimEntry entry("sigset");
  if (!valid_signal(sig)) {
    errno = EINVAL;
    return SIG_ERR;
  }
  sigset_t set = only(sig), old_mask;
  struct sigaction old;
  if (disposition == SIG_HOLD) {
    if (sigprocmask(SIG_BLOCK, &set, &old_mask) < 0) return SIG_ERR;
    if (sigismember(&old_mask, sig)) return SIG_HOLD;
    if (sigaction(sig, nullptr, &old) < 0) return SIG_ERR;
    return old.sa_handler;
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = disposition;
  sigemptyset(&action.sa_mask);
  if (sigaction(sig, &action, &old) < 0) return SIG_ERR;
  if (sigprocmask(SIG_UNBLOCK, &set, &old_mask) < 0) return SIG_ERR;
  return sigismember(&old_mask, sig) ? SIG_HOLD : old.sa_handler;
}

int sighold(int sig) {
  ShimEntry entry("sighold");
  sigset_t set;
  if (sigprocmask(SIG_SETMASK, nullptr, &set) < 0 || sigaddset(&set, sig) < 0) return -1;
  return sigprocmask(SIG_SETMASK, &set, nullptr);
}

int sigrelse(int sig) {
  ShimEntry entry("sigrelse");
  sigset_t set;
  if (sigprocmask(SIG_SETMASK, nullptr, &set) < 0 || sigdelset(&set, sig) < 0) return -1;
  return sigprocmask(SIG_SETMASK, &set, nullptr);
}

int sigignore(int sig) {
  ShimEntry entry("sigignore");
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = SIG_IGN;
  sigemptyset(&action.sa_mask);
  return sigaction(sig, &action, nullptr);
}

// X/Open: waits with `sig` unblocked.
int __xpg_sigpause(int sig) {
  ShimEntry entry("sigpause");
  sigset_t set;
  if (sigprocmask(SIG_SETMASK, nullptr, &set) < 0 || sigdelset(&set, sig) < 0) return -1;
  return sigpause_with(set);
}

// BSD: waits with the mask `mask`. (<signal.h> names the X/Open one sigpause in C++.)
int bsd_sigpause(int mask) __asm__("sigpause");
int bsd_sigpause(int mask) {
  ShimEntry entry("sigpause");
  return sigpause_with(from_old_mask(mask));
}

// What <signal.h> calls for sigpause() outside GNU C.
int __sigpause(int sig_or_mask, int is_sig) {
  if (is_sig) return __xpg_sigpause(sig_or_mask);
  return bsd_sigpause(sig_or_mask);
}

// 4.2BSD's alternate stack, on the per-thread sigaltstack (altstack.cc), which glibc's would
// bypass to set the carrier's. The size is glibc's guess too.
int sigstack(struct sigstack* set, struct sigstack* old) {
  ShimEntry entry("sigstack");
  stack_t alt, previous;
  if (set) {
    alt.ss_sp = set->ss_sp;
    alt.ss_flags = set->ss_onstack ? SS_ONSTACK : 0;
    alt.ss_size = kBsdSignalStackSize;
  }
  int result = sigaltstack(set ? &alt : nullptr, &previous);
  if (result == 0 && old) {
    old->ss_sp = previous.ss_sp;
    old->ss_onstack = previous.ss_flags & SS_ONSTACK;
  }
  return result;
}

int sigblock(int mask) {
  ShimEntry entry("sigblock");
  sigset_t set = from_old_mask(mask), old;
  if (sigprocmask(SIG_BLOCK, &set, &old) < 0) return -1;
  return to_old_mask(old);
}

int sigsetmask(int mask) {
  ShimEntry entry("sigsetmask");
  sigset_t set = from_old_mask(mask), old;
  if (sigprocmask(SIG_SETMASK, &set, &old) < 0) return -1;
  return to_old_mask(old);
}

int siggetmask(void) {
  ShimEntry entry("siggetmask");
  sigset_t old;
  if (sigprocmask(SIG_SETMASK, nullptr, &old) < 0) return -1;
  return to_old_mask(old);
}

}  // extern "C"
