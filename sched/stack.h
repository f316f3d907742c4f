// Fiber stacks: anonymous MAP_NORESERVE mappings (only touched pages cost memory) with a guard
// below. Guards are MADV_GUARD_INSTALL page-table markers where the kernel has them (Linux 6.13+):
// they cost no VMA, so adjacent stacks merge into one mapping and a million of them stay far below
// vm.max_map_count. Elsewhere guards are PROT_NONE pages (two VMAs per stack; ~32k stacks at the
// default max_map_count). Default-sized stacks are pooled for reuse.
#ifndef VTHREAD_SCHED_STACK_H_
#define VTHREAD_SCHED_STACK_H_

#include <stddef.h>

namespace vthread::sched {

struct Stack {
  char* lo = nullptr;       // lowest usable byte (just above the guard)
  char* hi = nullptr;       // one past the highest usable byte
  size_t guard_size = 0;    // bytes of guard directly below lo (0 for user-supplied stacks)
  bool owned = false;       // allocated here (false: the program's own memory, or the process stack)
  char* tcb = nullptr;      // the thread control block at its top (sched/tls.h), kept while pooled

  size_t size() const { return static_cast<size_t>(hi - lo); }
  bool contains(const void* p) const { return p >= lo && p < hi; }
  bool in_guard(const void* p) const { return p >= lo - guard_size && p < lo; }
};

class StackAllocator {
 public:
  // Probes the guard mechanism and fixes the pooled size. Call once before allocate().
  static void init(size_t default_size);
  // Maps a stack of at least `size` usable bytes (rounded up to pages) with `guard` bytes of guard,
  // or takes one from the pool (its `tcb` is then set). Returns false (ENOMEM/EAGAIN situation) if
  // the kernel refuses.
  static bool allocate(size_t size, size_t guard, Stack* out);
  // Keeps an owned stack of the pooled geometry, with its TCB, for the next allocate(). Returns
  // false if it was not kept: the caller frees its TCB and then calls unmap().
  static bool pool(Stack* stack);
  // Unmaps an owned stack. No-op for stacks not owned.
  static void unmap(Stack* stack);
  // Calls visit(tcb, arg) for the TCB of every pooled stack that has one.
  static void for_each_pooled_tcb(void (*visit)(char* tcb, void* arg), void* arg);
  // Wraps memory the program supplied (pthread_attr_setstack).
  static Stack wrap(void* addr, size_t size);

  // In a fork child: forgets the pool (another thread may have been changing it at the fork).
  static void reset_after_fork();

  static bool guards_are_markers();
  static size_t page_size();
};

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_STACK_H_
