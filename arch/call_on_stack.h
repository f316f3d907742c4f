// Calling a function on a stack other than the caller's (for handlers the program wants on its
// alternate signal stack), and leaving a signal handler from a moved frame. See
// x86_64/call_on_stack.S.
#ifndef VTHREAD_ARCH_CALL_ON_STACK_H_
#define VTHREAD_ARCH_CALL_ON_STACK_H_

extern "C" void vthread_arch_call_on_stack(void (*fn)(void*), void* arg, void* stack_top);
extern "C" [[noreturn]] void vthread_arch_sigreturn_from(void* uc);

namespace vthread::arch {

// Calls fn(arg) with its stack starting just below `stack_top` (rounded down to 16 bytes), and
// returns on the caller's stack. fn may throw or longjmp out: the frames are linked back.
inline void call_on_stack(void (*fn)(void*), void* arg, void* stack_top) { vthread_arch_call_on_stack(fn, arg, stack_top); }

// Ends a signal handler with rt_sigreturn on the kernel frame whose ucontext is `uc` (a frame
// copied elsewhere, with its fpregs pointer fixed up), wherever the caller's stack is.
[[noreturn]] inline void sigreturn_from(void* uc) { vthread_arch_sigreturn_from(uc); }

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_CALL_ON_STACK_H_
