#include "arch/call_as_if_from.h"

#include <link.h>
#include <stdint.h>

extern "C" void* vthread_arch_call_as_if_from(void* (*fn)(), void* a0, long a1, long a2, const void* ret_in_caller);

namespace vthread::arch {
namespace {

constexpr unsigned char kRet = 0xc3;

struct Search {
  uintptr_t code;
  const void* found;
};

int search_segment(dl_phdr_info* info, size_t, void* arg) {
  auto* s = static_cast<Search*>(arg);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    uintptr_t hi = lo + ph.p_filesz;  // file-backed bytes: mapped and readable
    if (s->code < lo || s->code >= hi) continue;
    // Any 0xc3 byte executes as `ret`, even one in the middle of an instruction; the caller's own
    // epilogue is usually a few bytes on.
    for (uintptr_t p = s->code; p < hi; ++p) {
      if (*reinterpret_cast<const unsigned char*>(p) == kRet) {
        s->found = reinterpret_cast<const void*>(p);
        return 1;
      }
    }
    return 1;
  }
  return 0;
}

}  // namespace

const void* ret_instruction_near(const void* code) {
  Search s{reinterpret_cast<uintptr_t>(code), nullptr};
  dl_iterate_phdr(search_segment, &s);
  return s.found;
}

void* call_as_if_from(void* (*fn)(), void* a0, long a1, long a2, const void* ret_in_caller) {
  return vthread_arch_call_as_if_from(fn, a0, a1, a2, ret_in_caller);
}

}  // namespace vthread::arch
