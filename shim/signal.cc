// Signals for fibers: pthread_kill, per-thread signal masks, the sigwait family, sigsuspend, pause
// and sigpending. (sigaction.cc keeps the program's dispositions; signal_route.cc is the runtime's
// handler, which gives process-directed signals to fibers.)
//
// pthread_kill and pthread_sigqueue. glibc's would read a fiber's handle as its own thread
// descriptor and signal whatever kernel thread id it found there (pthread_sigqueue's siginfo, with
// its value, travels with the signal). A signal for another fiber is kept pending on it and
// raised on its carrier when it next runs and does not block it (sched::post_signal), so the
// handler runs on that fiber's stack, in that fiber, as with a thread-directed signal; one for the
// calling fiber is raised at once if it does not block it. One for a fiber running on another
// carrier, in program code or a blocking system call, is raised there at once (the carrier is
// kicked: sched::hurry_signal), interrupting the call as natively. One for a fiber parked in a wait
// that signals interrupt ends the park (cancel.h has the protocol), and the handler runs as it
// resumes: the sleeps, the semaphore waits, pause and sigsuspend then fail with EINTR, as natively;
// mutex locks, joins and condition waits go back to waiting, as glibc's do.
//
// Masks. pthread_sigmask and sigprocmask set the calling fiber's own mask, which the runtime
// applies to whichever carrier runs the fiber (sched.h); unblocking a signal pending for the fiber
// or for the process runs its handler before the call returns.
//
// sigwait, sigwaitinfo, sigtimedwait take the signal if it was sent to the fiber, or to the
// process (the router gives a process-directed signal to a fiber waiting for it, and wakes it).
// A signal the program does not catch has no runtime handler: the kernel keeps it pending for the
// process while every carrier blocks it, and a waiting fiber looks for it with a non-blocking
// sigtimedwait on its carrier, again after 50 us, doubling up to 10 ms. A handler for a signal
// outside the set ends sigwaitinfo and sigtimedwait with EINTR (sigwait waits on, as glibc's
// does). They are cancellation points, as in glibc.
//
// sigsuspend and pause park the fiber (with sigsuspend's mask meanwhile) until a handler ran in
// it, then fail with EINTR; they are cancellation points. sigpending reports the signals pending
// for the fiber or for the process that the fiber blocks.
//
// Threads glibc made itself (not fibers) get glibc's functions throughout.
//
// Not yet: waits on rwlocks, barriers, pthread_once and futexes run a handler only when they end.
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
#include "shim/signals.h"
#include "shim/thread_state.h"
#include "shim/time_convert.h"

namespace sched = vthread::sched;
namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

namespace vthread::shim {
namespace {

constexpr sched::Nanos kFirstRecheck = 50 * 1000;
constexpr sched::Nanos kLastRecheck = 10 * 1000 * 1000;

// pthread_sigmask for a fiber: returns 0 or EINVAL.
int change_mask(sched::Fiber* self, int how, const sigset_t* set, sigset_t* old) {
  uint64_t mask = thread_mask(self);
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
  if (set) set_thread_mask(self, mask);
  return 0;
}

// Hands `sig`, sent to `self` by pthread_kill or to the process, to a sigwait the way the kernel
// would: raised on the carrier, which blocks it (the waiter's mask), with the siginfo its sender
// gave if it was kept, and taken back with sigtimedwait, so *info is what the kernel reports for it
// (a tgkill's si_code differs between kernel versions). Nothing can move the fiber to another
// carrier in between: it runs runtime and libc code only.
int take_as_the_kernel_would(sched::Fiber* self, int sig, const siginfo_t* kept, siginfo_t* info) {
  if (self->sigmask & sig_bit(sig)) {
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    struct timespec no_wait = {0, 0};
    sched::raise_signal(self, sig, kept);
    if (libc::sigtimedwait(&only, info, &no_wait) == sig) return sig;
  }
  // Not blocked on the carrier (the tick signal never is; POSIX leaves sigwait on an unblocked
  // signal undefined): its kept siginfo, or one we describe.
  if (info && kept->si_signo) {
    *info = *kept;
    return sig;
  }
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
  sched::set_sigwait_set(self, wait.wanted);
  // A handler that runs anywhere in the wait ends it (EINTR), in the park or not (a kick).
  auto* state = static_cast<ThreadState*>(self->user_data);
  uint32_t handlers_before = state ? state->handlers_run : 0;
  sched::Nanos recheck = kFirstRecheck;
  int result;
  for (;;) {
    siginfo_t kept;
    if (int sig = sched::take_pending_signal(self, wait.wanted, &kept)) {
      result = take_as_the_kernel_would(self, sig, &kept, info);
      break;
    }
    struct timespec no_wait = {0, 0};
    siginfo_t got;
    result = libc::sigtimedwait(set, &got, &no_wait);
    if (result > 0 && sched::is_kick(&got)) {  // a stale kick (sched/signals.cc), not a signal
      result = -1;
      errno = EAGAIN;
    }
    if (result > 0) {
      if (info) *info = got;
      break;
    }
    if (errno != EAGAIN) break;
    if (state && state->handlers_run != handlers_before) {
      errno = EINTR;
      break;
    }
    sched::Nanos now = sched::monotonic_now();
    if (now >= deadline) break;  // -1, EAGAIN
    sched::Nanos until = deadline - now > recheck ? now + recheck : deadline;
    recheck = recheck * 2 < kLastRecheck ? recheck * 2 : kLastRecheck;
    // A handler for a signal outside the set ends the wait too (EINTR), as the kernel's does.
    bool cancelled = arm_cancel(self, /*by_signals=*/true);
    bool interrupted = false;
    if (!cancelled) {
      interrupted = interrupting_signal_pending(self) ||
                    sched::parking_lot::park(&self->pending_signals, nothing_sent_yet, &wait, sched::WaitReason::kSignal,
                                             until) == sched::parking_lot::ParkResult::kInterrupted;
      disarm_cancel(self);
      cancelled = interrupted && state && cancel_due(state->cancel.load(std::memory_order_acquire));
    }
    if (cancelled) {
      sched::set_sigwait_set(self, 0);
      act_on_cancel(self);
    }
    if (interrupted && !(self->pending_signals.load(std::memory_order_acquire) & wait.wanted)) {
      result = -1;  // the handler runs below
      errno = EINTR;
      break;
    }
  }
  int saved_errno = errno;
  sched::set_sigwait_set(self, 0);
  // Anything else that was sent meanwhile and is not blocked is raised now.
  sched::deliver_pending_signals(self);
  errno = saved_errno;
  return result;
}

// sigsuspend and pause for a fiber: with `mask` (nullptr: its own) as its mask, parks until a
// handler ran in it, then restores its mask and fails with EINTR. A cancel is acted on with the
// fiber's own mask back.
int suspend(sched::Fiber* self, const sigset_t* mask) {
  cancellation_point(self);
  auto* state = static_cast<ThreadState*>(self->user_data);
  uint64_t own = thread_mask(self);
  uint32_t handlers_before = state->handlers_run;
  if (mask) set_thread_mask(self, low_word(mask) & ~kUnblockable);  // runs what it unblocks
  while (state->handlers_run == handlers_before) {
    bool cancelled = arm_cancel(self, /*by_signals=*/true);
    if (!cancelled) {
      if (interrupting_signal_pending(self)) {
        sched::deliver_pending_signals(self);
      } else {
        sched::park(sched::WaitReason::kSignal, sched::kNoDeadline, nullptr, nullptr);
      }
      disarm_cancel(self);
      cancelled = cancel_due(state->cancel.load(std::memory_order_acquire));
    }
    if (cancelled) {
      set_thread_mask(self, own);
      act_on_cancel(self);
    }
  }
  set_thread_mask(self, own);
  errno = EINTR;
  return -1;
}

// pthread_kill and pthread_sigqueue to fiber `target` (`info`: the sender's siginfo, or nullptr
// for a tgkill's), from fiber `self` or a thread that is none (nullptr).
int send_to_fiber(sched::Fiber* self, sched::Fiber* target, int sig, const siginfo_t* info) {
  if (sig < 0 || sig >= NSIG) return EINVAL;
  if (sched::state_of(target->sched_word.load(std::memory_order_acquire)) == sched::FiberState::kExited) {
    return 0;  // as glibc: a thread that exited but was not joined yet still accepts signals
  }
  if (sig == 0) return 0;
  // glibc refuses the signals it uses itself (SIGCANCEL, SIGSETXID).
  if (sig == __SIGRTMIN || sig == __SIGRTMIN + 1) return EINVAL;
  sched::post_signal(target, sig, info);
  if (target == self) {
    sched::deliver_pending_signals(target);  // at once, unless blocked
  } else if (target->sigwait_set.load(std::memory_order_seq_cst) & sig_bit(sig)) {
    sched::parking_lot::unpark_all(&target->pending_signals);
  } else if (!(sched::blocked_signals(target) & sig_bit(sig))) {
    // (A racy read of the target's mask: if it blocks the signal just after, the wait it is in
    // ends early, which sleeps and semaphore waits report as EINTR, and the others retry.)
    if (interrupts_waits(sig)) interrupt_park_for_signal(target);
    sched::hurry_signal(target, sig);  // running elsewhere: its carrier is kicked
  }
  return 0;
}

}  // namespace

uint64_t thread_mask(const sched::Fiber* self) { return sched::blocked_signals(self); }

void set_thread_mask(sched::Fiber* self, uint64_t mask) { sched::set_signal_mask(self, mask); }

bool interrupts_waits(int sig) {
  struct sigaction action = program_action(sig);
  if (action.sa_handler == SIG_IGN) return false;
  if (action.sa_handler != SIG_DFL) return true;
  switch (sig) {
    case SIGCHLD: case SIGCONT: case SIGURG: case SIGWINCH:               // ignored by default
    case SIGSTOP: case SIGTSTP: case SIGTTIN: case SIGTTOU: return false;  // stop by default
    default: return true;                                                  // terminate by default
  }
}

bool interrupting_signal_pending(sched::Fiber* self) {
  uint64_t pending = self->pending_signals.load(std::memory_order_seq_cst);
  if (!pending) return false;  // every wait asks: the usual answer costs one load
  pending &= ~sched::blocked_signals(self) & ~self->sigwait_set.load(std::memory_order_relaxed);
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
  return shim::send_to_fiber(entry.fiber(), target, sig, nullptr);
}

// glibc's sends with rt_tgsigqueueinfo to the kernel thread id in the target's TCB, which for a
// fiber names no thread (ESRCH).
int pthread_sigqueue(pthread_t thread, int sig, const union sigval value) {
  ShimEntry entry("pthread_sigqueue");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) {
    if (sched::started() && sched::FiberTable::in_range(thread)) return ESRCH;
    return libc::pthread_sigqueue(thread, sig, value);
  }
  siginfo_t info;
  memset(&info, 0, sizeof info);
  info.si_signo = sig;
  info.si_code = SI_QUEUE;
  info.si_pid = getpid();
  info.si_uid = getuid();
  info.si_value = value;
  return shim::send_to_fiber(entry.fiber(), target, sig, &info);
}

// glibc's raise tgkills the carrier's kernel thread: a signal the fiber blocks would stay pending
// there, for whichever fiber unblocks it on that carrier next.
int raise(int sig) {
  ShimEntry entry("raise");
  // (glibc's own two signals go to glibc, which sends them where raise always did.)
  if (!entry.fiber() || sig == __SIGRTMIN || sig == __SIGRTMIN + 1) return libc::raise(sig);
  int err = shim::send_to_fiber(entry.fiber(), entry.fiber(), sig, nullptr);
  if (err == 0) return 0;
  errno = err;
  return -1;
}

int gsignal(int sig) { return raise(sig); }

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

int sigsuspend(const sigset_t* mask) {
  ShimEntry entry("sigsuspend");
  if (!entry.fiber()) return libc::sigsuspend(mask);
  return shim::suspend(entry.fiber(), mask);
}

int pause(void) {
  ShimEntry entry("pause");
  if (!entry.fiber()) return libc::pause();
  return shim::suspend(entry.fiber(), nullptr);
}

int sigpending(sigset_t* set) {
  ShimEntry entry("sigpending");
  if (!entry.fiber()) return libc::sigpending(set);
  sched::Fiber* self = entry.fiber();
  // The kernel's pending set on the carrier: the process's signals that no runtime handler took
  // (those the program does not catch), and the carrier thread's own, which holds nothing but
  // instances on their way to a fiber (a signal raised for the running fiber that it does not block
  // is delivered at once; one forwarded to it is process-directed anyway).
  uint64_t in_kernel = 0;
  vthread::arch::raw_syscall(SYS_rt_sigpending, &in_kernel, sizeof in_kernel);
  uint64_t pending = self->pending_signals.load(std::memory_order_acquire) | sched::process_pending_signals();
  pending = (pending | in_kernel) & shim::thread_mask(self);
  sigemptyset(set);
  memcpy(set, &pending, sizeof pending);
  return 0;
}

}  // extern "C"
