#include "arch/context.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern "C" void vthread_arch_switch(void** save_sp, void* load_sp);
extern "C" void vthread_arch_trampoline();

namespace vthread::arch {
namespace {

SwitchBackend g_backend = SwitchBackend::kAssembly;

// Power-on defaults (all exceptions masked, round to nearest); a new fiber starts with these, as a
// new pthread does.
constexpr uint32_t kDefaultMxcsr = 0x1f80;
constexpr uint16_t kDefaultX87ControlWord = 0x037f;

// makecontext passes int arguments only; split the pointers.
void ucontext_entry(unsigned entry_lo, unsigned entry_hi, unsigned arg_lo, unsigned arg_hi) {
  auto entry = reinterpret_cast<void (*)(void*)>((uintptr_t{entry_hi} << 32) | entry_lo);
  auto arg = reinterpret_cast<void*>((uintptr_t{arg_hi} << 32) | arg_lo);
  entry(arg);
  abort();  // entry must not return
}

}  // namespace

void set_switch_backend(SwitchBackend backend) { g_backend = backend; }
SwitchBackend switch_backend() { return g_backend; }

bool context_prepare_current(Context* ctx) {
  if (g_backend == SwitchBackend::kUcontext) {
    ctx->uc = static_cast<ucontext_t*>(calloc(1, sizeof(ucontext_t)));
    return ctx->uc != nullptr;
  }
  return true;  // the switch fills sp in when this flow first suspends
}

bool context_prepare(Context* ctx, void* stack_lo, void* stack_hi, void (*entry)(void*), void* arg) {
  if (g_backend == SwitchBackend::kUcontext) {
    if (!context_prepare_current(ctx)) return false;
    getcontext(ctx->uc);
    ctx->uc->uc_stack.ss_sp = stack_lo;
    ctx->uc->uc_stack.ss_size = static_cast<char*>(stack_hi) - static_cast<char*>(stack_lo);
    ctx->uc->uc_link = nullptr;
    auto e = reinterpret_cast<uintptr_t>(entry);
    auto a = reinterpret_cast<uintptr_t>(arg);
    makecontext(ctx->uc, reinterpret_cast<void (*)()>(ucontext_entry), 4, unsigned(e), unsigned(e >> 32),
                unsigned(a), unsigned(a >> 32));
    return true;
  }
  // The frame vthread_arch_switch pops (see switch.S). The return address sits at an address that is
  // 8 mod 16, so the trampoline starts with rsp 16-byte aligned.
  auto top = reinterpret_cast<uintptr_t>(stack_hi) & ~uintptr_t{15};
  auto* frame = reinterpret_cast<uint64_t*>(top - 9 * sizeof(uint64_t));
  memset(frame, 0, 9 * sizeof(uint64_t));
  frame[0] = kDefaultX87ControlWord;
  frame[1] = kDefaultMxcsr;
  frame[2] = 0;                                   // r15
  frame[3] = 0;                                   // r14
  frame[4] = reinterpret_cast<uint64_t>(arg);     // r13
  frame[5] = reinterpret_cast<uint64_t>(entry);   // r12
  frame[6] = 0;                                   // rbx
  frame[7] = 0;                                   // rbp
  frame[8] = reinterpret_cast<uint64_t>(&vthread_arch_trampoline);
  ctx->sp = frame;
  return true;
}

void context_release(Context* ctx) {
  free(ctx->uc);
  ctx->uc = nullptr;
  ctx->sp = nullptr;
}

void context_switch(Context* from, Context* to) {
  if (g_backend == SwitchBackend::kUcontext) {
    swapcontext(from->uc, to->uc);
    return;
  }
  vthread_arch_switch(&from->sp, to->sp);
}

}  // namespace vthread::arch
