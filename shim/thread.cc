// Thread lifecycle: pthread_create, the join family, detach, exit, self, equal, once, names and
// pthread_getattr_np, translated onto sched/.
//
// pthread_attr_t is left to glibc: its functions only read and write the object's bytes, so glibc's
// own implementation already gives glibc's exact validation and error codes. pthread_create reads
// the attributes back through glibc's getters (the scheduling ones in sched_param.cc and
// affinity.cc). VTHREAD_STACK_SIZE becomes glibc's default stack size
// (pthread_setattr_default_np), so pthread_attr_getstacksize and the fibers agree on it.
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/parking_lot.h"
#include "sched/preempt.h"
#include "sched/spinlock.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/settings.h"
#include "shim/sync.h"
#include "shim/thread_state.h"
#include "shim/time_convert.h"
#include "shim/unwind_guard.h"

namespace vthread::shim {
namespace {

using sched::Fiber;

pthread_t g_main_handle = 0;
int g_main_tid = 0;
__thread ThreadState* tls_foreign_state __attribute__((tls_model("initial-exec")));

ThreadState* new_thread_state() { return static_cast<ThreadState*>(calloc(1, sizeof(ThreadState))); }

// The name a thread has at first: the kernel's name of the main thread, inherited like comm.
void name_main_fiber(Fiber* main) {
  if (main->name[0]) return;
  char name[16] = "";
  libc::pthread_getname_np(libc::pthread_self(), name, sizeof name);
  sched::set_name(main, name);
}

}  // namespace

void thread_entry(void* arg) {
  auto* state = static_cast<ThreadState*>(arg);
  state->exit_frame = __builtin_frame_address(0);
  void* value;
  if (setjmp(state->exit_landing) == 0) {
    value = state->start_routine(state->arg);
  } else {
    value = state->exit_value;  // pthread_exit unwound to here
  }
  finish_thread(state, value);
}

namespace {

int join_error(sched::JoinResult r) {
  switch (r) {
    case sched::JoinResult::kJoined: return 0;
    case sched::JoinResult::kDetached: return EINVAL;
    case sched::JoinResult::kAlreadyJoined: return EINVAL;
    case sched::JoinResult::kDeadlock: return EDEADLK;
    case sched::JoinResult::kTimedOut: return ETIMEDOUT;
    case sched::JoinResult::kBusy: return EBUSY;
    case sched::JoinResult::kInterrupted: return EINTR;  // not returned: the joiner acts on the cancel
  }
  return EINVAL;
}

// Common body of the join family. `deadline` is monotonic (or kNoDeadline / kTryJoin).
int join_fiber(ShimEntry& entry, pthread_t handle, void** result, sched::Nanos deadline) {
  Fiber* target = fiber_of(handle);
  if (!target) return ESRCH;
  if (!entry.fiber()) {
    // Not a fiber (a thread glibc created itself): it cannot park, so it polls.
    for (;;) {
      sched::JoinResult r = sched::join(target, sched::kTryJoin, result);
      if (r != sched::JoinResult::kBusy || deadline == sched::kTryJoin) return join_error(r);
      if (sched::monotonic_now() >= deadline) return ETIMEDOUT;
      struct timespec pause = {0, 1000000};
      libc::nanosleep(&pause, nullptr);
    }
  }
  // A cancellation point when it has to wait, as glibc's (which acts only while the target runs, and
  // after its EDEADLK/EINVAL checks). pthread_tryjoin_np is none.
  Fiber* self = entry.fiber();
  bool cancellable = false;
  if (deadline != sched::kTryJoin && target != self) {
    sched::SpinlockGuard hold(target->lifecycle_lock);
    cancellable = !target->detached && !target->exited.load(std::memory_order_relaxed);
  }
  if (!cancellable) return join_error(sched::join(target, deadline, result));  // no wait
  // Ended by a cancel or a handler, the join leaves the target joinable (sched::join undid our
  // claim), as glibc's join cleanup handler does: a cancel is acted on, and after a handler (which
  // ran as the fiber resumed) the join starts again.
  sched::JoinResult r = sched::JoinResult::kInterrupted;
  while (park_interruptibly(self, [&] {
    r = sched::join(target, deadline, result);
    return r == sched::JoinResult::kInterrupted;
  })) {
    cancellation_point(self);
  }
  return join_error(r);
}

// pthread_once states, compatible with glibc's encoding (__PTHREAD_ONCE_INPROGRESS = 1,
// __PTHREAD_ONCE_DONE = 2) so glibc's own inline checks agree with ours.
constexpr int kOnceInProgress = 1;
constexpr int kOnceDone = 2;

struct OnceUnwind {
  int* word;
  Fiber* fiber;
  const char* outer_call;
};

// The initializer was left by unwinding (it threw, or its thread exited or was cancelled). As
// glibc's clear_once_control: the control goes back to "not run" and the waiters wake, so that one
// of them (or a later caller) runs the initializer.
void reset_once_on_unwind(void* arg) {
  auto* u = static_cast<OnceUnwind*>(arg);
  __atomic_store_n(u->word, 0, __ATOMIC_RELEASE);
  sched::parking_lot::unpark_all(u->word);
  vthread::arch::raw_syscall(SYS_futex, u->word, FUTEX_WAKE_PRIVATE, INT_MAX);
  if (u->fiber) u->fiber->in_call = u->outer_call;  // ShimEntry's destructor will not run
}

bool start_runtime(const sched::Config& config) {
  if (!sched::start(config)) return false;
  // An asynchronous cancel acts at a preemption safe point too, not only at the next shim entry.
  sched::preempt::set_tick_hook(act_on_cancel_at_tick);
  start_preemption();
  start_profiler_if_asked();
  return true;
}

}  // namespace

bool ensure_runtime() {
  if (sched::started()) return true;
  // The thread that starts the runtime becomes the main fiber; its glibc handle stays its pthread_t.
  g_main_handle = libc::pthread_self();
  g_main_tid = static_cast<int>(gettid());
  Fiber* main = sched::main_fiber();
  if (main) name_main_fiber(main);
  // Now, so that pthread_cancel and the scheduling calls find every live fiber's state.
  ThreadState* state = thread_state();
  if (main && state) {
    adopt_main_sched(main, state);
    // The main thread's alternate signal stack becomes its own, virtual one (altstack.cc).
    state->altstack_set = arch::raw_syscall(SYS_sigaltstack, nullptr, &state->altstack) == 0;
  }
  pthread_attr_t defaults;
  size_t default_stack = 8 << 20;
  if (pthread_getattr_default_np(&defaults) == 0) {
    pthread_attr_getstacksize(&defaults, &default_stack);
    sched::Config config = read_settings(default_stack);
    if (config.default_stack_size != default_stack) {
      pthread_attr_setstacksize(&defaults, config.default_stack_size);
      pthread_setattr_default_np(&defaults);
    }
    pthread_attr_destroy(&defaults);
    return start_runtime(config);
  }
  return start_runtime(read_settings(default_stack));
}

ThreadState* thread_state() {
  Fiber* fiber = sched::current();
  if (!fiber && !sched::started()) fiber = sched::main_fiber();
  if (fiber) {
    if (!fiber->user_data) fiber->user_data = new_thread_state();
    return static_cast<ThreadState*>(fiber->user_data);
  }
  if (!tls_foreign_state) tls_foreign_state = new_thread_state();
  return tls_foreign_state;
}

int main_fiber_tid() { return g_main_tid; }

pthread_t handle_of(Fiber* fiber) {
  return fiber->is_main ? g_main_handle : reinterpret_cast<pthread_t>(fiber);
}

Fiber* fiber_of(pthread_t handle) {
  if (!sched::started()) return nullptr;
  if (handle == g_main_handle) return sched::main_fiber();
  return sched::FiberTable::lookup(handle);
}

}  // namespace vthread::shim

using vthread::shim::ShimEntry;
namespace sched = vthread::sched;
namespace shim = vthread::shim;
namespace libc = vthread::libc;

extern "C" {

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start_routine)(void*), void* arg) {
  ShimEntry entry("pthread_create");
  if (!shim::ensure_runtime()) return EAGAIN;
  pthread_attr_t defaults;
  if (!attr) {
    if (pthread_getattr_default_np(&defaults) != 0) return EAGAIN;
    attr = &defaults;
  }
  sched::SpawnAttributes spawn;
  int detach_state = PTHREAD_CREATE_JOINABLE;
  void* stack_addr = nullptr;
  size_t stack_size = 0;
  pthread_attr_getdetachstate(attr, &detach_state);
  pthread_attr_getguardsize(attr, &spawn.guard_size);
  pthread_attr_getstack(attr, &stack_addr, &stack_size);
  // glibc keeps the stack's top; an attribute without a stack reports address 0 - size.
  if (reinterpret_cast<uintptr_t>(stack_addr) + stack_size != 0) spawn.stack_addr = stack_addr;
  pthread_attr_getstacksize(attr, &stack_size);
  spawn.stack_size = stack_size;
  spawn.detached = detach_state == PTHREAD_CREATE_DETACHED;

  auto* state = static_cast<shim::ThreadState*>(calloc(1, sizeof(shim::ThreadState)));
  int err = state ? shim::init_sched_attrs(attr, state, &spawn.priority) : EAGAIN;
  if (attr == &defaults) pthread_attr_destroy(&defaults);
  if (err) {
    free(state);
    return err;
  }
  state->start_routine = start_routine;
  state->arg = arg;
  // spawn() stores the record's address, which is the new thread's pthread_t, before the thread can
  // run, as glibc does: programs read a global pthread_t from the new thread.
  static_assert(sizeof(pthread_t) == sizeof(sched::Fiber*));
  err = sched::spawn(spawn, shim::thread_entry, state, state, reinterpret_cast<sched::Fiber**>(thread));
  if (err) {
    shim::release_sched_attrs(state);
    free(state);
  }
  return err;
}

int pthread_join(pthread_t thread, void** result) {
  ShimEntry entry("pthread_join");
  return shim::join_fiber(entry, thread, result, sched::kNoDeadline);
}

int pthread_tryjoin_np(pthread_t thread, void** result) {
  ShimEntry entry("pthread_tryjoin_np");
  return shim::join_fiber(entry, thread, result, sched::kTryJoin);
}

int pthread_clockjoin_np(pthread_t thread, void** result, clockid_t clock, const struct timespec* abstime) {
  ShimEntry entry("pthread_clockjoin_np");
  if (!abstime) return shim::join_fiber(entry, thread, result, sched::kNoDeadline);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  if (!shim::valid_timespec(*abstime)) return EINVAL;
  return shim::join_fiber(entry, thread, result, shim::monotonic_deadline(clock, *abstime));
}

int pthread_timedjoin_np(pthread_t thread, void** result, const struct timespec* abstime) {
  return pthread_clockjoin_np(thread, result, CLOCK_REALTIME, abstime);
}

int pthread_detach(pthread_t thread) {
  ShimEntry entry("pthread_detach");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) return ESRCH;
  return sched::detach(target) ? 0 : EINVAL;
}

pthread_t pthread_self(void) {
  sched::Fiber* self = sched::current();
  return self ? shim::handle_of(self) : libc::pthread_self();
}

int pthread_equal(pthread_t a, pthread_t b) { return a == b; }

int pthread_once(pthread_once_t* once, void (*init)(void)) {
  ShimEntry entry("pthread_once");
  int* word = reinterpret_cast<int*>(once);
  for (;;) {
    int seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    if (seen == shim::kOnceDone) return 0;
    if (seen != shim::kOnceInProgress) {
      if (!__atomic_compare_exchange_n(word, &seen, shim::kOnceInProgress, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_ACQUIRE)) {
        continue;
      }
      shim::OnceUnwind on_unwind{word, entry.fiber(), entry.outer_call()};
      vthread_call_with_unwind_cleanup(init, shim::reset_once_on_unwind, &on_unwind);
      __atomic_store_n(word, shim::kOnceDone, __ATOMIC_RELEASE);
      sched::parking_lot::unpark_all(word);
      // Threads that are not fibers wait on the kernel futex.
      vthread::arch::raw_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX);
      return 0;
    }
    if (entry.fiber()) {
      unsigned no_foreign_waiters = 0;  // they are woken by the futex call above in any case
      shim::wait_on_word_or_signal(word, shim::kOnceInProgress, &no_foreign_waiters, sched::WaitReason::kOnce,
                                   sched::kNoDeadline);
    } else {
      vthread::arch::raw_syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, shim::kOnceInProgress, nullptr);
    }
  }
}

int pthread_setname_np(pthread_t thread, const char* name) {
  ShimEntry entry("pthread_setname_np");
  if (strlen(name) > 15) return ERANGE;
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) {
    if (sched::started() && thread != shim::g_main_handle) return ESRCH;
    return libc::pthread_setname_np(thread, name);  // before the runtime: the real main thread
  }
  sched::set_name(target, name);
  // The main thread's kernel name is what ps and top show for the process: keep it in step.
  if (target->is_main) libc::pthread_setname_np(shim::g_main_handle, name);
  return 0;
}

int pthread_getname_np(pthread_t thread, char* name, size_t size) {
  ShimEntry entry("pthread_getname_np");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target) {
    if (sched::started() && thread != shim::g_main_handle) return ESRCH;
    return libc::pthread_getname_np(thread, name, size);
  }
  if (size < 16) return ERANGE;  // glibc's rule: the buffer must hold any thread name
  memcpy(name, target->name, sizeof target->name);
  return 0;
}

int pthread_getattr_np(pthread_t thread, pthread_attr_t* attr) {
  ShimEntry entry("pthread_getattr_np");
  sched::Fiber* target = shim::fiber_of(thread);
  if (!target || target->is_main) return libc::pthread_getattr_np(target ? shim::g_main_handle : thread, attr);
  int err = pthread_attr_init(attr);
  if (err) return err;
  pthread_attr_setstack(attr, target->stack.lo, target->stack.size());
  pthread_attr_setguardsize(attr, target->stack.guard_size);
  {
    vthread::sched::SpinlockGuard hold(target->lifecycle_lock);
    if (target->detached) pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
  }
  return 0;
}

}  // extern "C"
