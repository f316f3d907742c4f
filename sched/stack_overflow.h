// Stack-overflow reports that name the thread. A fiber that runs off the bottom of its stack hits
// the guard below it; the kernel cannot run a SIGSEGV handler on the stack that just overflowed,
// so each carrier gets an alternate signal stack, and a handler installed when the runtime starts
// tells an overflow from any other fault and says which thread overflowed, e.g.
//   vthread: thread 12 "decoder" overflowed its stack (64 KiB at 0x7f...-0x7f...): fault at
//   0x7f..., 1024 bytes below it
// The process then dies of the SIGSEGV as it would natively (core dump, exit status), unless the
// program had a SIGSEGV handler of its own before the runtime started: that one is then called,
// for overflows and every other fault, as if it had been installed alone. The shim replaces this
// handler with its own right after start-up (shim/sigaction.cc), which reports overflows with
// report_if_overflowed() and takes over the program's disposition from program_action().
#ifndef VTHREAD_SCHED_STACK_OVERFLOW_H_
#define VTHREAD_SCHED_STACK_OVERFLOW_H_

#include <signal.h>

namespace vthread::sched::stack_overflow {

// Installs the SIGSEGV handler (keeping the program's for chaining). Once, at start-up.
void install_handler();

// The program's SIGSEGV disposition from before install_handler().
const struct sigaction& program_action();

// For a SIGSEGV handler: prints the report if `info` is a fault just below the running fiber's
// stack. Async-signal-safe; preserves errno.
void report_if_overflowed(const siginfo_t* info);

// Gives the calling carrier thread its alternate signal stack. Every carrier, at its start.
void give_carrier_signal_stack();

}  // namespace vthread::sched::stack_overflow

#endif  // VTHREAD_SCHED_STACK_OVERFLOW_H_
