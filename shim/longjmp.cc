// longjmp and siglongjmp for fibers. A jump to a sigsetjmp(env, 1) restores the signal mask it
// saved, and glibc does that with its internal sigprocmask, which the shim does not see: after the
// common "siglongjmp out of a handler" (an alarm timeout, SIGINT back to the prompt), the carrier
// had the saved mask but the runtime still kept the fiber's as the handler's (the signal blocked),
// so the next instance stayed pending forever and the next fiber on the carrier ran with the wrong
// mask. The mask is set here first, the runtime's way (it runs what the restored mask unblocks,
// as the kernel would inside glibc's sigprocmask), then glibc's function jumps.
//
// The calls never return, so they take no ShimEntry (its end would never run, leaving the fiber
// marked as inside the library).
//
// __longjmp_chk (_FORTIFY_SOURCE) refuses a jump up the stack unless the kernel says the caller is
// on its alternate signal stack. A handler on a thread's own alternate stack runs there without the
// kernel knowing (altstack.cc), so that jump goes to glibc's plain siglongjmp instead.
#include <setjmp.h>
#include <signal.h>

#include "sched/libc.h"
#include "sched/sched.h"
#include "shim/signals.h"

namespace vthread::shim {
namespace {

void restore_saved_mask(struct __jmp_buf_tag* env) {
  sched::Fiber* self = sched::current();
  if (!self) return;
  sched::left_signal_handlers(self);
  if (env->__mask_was_saved) set_thread_mask(self, low_word(&env->__saved_mask) & ~kUnblockable);
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace libc = vthread::libc;

extern "C" {

void siglongjmp(sigjmp_buf env, int value) {
  shim::restore_saved_mask(env);
  libc::siglongjmp(env, value);
}

// glibc's longjmp and _longjmp are its siglongjmp.
void longjmp(jmp_buf env, int value) {
  shim::restore_saved_mask(env);
  libc::siglongjmp(env, value);
}

void _longjmp(jmp_buf env, int value) {
  shim::restore_saved_mask(env);
  libc::siglongjmp(env, value);
}

void __longjmp_chk(jmp_buf env, int value) {
  shim::restore_saved_mask(env);
  vthread::sched::Fiber* self = vthread::sched::current();
  if (self && shim::on_thread_altstack(self, reinterpret_cast<uintptr_t>(__builtin_frame_address(0)))) {
    libc::siglongjmp(env, value);
  }
  libc::longjmp_chk(env, value);
}

}  // extern "C"
