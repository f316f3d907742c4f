#include "sched/stack.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <new>

#include "sched/spinlock.h"

namespace vthread::sched {
namespace {

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

// Enough to absorb create/exit churn without keeping much memory: a pooled stack keeps the pages its
// last fiber touched.
constexpr size_t kMaxPooled = 256;

size_t g_page_size = 4096;
size_t g_pooled_size = 0;     // usable size of pooled stacks
size_t g_pooled_guard = 0;
bool g_guard_markers = false;

// Free stacks of the pooled geometry (the top of each holds its TCB, so nothing is linked through
// the stacks themselves).
Spinlock g_pool_lock;
Stack g_pool[kMaxPooled];
size_t g_pool_count = 0;

size_t round_up(size_t n, size_t to) { return (n + to - 1) & ~(to - 1); }

bool install_guard(char* base, size_t guard) {
  if (guard == 0) return true;
  if (g_guard_markers) return madvise(base, guard, MADV_GUARD_INSTALL) == 0;
  return mprotect(base, guard, PROT_NONE) == 0;
}

}  // namespace

void StackAllocator::init(size_t default_size) {
  g_page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  g_pooled_size = round_up(default_size, g_page_size);
  g_pooled_guard = g_page_size;
  void* probe = mmap(nullptr, 2 * g_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe != MAP_FAILED) {
    g_guard_markers = madvise(probe, g_page_size, MADV_GUARD_INSTALL) == 0;
    munmap(probe, 2 * g_page_size);
  }
}

bool StackAllocator::allocate(size_t size, size_t guard, Stack* out) {
  size = round_up(size, g_page_size);
  guard = round_up(guard, g_page_size);
  if (size == g_pooled_size && guard == g_pooled_guard) {
    SpinlockGuard hold(g_pool_lock);
    if (g_pool_count > 0) {
      *out = g_pool[--g_pool_count];
      return true;
    }
  }
  if (size + guard < size) return false;
  void* base = mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (base == MAP_FAILED) return false;
  if (!install_guard(static_cast<char*>(base), guard)) {
    munmap(base, size + guard);
    return false;
  }
  char* lo = static_cast<char*>(base) + guard;
  *out = Stack{lo, lo + size, guard, true, nullptr};
  return true;
}

bool StackAllocator::pool(Stack* stack) {
  if (!stack->owned || stack->size() != g_pooled_size || stack->guard_size != g_pooled_guard) return false;
  SpinlockGuard hold(g_pool_lock);
  if (g_pool_count == kMaxPooled) return false;
  g_pool[g_pool_count++] = *stack;
  *stack = Stack{};
  return true;
}

void StackAllocator::unmap(Stack* stack) {
  if (stack->owned) munmap(stack->lo - stack->guard_size, stack->size() + stack->guard_size);
  *stack = Stack{};
}

void StackAllocator::for_each_pooled_tcb(void (*visit)(char* tcb, void* arg), void* arg) {
  SpinlockGuard hold(g_pool_lock);
  for (size_t i = 0; i < g_pool_count; ++i) {
    if (g_pool[i].tcb) visit(g_pool[i].tcb, arg);
  }
}

Stack StackAllocator::wrap(void* addr, size_t size) {
  char* lo = static_cast<char*>(addr);
  return Stack{lo, lo + size, 0, false, nullptr};
}

void StackAllocator::reset_after_fork() {
  new (&g_pool_lock) Spinlock();
  g_pool_count = 0;
}

bool StackAllocator::guards_are_markers() { return g_guard_markers; }
size_t StackAllocator::page_size() { return g_page_size; }

}  // namespace vthread::sched
