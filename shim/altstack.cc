// sigaltstack for fibers, and running the program's SA_ONSTACK handlers on the stack it names.
//
// Natively each thread has its own alternate signal stack; a carrier is one kernel thread for many
// fibers, so a fiber's setting is kept in its ThreadState, virtually, exactly as the kernel keeps a
// task's (sas_ss_sp, sas_ss_size, sas_ss_flags). The carriers' real alternate stacks stay the
// runtime's own (reserved, 256 KiB; sched/stack_overflow.cc), where stack overflows are reported.
// When the runtime's handler (signal_route.cc) calls a program handler that asked for SA_ONSTACK,
// call_program_handler moves to the thread's alternate stack itself, as the kernel's sigsp() would
// have: the handler's frames then belong to its thread, so it may wait, be preempted and resume on
// another carrier like any code of the thread.
//
// Why not install each fiber's on its carrier at every switch, as signal masks are: a program that
// gives every thread one (Rust's standard library does, for its stack-overflow message) would pay
// a system call on nearly every switch; a handler on it that waits would leave its frames on a
// carrier's stack while the carrier runs others; and a stack a thread unmapped at exit could stay
// installed on a carrier it had left. Why not leave sigaltstack to the kernel: a fiber's call then
// changed whichever carrier it ran on, for every fiber there, and the disarm and munmap at a
// thread's exit (Rust again) left another carrier pointing at freed memory, where the next
// SA_ONSTACK signal killed the process.
//
// The rest is the kernel's rules (kernel/signal.c, do_sigaltstack and friends): what a thread set
// is what it reads back, SS_ONSTACK is reported (and a change refused with EPERM) while it runs on
// the stack, SS_AUTODISARM disarms it for the handler, the handler's ucontext holds the setting and
// what the handler leaves there is restored when it returns, and bad arguments get EINVAL and
// ENOMEM. A new thread starts without one; the main thread keeps what it had when the runtime
// started (ensure_runtime records it). Threads glibc made itself, and the program before it creates
// its first thread, get the kernel's.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include "arch/call_on_stack.h"
#include "arch/raw_syscall.h"
#include "shim/entry.h"
#include "shim/signals.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

// SS_AUTODISARM, the kernel's flag (linux/signal.h) that glibc's headers do not define.
constexpr int kAutoDisarm = static_cast<int>(1u << 31);
// The kernel's MINSIGSTKSZ for x86_64 (glibc's is now sysconf's, which may be larger).
constexpr size_t kKernelMinStack = 2048;

int kernel_sigaltstack(const stack_t* set, stack_t* old) {
  long r = arch::raw_syscall(SYS_sigaltstack, set, old);
  if (r == 0) return 0;
  errno = static_cast<int>(-r);
  return -1;
}

// The kernel's sas_ss_reset().
stack_t disabled() {
  stack_t none;
  memset(&none, 0, sizeof none);
  none.ss_flags = SS_DISABLE;
  return none;
}

// The thread's setting, as the kernel stores it.
stack_t setting_of(const ThreadState* state) { return state && state->altstack_set ? state->altstack : disabled(); }

// The kernel's on_sig_stack(): `sp` is inside the stack (which grows down to ss_sp). Never with
// SS_AUTODISARM, which disarms the stack while a handler runs on it.
bool on_sig_stack(const stack_t& setting, uintptr_t sp) {
  if (setting.ss_flags & kAutoDisarm) return false;
  auto base = reinterpret_cast<uintptr_t>(setting.ss_sp);
  return sp > base && sp - base <= setting.ss_size;
}

// The kernel's sas_ss_flags(): SS_DISABLE, SS_ONSTACK (running on it at `sp`) or 0.
int state_flags(const stack_t& setting, uintptr_t sp) {
  if (!setting.ss_size) return SS_DISABLE;
  return on_sig_stack(setting, sp) ? SS_ONSTACK : 0;
}

// The kernel's do_sigaltstack() change for a thread running at `sp`: 0 or an errno value.
int change_setting(ThreadState* state, const stack_t& set, uintptr_t sp) {
  stack_t current = setting_of(state);
  if (on_sig_stack(current, sp)) return EPERM;
  int mode = set.ss_flags & ~kAutoDisarm;
  if (mode != 0 && mode != SS_ONSTACK && mode != SS_DISABLE) return EINVAL;
  stack_t next = set;
  if (mode == SS_DISABLE) {
    next.ss_sp = nullptr;
    next.ss_size = 0;
  } else if (set.ss_size < kKernelMinStack) {
    return ENOMEM;
  }
  state->altstack = next;
  state->altstack_set = true;
  return 0;
}

}  // namespace

bool on_thread_altstack(const sched::Fiber* self, uintptr_t sp) {
  return on_sig_stack(setting_of(static_cast<const ThreadState*>(self->user_data)), sp);
}

void call_program_handler(sched::Fiber* self, bool onstack, ucontext_t* uc, void (*handler)(void*), void* arg) {
  auto* state = static_cast<ThreadState*>(self->user_data);
  auto interrupted_sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
  stack_t setting = setting_of(state);
  // sigsp(): the alternate stack if the handler asks for it, it is set, and not in use already.
  bool move = onstack && state_flags(setting, interrupted_sp) == 0;
  stack_t carriers = uc->uc_stack;
  uc->uc_stack = setting;  // __save_altstack()
  if (move && (setting.ss_flags & kAutoDisarm)) state->altstack = disabled();
  if (move) {
    arch::call_on_stack(handler, arg, static_cast<char*>(setting.ss_sp) + setting.ss_size);
  } else {
    handler(arg);
  }
  // rt_sigreturn's restore_altstack(): what the handler left in its ucontext, unless refused.
  if (state) change_setting(state, uc->uc_stack, interrupted_sp);
  uc->uc_stack = carriers;
}

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
  auto sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  stack_t current = shim::setting_of(state);
  if (old) {
    *old = current;
    old->ss_flags = shim::state_flags(current, sp) | (current.ss_flags & shim::kAutoDisarm);
  }
  if (set) {
    int error = shim::change_setting(state, *set, sp);
    if (error) {
      errno = error;
      return -1;
    }
  }
  return 0;
}
