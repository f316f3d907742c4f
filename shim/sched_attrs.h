// Scheduling attributes of threads that are fibers: policy and priority (sched_param.cc), CPU
// affinity (affinity.cc) and CPU-time clocks (cpu_clock.cc). Threads that are not fibers keep
// glibc's, and the kernel's, own.
//
// Nothing here reaches the kernel: a fiber's policy and priority choose its run-queue level
// (sched::set_priority), its affinity is kept and reported but does not pin it, and its CPU clock
// is the runtime's accounting (sched::cpu_time). Carriers keep the kernel scheduling and affinity
// they started with. Because no kernel policy is set, real-time policies are granted without the
// privilege check the kernel would make (EPERM): a SCHED_FIFO fiber only goes ahead of other
// fibers in its carrier's queue, it gets no real-time priority from the kernel.
#ifndef VTHREAD_SHIM_SCHED_ATTRS_H_
#define VTHREAD_SHIM_SCHED_ATTRS_H_

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <atomic>

#include "sched/sched.h"
#include "sched/spinlock.h"
#include "shim/thread_state.h"

namespace vthread::shim {

// The run-queue level of a POSIX policy and priority: SCHED_IDLE 0; SCHED_OTHER and SCHED_BATCH
// sched::kDefaultPriority; SCHED_FIFO and SCHED_RR 1..99 spread monotonically over the levels
// above it.
int run_queue_level(int policy, int priority);

// The main fiber starts with the policy and priority the kernel gives the main thread.
void adopt_main_sched(sched::Fiber* main, ThreadState* state);

// pthread_create: the new thread's policy, priority and affinity, from `attr` where it asks for
// them (PTHREAD_EXPLICIT_SCHED, pthread_attr_setaffinity_np), else from the calling thread. Sets
// *level to its run-queue level. Returns 0, or pthread_create's error (EINVAL: a priority out of
// the policy's range, or an affinity with no CPU the process may use).
int init_sched_attrs(const pthread_attr_t* attr, ThreadState* child, int* level);
int init_affinity(const pthread_attr_t* attr, ThreadState* child);  // affinity.cc
// Frees what init_sched_attrs() and the setters allocated, when the state goes.
void release_sched_attrs(ThreadState* state);

// True if `handle`, which fiber_of() did not find, named a fiber that has been joined or has
// exited detached: ESRCH, where glibc would read the freed descriptor.
inline bool reaped_fiber(pthread_t handle) { return sched::FiberTable::in_range(handle); }

// Runs fn(state) with `fiber`'s lifecycle lock held, so the state cannot be freed meanwhile.
// Returns ESRCH, as glibc does for a thread whose kernel task is gone, once the thread has
// finished (its state is freed after its key destructors).
template <typename Fn>
int with_live_state(sched::Fiber* fiber, Fn fn) {
  sched::SpinlockGuard hold(fiber->lifecycle_lock);
  auto* state = static_cast<ThreadState*>(fiber->user_data);
  if (!state || fiber->exited.load(std::memory_order_relaxed)) return ESRCH;
  return fn(state);
}

// CPU-time clocks of fibers, as pthread_getcpuclockid() makes them (cpu_clock.cc).
bool is_fiber_cpu_clock(clockid_t clock);
// The fiber whose clock `clock` is, or nullptr if it has exited or never was.
sched::Fiber* fiber_of_cpu_clock(clockid_t clock);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_SCHED_ATTRS_H_
