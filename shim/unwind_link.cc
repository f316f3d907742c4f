// __gcc_personality_v0 and _Unwind_Resume for the code built with -fexceptions (unwind_guard.c).
// libvthread.so depends on libc alone (tests/preload_cost_test.sh), so it cannot link libgcc_s,
// and a static copy of the unwinder (libgcc_eh) beside the process's own would be a second
// unwinder resuming the first one's exceptions. So, like glibc (sysdeps/generic/unwind-resume.c),
// the library defines the two symbols itself and forwards them to libgcc_s, which is loaded by
// the time anything unwinds (it is what unwinds). Neither symbol is exported (exports.map).
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unwind.h>

#include <atomic>

#include "arch/raw_syscall.h"

namespace {

using Personality = _Unwind_Reason_Code (*)(int, _Unwind_Action, _Unwind_Exception_Class, _Unwind_Exception*,
                                            _Unwind_Context*);
using Resume = void (*)(_Unwind_Exception*);

struct UnwindLink {
  Personality personality;
  Resume resume;
};

const UnwindLink& unwind_link() {
  static std::atomic<bool> loaded{false};
  static UnwindLink link;
  if (loaded.load(std::memory_order_acquire)) return link;
  void* lib = dlopen("libgcc_s.so.1", RTLD_NOW);
  if (lib) {
    link.personality = reinterpret_cast<Personality>(dlsym(lib, "__gcc_personality_v0"));
    link.resume = reinterpret_cast<Resume>(dlsym(lib, "_Unwind_Resume"));
  }
  if (!link.personality || !link.resume) {
    static const char message[] = "vthread: fatal: libgcc_s.so.1 is needed to unwind through pthread_once\n";
    vthread::arch::raw_syscall(SYS_write, 2, message, sizeof message - 1);
    abort();
  }
  loaded.store(true, std::memory_order_release);
  return link;
}

}  // namespace

extern "C" {

_Unwind_Reason_Code __gcc_personality_v0(int version, _Unwind_Action actions, _Unwind_Exception_Class exception_class,
                                         _Unwind_Exception* exception, _Unwind_Context* context) {
  return unwind_link().personality(version, actions, exception_class, exception, context);
}

void _Unwind_Resume(_Unwind_Exception* exception) {
  unwind_link().resume(exception);
  abort();  // _Unwind_Resume does not return
}

}  // extern "C"
