// The thread pointer: the register through which compiled code and libc reach thread-local
// storage (x86_64: the FS base, which points at glibc's thread control block). Switching fibers
// with their own TLS means loading a different value into it.
#ifndef VTHREAD_ARCH_THREAD_POINTER_H_
#define VTHREAD_ARCH_THREAD_POINTER_H_

namespace vthread::arch {

// The running thread's thread pointer. glibc stores it as the first word of its TCB, so this is one
// load, and never cached by the compiler across a switch.
inline char* thread_pointer() {
  char* tp;
  asm volatile("movq %%fs:0, %0" : "=r"(tp));
  return tp;
}

// Chooses how set_thread_pointer() loads FS: the wrfsbase instruction where the kernel enabled it
// (AT_HWCAP2 has FSGSBASE), else the arch_prctl system call (~15x slower). Valgrind does not decode
// wrfsbase, so under it arch_prctl is used too. Call once, before set_thread_pointer().
void thread_pointer_init();

// True if set_thread_pointer() uses wrfsbase.
bool thread_pointer_is_fast();

// Loads `tp` as the thread pointer of the running kernel thread.
void set_thread_pointer(char* tp);

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_THREAD_POINTER_H_
