// sigaltstack for fibers. Natively each thread has its own alternate signal stack; a carrier is
// one kernel thread for many fibers, so a fiber's setting is kept in its ThreadState and never
// reaches the kernel. The carriers' real alternate stacks stay the runtime's own (reserved, 256 KiB;
// sched/stack_overflow.cc), on which stack overflows are reported and the program's SA_ONSTACK
// handlers run.
//
// Why not install each fiber's on its carrier at every switch, as signal masks are: a program that
// gives every thread one (Rust's standard library does, for its stack-overflow message) would pay
// a system call on nearly every switch, and a stack a thread unmapped at exit could stay installed
// on a carrier it had left. Why not leave sigaltstack to the kernel, as before: a fiber's call then
// changed whichever carrier it ran on, for every fiber there, and the disarm and munmap at a
// thread's exit (Rust again) left another carrier pointing at freed memory, where the next
// SA_ONSTACK signal killed the process.
//
// What a program can tell: its handlers run on a stack of the runtime's, not the one it set. The
// rest is as the kernel does it: what it set is what it reads back, SS_ONSTACK is reported (and a
// change refused with EPERM) while a handler runs on the alternate stack, and bad arguments get
// the kernel's EINVAL and ENOMEM. A new thread starts without one; the main thread keeps what it
// had when the runtime started (ensure_runtime records it). Threads glibc made itself, and the
// program before it creates its first thread, get the kernel's.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "arch/raw_syscall.h"
#include "shim/entry.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

// SS_AUTODISARM, the kernel's flag (linux/signal.h) that glibc's headers do not define: remembered, as the kernel
// reports it back.
constexpr int kAutoDisarm = static_cast<int>(1u << 31);
// The kernel's MINSIGSTKSZ for x86_64 (glibc's is now sysconf's, which may be larger).
constexpr size_t kKernelMinStack = 2048;

int kernel_sigaltstack(const stack_t* set, stack_t* old) {
  long r = arch::raw_syscall(SYS_sigaltstack, set, old);
  if (r == 0) return 0;
  errno = static_cast<int>(-r);
  return -1;
}

stack_t disabled() {
  stack_t none;
  memset(&none, 0, sizeof none);
  none.ss_flags = SS_DISABLE;
  return none;
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;

extern "C" int sigaltstack(const stack_t* set, stack_t* old) {
  shim::ShimEntry entry("sigaltstack");
  if (!entry.fiber()) return shim::kernel_sigaltstack(set, old);
  // A query needs no state: a thread that never set one has none.
  shim::ThreadState* state = entry.fiber()->user_data || set ? shim::thread_state() : nullptr;
  if (set && !state) {
    errno = ENOMEM;
    return -1;
  }
  stack_t current = state && state->altstack_set ? state->altstack : shim::disabled();
  // On the alternate stack now, as far as the program can tell: in a handler running on the
  // carrier's, with one of its own set.
  stack_t carrier;
  bool on_stack = shim::kernel_sigaltstack(nullptr, &carrier) == 0 && (carrier.ss_flags & SS_ONSTACK) &&
                  !(current.ss_flags & SS_DISABLE);
  if (set) {
    int mode = set->ss_flags & ~shim::kAutoDisarm;
    if (mode != 0 && mode != SS_ONSTACK && mode != SS_DISABLE) {
      errno = EINVAL;
      return -1;
    }
    if (on_stack) {
      errno = EPERM;
      return -1;
    }
    if (mode != SS_DISABLE && set->ss_size < shim::kKernelMinStack) {
      errno = ENOMEM;
      return -1;
    }
  }
  if (old) {
    *old = current;
    if (on_stack) old->ss_flags = SS_ONSTACK | (current.ss_flags & shim::kAutoDisarm);
  }
  if (set) {
    // As the kernel: SS_ONSTACK asks for nothing more than 0; disabling forgets the stack.
    state->altstack = (set->ss_flags & ~shim::kAutoDisarm) == SS_DISABLE ? shim::disabled() : *set;
    state->altstack.ss_flags &= ~SS_ONSTACK;
    state->altstack_set = true;
  }
  return 0;
}
