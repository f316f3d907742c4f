#include "arch/thread_pointer.h"

#include <asm/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>

#include "arch/raw_syscall.h"

namespace vthread::arch {
namespace {

constexpr unsigned long kHwcap2Fsgsbase = 1ul << 1;  // HWCAP2_FSGSBASE

bool g_wrfsbase = false;

// Valgrind preloads its vgpreload_*.so into the program it runs.
bool under_valgrind() {
  const char* preload = getenv("LD_PRELOAD");
  return preload && strstr(preload, "vgpreload");
}

}  // namespace

void thread_pointer_init() { g_wrfsbase = (getauxval(AT_HWCAP2) & kHwcap2Fsgsbase) && !under_valgrind(); }

bool thread_pointer_is_fast() { return g_wrfsbase; }

void set_thread_pointer(char* tp) {
  if (g_wrfsbase) {
    // "memory": no load or store of thread-local data may move across the change of FS.
    asm volatile("wrfsbase %0" : : "r"(tp) : "memory");
  } else {
    raw_syscall(SYS_arch_prctl, ARCH_SET_FS, tp);
  }
}

}  // namespace vthread::arch
