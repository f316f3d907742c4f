// fork() from a fiber. The child of a fork has one kernel thread, the one that called it, and POSIX
// says one thread: the caller. glibc's fork resets its own state in the child; the runtime's is
// reset by a fork handler that runs in the child before the program's own: it keeps the calling
// fiber (now the only one, on carrier 0), drops the others, and starts fresh carriers, so the child
// can create threads again. posix_spawn, system and popen need nothing: glibc runs the child on a
// stack of its own with CLONE_VM|CLONE_VFORK until it execs.
//
// The handler is registered when the library is loaded, before the program registers any: child
// handlers run in registration order, and the program's may create threads. (Libraries the program
// links against are initialised before a preloaded one, so theirs run first.) It costs nothing until
// the runtime has started.
#include <pthread.h>

#include "sched/sched.h"
#include "shim/thread_state.h"

namespace {

void reset_runtime_in_child() {
  if (!vthread::sched::started()) return;
  // Signals first: the monitor that after_fork_in_child() starts would route the parent's.
  vthread::shim::reset_signals_after_fork();
  vthread::sched::after_fork_in_child();
  vthread::shim::reset_keys_after_fork();
}

__attribute__((constructor)) void register_fork_handler() { pthread_atfork(nullptr, nullptr, reset_runtime_in_child); }

}  // namespace
