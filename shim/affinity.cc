// CPU affinity of fibers: pthread_setaffinity_np / pthread_getaffinity_np, sched_setaffinity /
// sched_getaffinity for the calling thread, and pthread_attr_setaffinity_np at create.
//
// A fiber's mask is kept as a placement hint and reported back; it does not pin the fiber, and no
// carrier's kernel affinity is changed (one fiber asking for CPU 1 must not move the others that
// share its carrier). It follows the kernel's rules, so a program reads back what it would read
// natively: the mask is cut to the kernel's mask size (cpumask_size(), found by asking the kernel
// for the process's mask) and to the CPUs the process may use, EINVAL if nothing is left. A new
// thread inherits its creator's mask, as a kernel task does. The process's CPUs are those the
// kernel reports for it the first time a mask is needed; natively a thread may widen its mask to
// any CPU of its cpuset, here only to those.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

// The kernel's mask size (cpumask_size()) and the CPUs the process may use. Published once, by
// compare-and-swap rather than under a lock, so a fork child never finds it held.
struct ProcessCpus {
  size_t bytes;
  unsigned char mask[];
};
std::atomic<ProcessCpus*> g_process{nullptr};

// Null if memory ran out or the kernel would not tell.
const ProcessCpus* process_cpus() {
  ProcessCpus* cpus = g_process.load(std::memory_order_acquire);
  if (cpus) return cpus;
  // The kernel refuses buffers too small for its masks and answers with how much it copied.
  for (size_t size = 128; size <= (size_t{1} << 20); size *= 2) {
    cpus = static_cast<ProcessCpus*>(calloc(1, sizeof(ProcessCpus) + size));
    if (!cpus) return nullptr;
    long copied = arch::raw_syscall(SYS_sched_getaffinity, getpid(), size, cpus->mask);
    if (copied > 0) {
      cpus->bytes = static_cast<size_t>(copied);
      ProcessCpus* first = nullptr;
      if (g_process.compare_exchange_strong(first, cpus, std::memory_order_acq_rel)) return cpus;
      free(cpus);
      return first;
    }
    free(cpus);
    if (copied != -EINVAL) return nullptr;
  }
  return nullptr;
}

// The mask the kernel would store for `set` (`size` bytes): bits past its mask size ignored, bits
// it lacks clear, only the process's CPUs. EINVAL if no CPU is left.
int make_mask(size_t size, const cpu_set_t* set, unsigned char** out) {
  if (!set) return EFAULT;
  const ProcessCpus* cpus = process_cpus();
  auto* mask = cpus ? static_cast<unsigned char*>(calloc(1, cpus->bytes)) : nullptr;
  if (!mask) return ENOMEM;
  memcpy(mask, set, size < cpus->bytes ? size : cpus->bytes);
  bool any = false;
  for (size_t i = 0; i < cpus->bytes; ++i) {
    mask[i] &= cpus->mask[i];
    any |= mask[i] != 0;
  }
  if (!any) {
    free(mask);
    return EINVAL;
  }
  *out = mask;
  return 0;
}

int set_affinity(sched::Fiber* fiber, size_t size, const cpu_set_t* set) {
  unsigned char* mask;
  int err = make_mask(size, set, &mask);
  if (err) return err;
  err = with_live_state(fiber, [&](ThreadState* state) {
    unsigned char* old = state->affinity;
    state->affinity = mask;
    mask = old;
    return 0;
  });
  free(mask);
  return err;
}

int get_affinity(sched::Fiber* fiber, size_t size, cpu_set_t* set) {
  // The kernel's own checks of the size (a multiple of sizeof(long), room for every CPU it can
  // have) and of the buffer: it writes this kernel thread's mask there, and ours then replaces it.
  long copied = arch::raw_syscall(SYS_sched_getaffinity, 0, size < INT_MAX ? size : INT_MAX, set);
  if (copied < 0) return static_cast<int>(-copied);
  const ProcessCpus* cpus = process_cpus();
  if (!cpus) return ENOMEM;
  int err = with_live_state(fiber, [&](ThreadState* state) {
    memcpy(set, state->affinity ? state->affinity : cpus->mask, static_cast<size_t>(copied));
    return 0;
  });
  if (err) return err;
  memset(reinterpret_cast<char*>(set) + copied, 0, size - static_cast<size_t>(copied));  // as glibc does
  return 0;
}

// The fiber a pid names for sched_{set,get}affinity: 0 and the caller's own kernel tid (what
// gettid() returned it) mean the calling fiber; the main thread's tid (the process id) the main
// fiber. Any other pid is not a fiber.
sched::Fiber* fiber_of_pid(const ShimEntry& entry, pid_t pid) {
  if (!sched::started()) return nullptr;
  if (entry.fiber() && (pid == 0 || pid == static_cast<pid_t>(arch::raw_syscall(SYS_gettid)))) return entry.fiber();
  if (pid == main_fiber_tid()) return sched::main_fiber();
  return nullptr;
}

int attr_mask_past_setsize(const pthread_attr_t* attr, unsigned char** out) {
  for (size_t size = 2 * sizeof(cpu_set_t); size <= (size_t{1} << 20); size *= 2) {
    auto* set = static_cast<cpu_set_t*>(malloc(size));
    if (!set) return EAGAIN;
    int err = pthread_attr_getaffinity_np(attr, size, set);
    if (!err) err = make_mask(size, set, out);
    else if (err == EINVAL) err = -1;  // the getter wants a larger buffer still
    free(set);
    if (err >= 0) return err;
  }
  return EINVAL;
}

}  // namespace

// glibc reports an attribute without a mask as all ones, whatever the size asked for, and refuses
// (EINVAL) a size too small for the CPUs set in a mask. Asking for CPU_SETSIZE CPUs, all ones
// means no mask, unless the program set all of those CPUs, which on a machine that has no more
// than that many is every CPU there is: it is then taken as inherited. The rare mask that sets
// CPUs past CPU_SETSIZE is read with larger buffers.
int init_affinity(const pthread_attr_t* attr, ThreadState* child) {
  uint64_t query[sizeof(cpu_set_t) / sizeof(uint64_t)];
  int err = pthread_attr_getaffinity_np(attr, sizeof query, reinterpret_cast<cpu_set_t*>(query));
  if (err == EINVAL) return attr_mask_past_setsize(attr, &child->affinity);
  for (uint64_t word : query) {
    if (word != ~uint64_t{0}) return make_mask(sizeof query, reinterpret_cast<cpu_set_t*>(query), &child->affinity);
  }
  sched::Fiber* self = sched::current();
  const ProcessCpus* cpus = g_process.load(std::memory_order_acquire);
  if (!self || !cpus) return 0;  // nobody has a mask yet
  size_t bytes = cpus->bytes;
  auto* mask = static_cast<unsigned char*>(malloc(bytes));
  if (!mask) return EAGAIN;
  bool inherited = false;
  with_live_state(self, [&](ThreadState* state) {
    if (state->affinity) memcpy(mask, state->affinity, bytes);
    inherited = state->affinity != nullptr;
    return 0;
  });
  if (inherited) {
    child->affinity = mask;
  } else {
    free(mask);
  }
  return 0;
}

void release_sched_attrs(ThreadState* state) {
  free(state->affinity);
  state->affinity = nullptr;
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_setaffinity_np(pthread_t thread, size_t size, const cpu_set_t* set) {
  ShimEntry entry("pthread_setaffinity_np");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_setaffinity_np(thread, size, set);
  return shim::set_affinity(fiber, size, set);
}

int pthread_getaffinity_np(pthread_t thread, size_t size, cpu_set_t* set) {
  ShimEntry entry("pthread_getaffinity_np");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_getaffinity_np(thread, size, set);
  return shim::get_affinity(fiber, size, set);
}

int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* set) {
  ShimEntry entry("sched_setaffinity");
  sched::Fiber* fiber = shim::fiber_of_pid(entry, pid);
  if (!fiber) return libc::sched_setaffinity(pid, size, set);
  int err = shim::set_affinity(fiber, size, set);
  if (!err) return 0;
  errno = err;
  return -1;
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* set) {
  ShimEntry entry("sched_getaffinity");
  sched::Fiber* fiber = shim::fiber_of_pid(entry, pid);
  if (!fiber) return libc::sched_getaffinity(pid, size, set);
  int err = shim::get_affinity(fiber, size, set);
  if (!err) return 0;
  errno = err;
  return -1;
}

}  // extern "C"
