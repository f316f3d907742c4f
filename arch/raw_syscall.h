// System calls issued directly with the `syscall` instruction. The runtime uses these instead of
// libc's syscall() because the shim interposes syscall() (futex emulation): the runtime must never
// re-enter its own interposed symbols. Returns the kernel's result: negative errno on failure.
#ifndef VTHREAD_ARCH_RAW_SYSCALL_H_
#define VTHREAD_ARCH_RAW_SYSCALL_H_

namespace vthread::arch {

inline long raw_syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
  long ret;
  register long r10 asm("r10") = a4;
  register long r8 asm("r8") = a5;
  register long r9 asm("r9") = a6;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
               : "rcx", "r11", "memory");
  return ret;
}

template <typename A1 = long, typename A2 = long, typename A3 = long, typename A4 = long,
          typename A5 = long, typename A6 = long>
inline long raw_syscall(long nr, A1 a1 = 0, A2 a2 = 0, A3 a3 = 0, A4 a4 = 0, A5 a5 = 0, A6 a6 = 0) {
  return raw_syscall6(nr, (long)a1, (long)a2, (long)a3, (long)a4, (long)a5, (long)a6);
}

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_RAW_SYSCALL_H_
