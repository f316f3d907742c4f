// Calling a function on a stack other than the caller's (for handlers the program wants on its
// alternate signal stack), and entering a signal handler on a moved frame. See
// x86_64/call_on_stack.S.
#ifndef VTHREAD_ARCH_CALL_ON_STACK_H_
#define VTHREAD_ARCH_CALL_ON_STACK_H_

extern "C" void vthread_arch_call_on_stack(void (*fn)(void*), void* arg, void* stack_top);
extern "C" [[noreturn]] void vthread_arch_enter_handler(void (*fn)(void*), void* arg, void* frame);

namespace vthread::arch {

// Calls fn(arg) with its stack starting just below `stack_top` (rounded down to 16 bytes), and
// returns on the caller's stack. fn may throw or longjmp out: the frames are linked back.
inline void call_on_stack(void (*fn)(void*), void* arg, void* stack_top) { vthread_arch_call_on_stack(fn, arg, stack_top); }

// Runs fn(arg) as the signal handler of the kernel frame at `frame` (one copied elsewhere, with
// its fpregs pointer fixed up): its stack starts below the frame, whose restorer address is its
// return address, so its return is the handler's rt_sigreturn.
[[noreturn]] inline void enter_handler(void (*fn)(void*), void* arg, void* frame) {
  vthread_arch_enter_handler(fn, arg, frame);
}

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_CALL_ON_STACK_H_
