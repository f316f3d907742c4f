// dlopen and dlmopen: after the real call, the static TLS of newly loaded libraries is initialised in
// every fiber (ld.so does it only for threads glibc created; see sched/tls.h). The real functions
// are called as if from the program's own code, since they pick the namespace and the library
// search path (RPATH/RUNPATH, $ORIGIN) by their caller.
#include <dlfcn.h>

#include <atomic>

#include "arch/call_as_if_from.h"
#include "sched/sched.h"
#include "shim/entry.h"

namespace {

using Fn = void* (*)();

Fn real(std::atomic<Fn>& slot, const char* name) {
  Fn fn = slot.load(std::memory_order_acquire);
  if (!fn) {
    fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    slot.store(fn, std::memory_order_release);
  }
  return fn;
}

void* call_for_program(Fn fn, const void* caller, void* a0, long a1, long a2) {
  const void* ret = vthread::arch::ret_instruction_near(caller);
  void* handle = ret ? vthread::arch::call_as_if_from(fn, a0, a1, a2, ret)
                     : reinterpret_cast<void* (*)(void*, long, long)>(fn)(a0, a1, a2);
  if (handle && vthread::sched::started()) vthread::sched::after_dlopen();
  return handle;
}

}  // namespace

extern "C" {

void* dlopen(const char* file, int mode) {
  vthread::shim::ShimEntry entry("dlopen");
  static std::atomic<Fn> slot{nullptr};
  return call_for_program(real(slot, "dlopen"), __builtin_return_address(0), const_cast<char*>(file), mode, 0);
}

void* dlmopen(Lmid_t namespace_id, const char* file, int mode) {
  vthread::shim::ShimEntry entry("dlmopen");
  static std::atomic<Fn> slot{nullptr};
  return call_for_program(real(slot, "dlmopen"), __builtin_return_address(0), reinterpret_cast<void*>(namespace_id),
                          reinterpret_cast<long>(file), mode);
}

}  // extern "C"
