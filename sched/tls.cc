// Per-fiber TCBs on glibc 2.36, x86_64.
//
// Layout. x86_64 glibc puts the TCB (struct pthread, 0x940 bytes) at the thread pointer and the
// static TLS blocks of all initially loaded modules (and a surplus for later dlopens) just below
// it. Like glibc's own allocate_stack, we place both at the top of the fiber's stack mapping:
//
//     lo                                                        stack_top    tp          hi
//     | stack, growing down ...                                 | static TLS | TCB 0x940 |
//
// and ask ld.so for the rest: _dl_allocate_tls(tp) allocates the DTV and copies every module's
// initial image (it is GLIBC_PRIVATE but kept stable for the sanitizers, which use it too).
//
// What glibc's pthread_create sets and a bare _dl_allocate_tls does not (research notes, section
// 1.3, each pitfall reproduced there): the self pointers; multiple_threads = 1 (else libc's
// catomic operations drop their lock prefix); the stack and pointer guards (copied, else canaries
// and mangled setjmp/atexit pointers break); a self-linked `list` (a fork child unlinks it); a
// unique fake tid (ld.so's recursive locks use tid as the owner: 0, or a tid shared by two fibers,
// lets one enter a lock the other holds); an empty robust list; specific[0]; the stack block (libc
// sizes alloca by it); rseq cpu_id = -2 ("not registered", else sched_getcpu() says 0 forever);
// and, in the thread itself, __ctype_init() and __resp.
//
// Recycling. glibc frees a thread's malloc tcache and arena attachment in __libc_thread_freeres,
// which it does not export. So a TCB is never thrown away with those still in it: a pooled stack
// keeps its TCB and is re-initialised the way glibc reuses cached stacks (free the dynamic TLS,
// clear the DTV, _dl_allocate_tls_init) with libc's own TLS block saved around it; and a TCB that
// must be freed hands libc's block to the next TCB built from scratch. Either way the process keeps
// one set of libc per-thread caches per concurrently live thread at most, as glibc does.
//
// Rejected: sharing the carrier's TLS and fixing errno up on each switch. Compilers keep the
// address of errno (and of any __thread variable) in registers across calls, so a fiber that
// migrates writes its old carrier's copy; and glibc's stdio and loader locks, and libstdc++'s
// caught-exception stack, are keyed on the TCB. That mode remains only as the fallback.
#include "sched/tls.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <locale.h>
#include <netdb.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>

#include "arch/thread_pointer.h"
#include "sched/spinlock.h"

namespace vthread::sched::tls {
namespace {

// struct pthread offsets in glibc 2.36 (checked against a glibc thread by check_probe()).
constexpr size_t kTcbSize = 0x940;
constexpr size_t kOffDtv = 0x08;
constexpr size_t kOffSelf = 0x10;
constexpr size_t kOffMultipleThreads = 0x18;
constexpr size_t kOffStackGuard = 0x28;
constexpr size_t kOffPointerGuard = 0x30;
constexpr size_t kOffFeature1 = 0x48;
constexpr size_t kOffList = 0x2c0;
constexpr size_t kOffTid = 0x2d0;
constexpr size_t kOffRobustPrev = 0x2d8;
constexpr size_t kOffRobustHead = 0x2e0;
constexpr size_t kOffCleanup = 0x2f8;
constexpr size_t kOffCleanupJmpBuf = 0x300;
constexpr size_t kOffCancelHandling = 0x308;
constexpr size_t kOffSpecific1stBlock = 0x310;
constexpr size_t kOffSpecific = 0x510;
constexpr size_t kOffStackBlock = 0x690;
constexpr size_t kOffStackBlockSize = 0x698;
constexpr size_t kOffGuardSize = 0x6a0;
constexpr size_t kOffReportedGuardSize = 0x6a8;
constexpr size_t kOffRes = 0x6b8;
constexpr size_t kResSize = 0x238;         // struct __res_state
constexpr size_t kOffTlsState = 0x900;     // strsignal/strerror_l buffers, owned like libc's TLS
constexpr size_t kTlsStateSize = 0x10;
constexpr ptrdiff_t kRseqOffset = 0x920;   // == __rseq_offset
constexpr uint32_t kRseqCpuIdRegistrationFailed = static_cast<uint32_t>(-2);
constexpr size_t kMinimalRestStack = 2048; // glibc's MINIMAL_REST_STACK
constexpr size_t kMaxLibcTls = 1024;       // 144 bytes in 2.36

union Dtv {
  size_t counter;
  struct {
    void* val;
    void* to_free;
  } pointer;
};

using AllocateTls = void* (*)(void*);
using AllocateTlsInit = void* (*)(void*, bool);
using DeallocateTls = void (*)(void*, bool);
using GetTlsStaticInfo = void (*)(size_t*, size_t*);
using TlsGetAddr = void* (*)(void*);

bool g_per_fiber = false;
char* g_initial_tp;       // the TCB of the thread that started the runtime (the main fiber's)
AllocateTls g_allocate_tls;
AllocateTlsInit g_allocate_tls_init;
DeallocateTls g_deallocate_tls;
TlsGetAddr g_tls_get_addr;
void (*g_ctype_init)();
void (*g_call_tls_dtors)();
size_t g_static_size;     // static TLS + TCB, as glibc reserves at the top of each stack
size_t g_static_align;
ptrdiff_t g_resp_offset;  // tp-relative address of libc's __resp
ptrdiff_t g_libc_tls_offset;
size_t g_libc_tls_size;

// libc's per-thread state, saved from TCBs that were freed, for TCBs built from scratch.
struct Remnant {
  Remnant* next;
  char tls_state[kTlsStateSize];
  char libc_block[];
};
Spinlock g_remnant_lock;
Remnant* g_remnants = nullptr;
Remnant* g_free_remnants = nullptr;
char* g_remnant_chunk = nullptr;
size_t g_remnant_chunk_left = 0;

// Modules whose static TLS after_dlopen() has seen (initialised by ld.so, or by us).
constexpr size_t kMaxModules = 4096;
uint64_t g_seen_modules[kMaxModules / 64];
Spinlock g_dlopen_lock;

template <typename T>
T& at(char* tp, size_t offset) {
  return *reinterpret_cast<T*>(tp + offset);
}

void say(const char* why) { fprintf(stderr, "vthread: %s; fibers share their carrier's thread-local storage\n", why); }

template <typename Fn>
bool resolve(Fn* out, const char* name) {
  *out = reinterpret_cast<Fn>(dlvsym(RTLD_DEFAULT, name, "GLIBC_PRIVATE"));
  return *out != nullptr;
}

size_t remnant_size() { return (sizeof(Remnant) + g_libc_tls_size + 15) & ~size_t{15}; }

Remnant* new_remnant() {
  if (Remnant* r = g_free_remnants) {
    g_free_remnants = r->next;
    return r;
  }
  size_t size = remnant_size();
  if (g_remnant_chunk_left < size) {
    constexpr size_t kChunk = 64 * 1024;
    void* chunk = mmap(nullptr, kChunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) return nullptr;
    g_remnant_chunk = static_cast<char*>(chunk);
    g_remnant_chunk_left = kChunk;
  }
  auto* r = reinterpret_cast<Remnant*>(g_remnant_chunk);
  g_remnant_chunk += size;
  g_remnant_chunk_left -= size;
  return r;
}

int find_libc_block(dl_phdr_info* info, size_t, void*) {
  if (!info->dlpi_name || !strstr(info->dlpi_name, "/libc.so.6") || !info->dlpi_tls_data) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS) {
      g_libc_tls_offset = static_cast<char*>(info->dlpi_tls_data) - arch::thread_pointer();
      g_libc_tls_size = info->dlpi_phdr[i].p_memsz;
      return 1;
    }
  }
  return 0;
}

// Sets the fields glibc's pthread_create would (see the top of this file).
void fill_tcb(char* tp, const Stack& stack, int fake_tid) {
  char* me = arch::thread_pointer();
  at<char*>(tp, 0) = tp;
  at<char*>(tp, kOffSelf) = tp;
  at<int>(tp, kOffMultipleThreads) = 1;
  at<uintptr_t>(tp, kOffStackGuard) = at<uintptr_t>(me, kOffStackGuard);
  at<uintptr_t>(tp, kOffPointerGuard) = at<uintptr_t>(me, kOffPointerGuard);
  at<uint32_t>(tp, kOffFeature1) = at<uint32_t>(me, kOffFeature1);
  at<char*>(tp, kOffList) = tp + kOffList;
  at<char*>(tp, kOffList + 8) = tp + kOffList;
  at<int>(tp, kOffTid) = fake_tid;
  at<char*>(tp, kOffRobustPrev) = tp + kOffRobustHead;
  at<char*>(tp, kOffRobustHead) = tp + kOffRobustHead;
  at<void*>(tp, kOffCleanup) = nullptr;
  at<void*>(tp, kOffCleanupJmpBuf) = nullptr;
  at<int>(tp, kOffCancelHandling) = 0;
  at<char*>(tp, kOffSpecific) = tp + kOffSpecific1stBlock;
  at<char*>(tp, kOffStackBlock) = stack.lo - stack.guard_size;
  at<size_t>(tp, kOffStackBlockSize) = stack.size() + stack.guard_size;
  at<size_t>(tp, kOffGuardSize) = stack.guard_size;
  at<size_t>(tp, kOffReportedGuardSize) = stack.guard_size;
  memset(tp + kOffRes, 0, kResSize);
  at<uint32_t>(tp, kRseqOffset) = 0;                                  // cpu_id_start
  at<uint32_t>(tp, kRseqOffset + 4) = kRseqCpuIdRegistrationFailed;  // cpu_id
}

// glibc's get_cached_stack recipe, keeping libc's own TLS block (malloc's caches) as it was.
bool reinitialise(char* tp) {
  Dtv* dtv = at<Dtv*>(tp, kOffDtv);
  for (size_t i = 0; i < dtv[-1].counter; ++i) free(dtv[1 + i].pointer.to_free);
  memset(dtv, 0, (dtv[-1].counter + 1) * sizeof(Dtv));
  char saved[kMaxLibcTls];
  memcpy(saved, tp + g_libc_tls_offset, g_libc_tls_size);
  bool ok = g_allocate_tls_init(tp, true) != nullptr;
  memcpy(tp + g_libc_tls_offset, saved, g_libc_tls_size);
  return ok;
}

void adopt_remnant(char* tp) {
  Remnant* r;
  {
    SpinlockGuard hold(g_remnant_lock);
    r = g_remnants;
    if (r) g_remnants = r->next;
  }
  if (!r) return;
  memcpy(tp + g_libc_tls_offset, r->libc_block, g_libc_tls_size);
  memcpy(tp + kOffTlsState, r->tls_state, kTlsStateSize);
  SpinlockGuard hold(g_remnant_lock);
  r->next = g_free_remnants;
  g_free_remnants = r;
}

bool all_zero(const char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

struct NewModule {
  ptrdiff_t offset;   // tp-relative address of its static block
  const char* image;
  size_t filesz;
  size_t memsz;
};

struct InitPass {
  NewModule modules[16];
  int count;
};

int find_new_static_modules(dl_phdr_info* info, size_t, void* arg) {
  auto* pass = static_cast<InitPass*>(arg);
  size_t modid = info->dlpi_tls_modid;
  if (modid == 0 || modid >= kMaxModules || (g_seen_modules[modid / 64] >> (modid % 64)) & 1) return 0;
  g_seen_modules[modid / 64] |= uint64_t{1} << (modid % 64);
  const ElfW(Phdr)* tls = nullptr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    if (info->dlpi_phdr[i].p_type == PT_TLS) tls = &info->dlpi_phdr[i];
  }
  if (!tls || pass->count == static_cast<int>(sizeof pass->modules / sizeof pass->modules[0])) return 0;
  // Where the calling thread has it: a static block lies within the static area below tp.
  size_t index[2] = {modid, 0};
  char* tp = arch::thread_pointer();
  char* block = static_cast<char*>(g_tls_get_addr(index));
  if (block < tp - g_static_size || block >= tp) return 0;
  pass->modules[pass->count++] = {block - tp, reinterpret_cast<const char*>(info->dlpi_addr + tls->p_vaddr),
                                  tls->p_filesz, tls->p_memsz};
  return 0;
}

void initialise_new_modules(char* tp, void* arg) {
  auto* pass = static_cast<InitPass*>(arg);
  for (int i = 0; i < pass->count; ++i) {
    const NewModule& m = pass->modules[i];
    char* block = tp + m.offset;
    // A block that is not all zero was initialised already: by ld.so (the TCB was made after the
    // library was loaded), or by the library's constructors in the thread that loaded it.
    if (!all_zero(block, m.memsz)) continue;
    memcpy(block, m.image, m.filesz);
  }
}

int mark_module_seen(dl_phdr_info* info, size_t, void*) {
  size_t modid = info->dlpi_tls_modid;
  if (modid != 0 && modid < kMaxModules) g_seen_modules[modid / 64] |= uint64_t{1} << (modid % 64);
  return 0;
}

}  // namespace

void init(bool want_per_fiber) {
  g_per_fiber = false;
  if (!want_per_fiber) return;
  if (strcmp(gnu_get_libc_version(), "2.36") != 0) {
    char why[96];
    snprintf(why, sizeof why, "glibc %s's thread control block layout is not known (2.36 is)", gnu_get_libc_version());
    say(why);
    return;
  }
  GetTlsStaticInfo get_static_info;
  void* resp;
  g_tls_get_addr = reinterpret_cast<TlsGetAddr>(dlsym(RTLD_DEFAULT, "__tls_get_addr"));
  if (!resolve(&g_allocate_tls, "_dl_allocate_tls") || !resolve(&g_allocate_tls_init, "_dl_allocate_tls_init") ||
      !resolve(&g_deallocate_tls, "_dl_deallocate_tls") || !resolve(&get_static_info, "_dl_get_tls_static_info") ||
      !resolve(&g_ctype_init, "__ctype_init") || !resolve(&g_call_tls_dtors, "__call_tls_dtors") ||
      !resolve(&resp, "__resp") || !g_tls_get_addr) {
    say("glibc's private TLS allocator (_dl_allocate_tls and friends) was not found");
    return;
  }
  get_static_info(&g_static_size, &g_static_align);
  g_resp_offset = static_cast<char*>(resp) - arch::thread_pointer();
  auto* rseq_offset = static_cast<const ptrdiff_t*>(dlsym(RTLD_DEFAULT, "__rseq_offset"));
  if (!rseq_offset || *rseq_offset != kRseqOffset || g_static_align < 16 || g_static_size <= kTcbSize ||
      !dl_iterate_phdr(find_libc_block, nullptr) || g_libc_tls_size > kMaxLibcTls) {
    say("glibc's thread control block is not laid out as expected");
    return;
  }
  dl_iterate_phdr(mark_module_seen, nullptr);
  g_initial_tp = arch::thread_pointer();
  arch::thread_pointer_init();
  g_per_fiber = true;
}

void probe_glibc_thread(GlibcThreadProbe* out) {
  char* tp = arch::thread_pointer();
  char* stackblock = at<char*>(tp, kOffStackBlock);
  out->layout_ok = at<char*>(tp, kOffSelf) == tp && at<int>(tp, kOffTid) == gettid() &&
                   at<char*>(tp, kOffSpecific) == tp + kOffSpecific1stBlock &&
                   at<char*>(tp, g_resp_offset) == tp + kOffRes && at<int>(tp, kOffMultipleThreads) == 1 &&
                   stackblock < tp && tp + kTcbSize <= stackblock + at<size_t>(tp, kOffStackBlockSize);
}

void check_probe(const GlibcThreadProbe& probe) {
  if (g_per_fiber && !probe.layout_ok) {
    say("a glibc thread's control block does not have the 2.36 layout");
    g_per_fiber = false;
  }
}

bool per_fiber() { return g_per_fiber; }

char* stack_top(const Stack& stack) {
  if (!stack.tcb) return stack.hi;
  return reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(stack.tcb + kTcbSize - g_static_size) & ~uintptr_t{63});
}

char* attach(Stack* stack, int fake_tid, bool* too_small) {
  *too_small = false;
  if (stack->tcb) {
    if (!reinitialise(stack->tcb)) return nullptr;
  } else {
    if (stack->size() < g_static_size + g_static_align + kMinimalRestStack) {
      *too_small = true;
      return nullptr;
    }
    char* tp = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(stack->hi - kTcbSize) & ~(g_static_align - 1));
    // A program-supplied stack may hold anything; ours are fresh zero pages. glibc zeroes only the
    // TCB, and so do we; the TLS blocks are initialised from their images.
    memset(tp, 0, kTcbSize);
    if (!g_allocate_tls(tp)) return nullptr;
    adopt_remnant(tp);
    stack->tcb = tp;
  }
  fill_tcb(stack->tcb, *stack, fake_tid);
  return stack->tcb;
}

void destroy(char* tp) {
  {
    SpinlockGuard hold(g_remnant_lock);
    if (Remnant* r = new_remnant()) {
      memcpy(r->libc_block, tp + g_libc_tls_offset, g_libc_tls_size);
      memcpy(r->tls_state, tp + kOffTlsState, kTlsStateSize);
      r->next = g_remnants;
      g_remnants = r;
    }
  }
  g_deallocate_tls(tp, false);
}

void enter_thread() {
  char* tp = arch::thread_pointer();
  g_ctype_init();
  at<void*>(tp, g_resp_offset) = tp + kOffRes;
  uselocale(LC_GLOBAL_LOCALE);
  h_errno = 0;
  errno = 0;
}

void run_thread_local_destructors() {
  if (g_per_fiber) g_call_tls_dtors();
}

void after_dlopen(void (*visit_tcbs)(void (*fn)(char* tp, void* arg), void* arg)) {
  if (!g_per_fiber) return;
  SpinlockGuard hold(g_dlopen_lock);
  InitPass pass{};
  dl_iterate_phdr(find_new_static_modules, &pass);
  if (pass.count > 0) visit_tcbs(initialise_new_modules, &pass);
}

void reset_after_fork(char* self_tp) {
  new (&g_remnant_lock) Spinlock();
  new (&g_dlopen_lock) Spinlock();
  if (!g_per_fiber || !self_tp) return;
  // glibc's fork child moved the running thread's TCB onto its dl_stack_user list; ours must not
  // stay there (glibc walks that list, and we free or reuse our TCBs). The initial thread's TCB
  // (the main fiber's) is glibc's own and stays.
  if (self_tp == g_initial_tp) return;
  char* list = self_tp + kOffList;
  char* next = at<char*>(self_tp, kOffList);
  char* prev = at<char*>(self_tp, kOffList + 8);
  *reinterpret_cast<char**>(next + 8) = prev;
  *reinterpret_cast<char**>(prev) = next;
  at<char*>(self_tp, kOffList) = list;
  at<char*>(self_tp, kOffList + 8) = list;
}

}  // namespace vthread::sched::tls
