// Signals for fibers: pthread_kill, per-thread signal masks, and the sigwait family.
//
// pthread_kill. glibc's would read a fiber's handle as its own thread descriptor and signal
// whatever kernel thread id it found there. A signal for another fiber is kept pending on it and
// raised on its carrier when it next runs and does not block it (sched::post_signal), so the
// handler runs on that fiber's stack, in that fiber, as with a thread-directed signal; one for the
// calling fiber is raised at once if it does not block it.
//
// Masks. pthread_sigmask and sigprocmask set the calling fiber's own mask, which the runtime
// applies to whichever carrier runs the fiber (sched.h). A process-directed signal (kill, alarm)
// goes, as the kernel decides, to a carrier whose running fiber does not block it.
//
// sigwait, sigwaitinfo, sigtimedwait take the signal if it was sent to the fiber; a
// process-directed one is taken with a non-blocking sigtimedwait on whichever carrier the fiber
// is on. The fiber parks between looks: pthread_kill of a waiting fiber wakes it at once, while
// process-directed signals, which only the kernel sees arrive, are looked for again after 50 us,
// doubling up to 10 ms. They are cancellation points, as in glibc.
//
// Threads glibc made itself (not fibers) get glibc's functions throughout.
//
// A pthread_kill ends the target's sleep or semaphore wait with EINTR, after the handler ran, as
// natively (cancel.h has the protocol); other waits (mutexes, condition variables, joins) run the
// handler when they end.
//
// Not yet: a process-directed signal does not end a parked fiber's wait, a fiber that runs
// without entering the shim sees a pthread_kill only when it next does, and sigsuspend/sigpending
// are glibc's (they see the carrier, not the fiber).
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/parking_lot.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/thread_state.h"
#include "shim/time_convert.h"

namespace sched = vthread::sched;
namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

namespace vthread::shim {
namespace {

constexpr uint64_t bit_of(int sig) { return uint64_t{1} << (sig - 1); }

// The signals nobody can block or wait for: SIGKILL and SIGSTOP (the kernel's rule), and the two
// glibc keeps for itself, SIGCANCEL and SIGSETXID (glibc's pthread_sigmask drops them).
constexpr uint64_t kUnblockable = bit_of(SIGKILL) | bit_of(SIGSTOP) | bit_of(__SIGRTMIN) | bit_of(__SIGRTMIN + 1);

constexpr sched::Nanos kFirstRecheck = 50 * 1000;
constexpr sched::Nanos kLastRecheck = 10 * 1000 * 1000;

// Signals 1..64, the part of a sigset_t the kernel reads (glibc's is 1024 bits).
uint64_t low_word(const sigset_t* set) {
  uint64_t word;
  memcpy(&word, set, sizeof word);
  return word;
}

// pthread_sigmask for a fiber: returns 0 or EINVAL. The tick signal (sigaction.cc) is never
// blocked on a carrier: the program's wish for it is kept in app_blocks_tick.
int change_mask(sched::Fiber* self, int how, const sigset_t* set, sigset_t* old) {
  uint64_t tick = tick_signal_bit();
  bool blocked_tick = self->app_blocks_tick;
  uint64_t mask = self->sigmask | (blocked_tick ? tick : 0);
  uint64_t before = mask;
  if (set) {
    uint64_t change = low_word(set) & ~kUnblockable;
    switch (how) {
      case SIG_BLOCK: mask |= change; break;
      case SIG_UNBLOCK: mask &= ~change; break;
      case SIG_SETMASK: mask = change; break;
      default: return EINVAL;
    }
  }
  // As the kernel: only the first 64 signals of *old are written.
  if (old) memcpy(old, &before, sizeof before);
  if (!set) return 0;
  self->app_blocks_tick = mask & tick;
  if ((mask & ~tick) != self->sigmask) sched::set_signal_mask(self, mask & ~tick);
  if (blocked_tick && !self->app_blocks_tick) tick_signal_unblocked();
  return 0;
}

// Hands `sig`, sent to `self` by pthread_kill, to a sigwait the way the kernel would: raised on
// the carrier, which blocks it (the waiter's mask), and taken back with sigtimedwait, so *info is
// what the kernel reports for it (si_code differs between kernel versions). Nothing can move the
// fiber to another carrier in between: it runs runtime and libc code only.
int take_as_the_kernel_would(sched::Fiber* self, int sig, siginfo_t* info) {
  if (self->sigmask & bit_of(sig)) {
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    struct timespec no_wait = {0, 0};
    vthread::arch::raw_syscall(SYS_tgkill, getpid(), vthread::arch::raw_syscall(SYS_gettid), sig);
    if (libc::sigtimedwait(&only, info, &no_wait) == sig) return sig;
  }
  // Not blocked (POSIX leaves sigwait on an unblocked signal undefined): describe it ourselves.
  if (info) {
    memset(info, 0, sizeof *info);
    info->si_signo = sig;
    info->si_code = SI_TKILL;
    info->si_pid = getpid();
    info->si_uid = getuid();
  }
  return sig;
}

struct SignalWait {
  sched::Fiber* self;
  uint64_t wanted;
};

bool nothing_sent_yet(void* arg) {
  auto* wait = static_cast<SignalWait*>(arg);
  return !(wait->self->pending_signals.load(std::memory_order_acquire) & wait->wanted);
}

// sigtimedwait for a fiber, until the monotonic `deadline`: the signal number, or -1 with errno.
int wait_for_signal(sched::Fiber* self, const sigset_t* set, siginfo_t* info, sched::Nanos deadline) {
  SignalWait wait{self, low_word(set) & ~kUnblockable};
  self->sigwait_set.store(wait.wanted, std::memory_order_seq_cst);
  sched::Nanos recheck = kFirstRecheck;
  int result;
  for (;;) {
    if (int sig = sched::take_pending_signal(self, wait.wanted)) {
      result = take_as_the_kernel_would(self, sig, info);
      break;
    }
    struct timespec no_wait = {0, 0};
    result = libc::sigtimedwait(set, info, &no_wait);
    if (result > 0 || errno != EAGAIN) break;
    sched::Nanos now = sched::monotonic_now();
    if (now >= deadline) break;  // -1, EAGAIN
    sched::Nanos until = deadline - now > recheck ? now + recheck : deadline;
    recheck = recheck * 2 < kLastRecheck ? recheck * 2 : kLastRecheck;
    bool cancelled = arm_cancel(self);
    if (!cancelled) {
      cancelled = sched::parking_lot::park(&self->pending_signals, nothing_sent_yet, &wait, sched::WaitReason::kSignal,
                                           until) == sched::parking_lot::ParkResult::kInterrupted;
      disarm_cancel(self);
    }
    if (cancelled) {
      self->sigwait_set.store(0, std::memory_order_seq_cst);
      act_on_cancel(self);
    }
  }
  int saved_errno = errno;
  self->sigwait_set.store(0, std::memory_order_seq_cst);
  // Anything else that was sent meanwhile and is not blocked is raised now.
  sched::deliver_pending_signals(self);
  errno = saved_errno;
  return result;
}

}  // namespace

bool interrupts_waits(int sig) {
  struct sigaction action;
  if (::sigaction(sig, nullptr, &action) != 0) return false;  // the program's view (sigaction.cc)
  if (action.sa_flags & SA_SIGINFO) return true;
  if (action.sa_handler == SIG_IGN) return false;
  if (action.sa_handler != SIG_DFL) return true;
  switch (sig) {
    case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:               // ignored by default
    case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU: return false;  // stop by default
    default: return true;                                                  // terminate by default
  }
}

bool interrupting_signal_pending(sched::Fiber* self) {
  uint64_t pending = self->pending_signals.load(std::memory_order_seq_cst) & ~self->sigmask &
                     ~self->sigwait_set.load(std::memory_order_relaxed);
  for (int sig = 1; pending; ++sig, pending >>= 1) {
    if ((pending & 1) && interrupts_waits(sig)) return true;
  }
  return false;
}

}  // namespace vthread::shim

extern "C" {

int pthread_kill(pthread_t thread, int sig) {
  ShimEntry entry("pthread_kill");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) {
    if (sched::started() && sched::FiberTable::in_range(thread)) return ESRCH;  // an exited fiber
    return libc::pthread_kill(thread, sig);
  }
  if (sig < 0 || sig >= NSIG) return EINVAL;
  if (sched::state_of(target->sched_word.load(std::memory_order_acquire)) == sched::FiberState::kExited) {
    return 0;  // as glibc: a thread that exited but was not joined yet still accepts signals
  }
  if (sig == 0) return 0;
  // glibc refuses the signals it uses itself (SIGCANCEL, SIGSETXID).
  if (sig == __SIGRTMIN || sig == __SIGRTMIN + 1) return EINVAL;
  sched::post_signal(target, sig);
  if (target == entry.fiber()) {
    sched::deliver_pending_signals(target);  // at once, unless blocked
  } else if (target->sigwait_set.load(std::memory_order_seq_cst) & shim::bit_of(sig)) {
    sched::parking_lot::unpark_all(&target->pending_signals);
  } else if (!(target->sigmask & shim::bit_of(sig)) && shim::interrupts_waits(sig)) {
    // (A racy read of the target's mask: if it blocks the signal just after, the wait it is in
    // ends early, which sleeps and semaphore waits report as EINTR; handlers may be delayed by
    // this anyway.)
    shim::interrupt_park_for_signal(target);
  }
  return 0;
}

int pthread_sigmask(int how, const sigset_t* set, sigset_t* old) {
  ShimEntry entry("pthread_sigmask");
  if (!entry.fiber()) return libc::pthread_sigmask(how, set, old);
  return shim::change_mask(entry.fiber(), how, set, old);
}

int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  ShimEntry entry("sigprocmask");
  if (!entry.fiber()) return libc::sigprocmask(how, set, old);
  int err = shim::change_mask(entry.fiber(), how, set, old);
  if (err == 0) return 0;
  errno = err;
  return -1;
}

int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* timeout) {
  ShimEntry entry("sigtimedwait");
  if (!entry.fiber()) return libc::sigtimedwait(set, info, timeout);
  shim::cancellation_point(entry.fiber());
  sched::Nanos deadline = sched::kNoDeadline;
  if (timeout) {
    if (!shim::valid_timespec(*timeout) || timeout->tv_sec < 0) {
      errno = EINVAL;
      return -1;
    }
    deadline = sched::deadline_after(sched::monotonic_now(), sched::timespec_to_nanos(*timeout));
  }
  return shim::wait_for_signal(entry.fiber(), set, info, deadline);
}

int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  ShimEntry entry("sigwaitinfo");
  if (!entry.fiber()) return libc::sigtimedwait(set, info, nullptr);
  shim::cancellation_point(entry.fiber());
  return shim::wait_for_signal(entry.fiber(), set, info, sched::kNoDeadline);
}

int sigwait(const sigset_t* set, int* sig) {
  ShimEntry entry("sigwait");
  if (!entry.fiber()) {
    // glibc's sigwait retries on EINTR and returns the error instead of setting errno.
    int r;
    do r = libc::sigtimedwait(set, nullptr, nullptr);
    while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    *sig = r;
    return 0;
  }
  shim::cancellation_point(entry.fiber());
  int r;
  do r = shim::wait_for_signal(entry.fiber(), set, nullptr, sched::kNoDeadline);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno;
  *sig = r;
  return 0;
}

}  // extern "C"
