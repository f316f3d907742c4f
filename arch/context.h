// Saved execution contexts and the switch between them.
//
// A Context is where a suspended flow of control (a fiber, or a carrier's own scheduler loop) can be
// resumed. Two backends implement it, chosen once per process before the first switch:
//   - kAssembly (default): a hand-written switch of the callee-saved state, ~10 ns.
//   - kUcontext: glibc's swapcontext, which also saves the signal mask with a system call (~300 ns).
//     Kept for comparison and as the portable reference on architectures without an assembly port.
#ifndef VTHREAD_ARCH_CONTEXT_H_
#define VTHREAD_ARCH_CONTEXT_H_

#include <stddef.h>
#include <ucontext.h>

namespace vthread::arch {

enum class SwitchBackend { kAssembly, kUcontext };

struct Context {
  void* sp = nullptr;           // kAssembly: the suspended stack pointer
  ucontext_t* uc = nullptr;     // kUcontext: owned, allocated by context_prepare
};

// Selects the backend. Must be called before any context is prepared and never again.
void set_switch_backend(SwitchBackend backend);
SwitchBackend switch_backend();

// Makes `ctx` usable as the save slot of the flow of control that is running now (a carrier's
// scheduler loop or the program's main thread). Returns false if memory for it could not be had.
bool context_prepare_current(Context* ctx);

// Makes `ctx` start `entry(arg)` on the stack [stack_lo, stack_hi) when first switched to.
// `entry` must never return. Returns false if memory for it could not be had.
bool context_prepare(Context* ctx, void* stack_lo, void* stack_hi, void (*entry)(void*), void* arg);

// Releases what context_prepare* allocated. The context must not be running.
void context_release(Context* ctx);

// Saves the running flow into `from` and resumes `to`. Returns when something switches back to
// `from`, possibly on another kernel thread.
void context_switch(Context* from, Context* to);

}  // namespace vthread::arch

#endif  // VTHREAD_ARCH_CONTEXT_H_
