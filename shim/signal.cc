// pthread_kill for fibers. glibc's would read a fiber's handle as its own thread descriptor and
// signal whatever kernel thread id it found there. A signal for another fiber is kept pending on it
// and raised on its carrier when it next runs (sched::post_signal), so the handler runs on that
// fiber's stack, in that fiber, as with a thread-directed signal; one for the calling fiber is
// raised at once. Handles of threads glibc made itself go to glibc.
//
// Not yet: a parked target is not woken (its sleep is not cut short with EINTR), a target that
// runs without entering the shim sees the signal only when it next does, and signal masks are
// per carrier, not per fiber.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/thread_state.h"

namespace sched = vthread::sched;
namespace shim = vthread::shim;
using vthread::shim::ShimEntry;

extern "C" int pthread_kill(pthread_t thread, int sig) {
  ShimEntry entry("pthread_kill");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) {
    if (sched::started() && sched::FiberTable::in_range(thread)) return ESRCH;  // an exited fiber
    return vthread::libc::pthread_kill(thread, sig);
  }
  if (sig < 0 || sig >= NSIG) return EINVAL;
  if (sched::state_of(target->sched_word.load(std::memory_order_acquire)) == sched::FiberState::kExited) {
    return 0;  // as glibc: a thread that exited but was not joined yet still accepts signals
  }
  if (sig == 0) return 0;
  // glibc refuses the signals it uses itself (SIGCANCEL, SIGSETXID).
  if (sig == __SIGRTMIN || sig == __SIGRTMIN + 1) return EINVAL;
  if (target == entry.fiber()) {
    long r = vthread::arch::raw_syscall(SYS_tgkill, getpid(), gettid(), sig);
    return r < 0 ? static_cast<int>(-r) : 0;
  }
  sched::post_signal(target, sig);
  return 0;
}
