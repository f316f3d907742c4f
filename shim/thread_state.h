// What the shim keeps per thread, beyond the scheduler's fiber record: the start routine, the
// pthread_exit landing point, thread-specific data and scheduling attributes. Reached through
// Fiber::user_data; threads that are not fibers have one in ordinary thread-local storage.
#ifndef VTHREAD_SHIM_THREAD_STATE_H_
#define VTHREAD_SHIM_THREAD_STATE_H_

#include <limits.h>  // PTHREAD_KEYS_MAX, PTHREAD_DESTRUCTOR_ITERATIONS
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <unwind.h>

#include <atomic>

#include "sched/sched.h"

namespace vthread::shim {

constexpr int kKeyBlockSize = 32;
constexpr int kKeyBlocks = PTHREAD_KEYS_MAX / kKeyBlockSize;

struct SpecificEntry {
  uintptr_t seq;  // the key's sequence number when the value was set; stale after key_delete
  void* value;
};

struct ThreadState {
  void* (*start_routine)(void*);
  void* arg;
  void* exit_value;
  jmp_buf exit_landing;           // pthread_exit unwinds to here
  void* exit_frame;               // thread_entry's frame, where unwinding stops (null: main fiber)
  _Unwind_Exception exit_exception;       // the forced unwind in flight
  __pthread_unwind_buf_t* cleanup_chain;  // innermost C pthread_cleanup_push buffer
  // Cancellation (cancel.h): the kCancel* bits, and the park a cancellation point (or a wait that
  // signals end) is about to make or is in, as its sequence number and what may end it (cancel.cc),
  // or 0. pthread_cancel and pthread_kill read and write them from other threads, hence atomics.
  std::atomic<uint32_t> cancel;
  std::atomic<uint64_t> cancel_park;
  SpecificEntry* key_blocks[kKeyBlocks];  // allocated on first setspecific in each block
  // The robust mutexes the thread holds (mutex.cc), linked through their __list fields.
  __pthread_list_t* robust_held;
  // Scheduling attributes (sched_attrs.h), guarded by the fiber's lifecycle lock: other threads
  // set them. The policy and priority as the program set or inherited them (SCHED_OTHER = 0 by
  // default), and the CPU affinity: a mask of the kernel's mask size, or null for every CPU the
  // process may use.
  int sched_policy;
  int sched_priority;
  unsigned char* affinity;
  // A waiter on a priority-inheritance mutex the thread holds raised its run-queue level above
  // what its policy and priority give (mutex.cc); set under the lifecycle lock.
  bool priority_lent;
  // The thread's alternate signal stack as sigaltstack set it (altstack.cc); until set, none (the
  // main thread's is what it had when the runtime started).
  stack_t altstack;
  bool altstack_set;
  // How many times a handler of the program ran in this thread (signal_route.cc): sigsuspend and
  // pause return once it moved. Only the thread itself touches it.
  uint32_t handlers_run;
  // Whether the last of them asked for SA_RESTART: futex.cc then restarts the untimed wait it
  // interrupted, as the kernel does. Only the thread itself touches it.
  bool handler_restarts;
};

// The calling thread's state, created on first use; nullptr only if memory ran out. Before the
// runtime starts, the main thread's state hangs off the main fiber record so it carries over.
ThreadState* thread_state();

// pthread_t values: a fiber's is the address of its record; the main fiber's is the glibc value
// the main thread had before the runtime started, so handles taken early stay valid.
pthread_t handle_of(sched::Fiber* fiber);
// The fiber a handle names, or nullptr (unknown, exited and reaped, or not a fiber).
sched::Fiber* fiber_of(pthread_t handle);

// Starts the runtime if it is not running yet. Returns false if it could not.
bool ensure_runtime();

// Takes over the program's signal dispositions (the runtime's handler for those it catches, the
// tick signal and SIGSEGV), then starts preemption and the monitor (shim/sigaction.cc).
// Called by ensure_runtime() once the scheduler has started, on the main fiber.
void start_preemption();
// The tick signal's bit (sig-1), or 0 before start_preemption() or without preemption: it is
// never in a fiber's applied mask; Fiber::app_blocks_tick says whether the program blocked it.
uint64_t tick_signal_bit();
// In a fork child, first: releases what another thread may have held of the signal state, and
// clears every pending signal (the child starts with none).
void reset_signals_after_fork();

// The kernel thread id the main fiber had before the runtime started. Identities it took then
// (mutex ownership) stay valid after it became a fiber.
int main_fiber_tid();

// Runs thread-specific-data destructors (defined in keys.cc) and frees the key blocks.
void run_key_destructors(ThreadState* state);

// Marks every robust mutex the exiting thread still holds owner-dead and releases it (mutex.cc),
// as the kernel does for a kernel thread's robust list.
void mark_robust_mutexes_owner_dead(ThreadState* state);

// In a fork child: releases the key registry's lock, which another thread may have held.
void reset_keys_after_fork();

// The end of every fiber's life (thread_exit.cc): key destructors, then exit with `value`.
[[noreturn]] void finish_thread(ThreadState* state, void* value);

// The start of every fiber's life (thread.cc): runs the start routine, lands pthread_exit.
void thread_entry(void* state);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_THREAD_STATE_H_
