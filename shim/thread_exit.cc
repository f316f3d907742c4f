// How a thread ends: pthread_exit, C cleanup handlers, and the exit sequence.
//
// pthread_exit unwinds the thread's stack as glibc does (_Unwind_ForcedUnwind from libgcc_s,
// loaded on first use), so C++ destructors and -fexceptions cleanups in the frames being left run.
// C code built without -fexceptions registers pthread_cleanup_push buffers through
// __pthread_register_cancel; glibc keeps that chain in its thread descriptor, which fibers share
// with their carrier, so the shim keeps it per thread instead. Unwinding goes buffer by buffer, as
// in glibc: unwind to the innermost buffer's frame, jump into it, its handler runs and calls
// __pthread_unwind_next, which unwinds on to the next buffer and finally to thread_entry's landing.
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unwind.h>

#include <atomic>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/spinlock.h"
#include "shim/cancel.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

struct Unwinder {
  _Unwind_Reason_Code (*forced_unwind)(_Unwind_Exception*, _Unwind_Stop_Fn, void*);
  _Unwind_Word (*get_cfa)(_Unwind_Context*);
};

const Unwinder* unwinder() {
  static std::atomic<Unwinder*> loaded{nullptr};
  static Unwinder table;
  if (Unwinder* u = loaded.load(std::memory_order_acquire)) return u;
  void* lib = dlopen("libgcc_s.so.1", RTLD_NOW);
  if (!lib) return nullptr;
  table.forced_unwind = reinterpret_cast<decltype(table.forced_unwind)>(dlsym(lib, "_Unwind_ForcedUnwind"));
  table.get_cfa = reinterpret_cast<decltype(table.get_cfa)>(dlsym(lib, "_Unwind_GetCFA"));
  if (!table.forced_unwind || !table.get_cfa) return nullptr;
  loaded.store(&table, std::memory_order_release);
  return &table;
}

// glibc's struct pthread_unwind_buf keeps the link to the outer buffer in the first pad word.
__pthread_unwind_buf_t*& outer_buffer(__pthread_unwind_buf_t* buf) {
  return reinterpret_cast<__pthread_unwind_buf_t*&>(buf->__pad[0]);
}

[[noreturn]] void land(ThreadState* state) {
  __pthread_unwind_buf_t* target = state->cleanup_chain;
  // The buffer was filled by glibc's __sigsetjmp without a signal mask; its layout is the start of
  // a jmp_buf, and glibc's longjmp restores it.
  if (target) longjmp(reinterpret_cast<struct __jmp_buf_tag*>(target->__cancel_jmp_buf), 1);
  if (state->exit_frame) longjmp(state->exit_landing, 1);
  // The main fiber has no landing of ours: its stack was unwound to the end (main's destructors
  // ran), and it ends here, on top of the unwinder's frames, which are never returned to.
  finish_thread(state, state->exit_value);
}

_Unwind_Reason_Code stop_at_landing(int, _Unwind_Action actions, _Unwind_Exception_Class, _Unwind_Exception*,
                                    _Unwind_Context* context, void* param) {
  auto* state = static_cast<ThreadState*>(param);
  // A frame's CFA is the stack pointer of its caller: once it reaches the frame that holds the
  // target (a cleanup buffer, or thread_entry's frame), everything inside has been unwound.
  uintptr_t target = state->cleanup_chain ? reinterpret_cast<uintptr_t>(state->cleanup_chain)
                                          : reinterpret_cast<uintptr_t>(state->exit_frame);
  if ((actions & _UA_END_OF_STACK) || (target && unwinder()->get_cfa(context) >= target)) land(state);
  return _URC_NO_REASON;
}

// Called if the unwind is caught and not rethrown (a catch (...) without throw;): glibc aborts.
[[noreturn]] void discard_exception(_Unwind_Reason_Code, _Unwind_Exception*) {
  static const char message[] = "vthread: pthread_exit's unwinding was caught and not rethrown\n";
  vthread::arch::raw_syscall(SYS_write, 2, message, sizeof message - 1);
  abort();
}

// Unwinds to the innermost cleanup buffer, or to the thread's landing.
[[noreturn]] void unwind(ThreadState* state) {
  const Unwinder* u = unwinder();
  if (u) {
    state->exit_exception = _Unwind_Exception{};
    state->exit_exception.exception_class = 0x7674687265786974ull;  // "vthrexit"
    state->exit_exception.exception_cleanup = discard_exception;
    u->forced_unwind(&state->exit_exception, stop_at_landing, state);
  }
  land(state);  // no unwinder, or no unwind information: skip straight to the landing
}

}  // namespace

void finish_thread(ThreadState* state, void* value) {
  sched::Fiber* self = sched::current();
  // glibc's start_thread order: C++ thread_local destructors, then thread-specific data. (The
  // initial thread runs neither when it calls pthread_exit; exit() runs its thread_locals'.)
  if (!self->is_main) sched::run_thread_local_destructors();
  run_key_destructors(state);
  mark_robust_mutexes_owner_dead(state);
  // From here on it is the runtime's code: no signal handler runs in the fiber (sched.h's
  // takes_signals_now), whose state is about to go.
  self->in_call = "(exiting)";
  {
    // pthread_cancel reads user_data under this lock; from here on it finds none and returns 0.
    sched::SpinlockGuard hold(self->lifecycle_lock);
    if (self->user_data == state) self->user_data = nullptr;
  }
  release_sched_attrs(state);
  free(state);
  // The last thread to exit ends the process with status 0, running atexit handlers, as glibc does.
  sched::exit_current(value, [] { exit(0); });
}

}  // namespace vthread::shim

namespace sched = vthread::sched;
namespace shim = vthread::shim;
using vthread::shim::ShimEntry;

extern "C" {

void pthread_exit(void* value) {
  ShimEntry entry("pthread_exit");
  if (!entry.fiber()) {
    // The main thread before any other thread exists becomes the main fiber, so that the process
    // lives on until the last thread exits, as the program asked; other non-fibers are glibc's.
    if (sched::started() || !shim::ensure_runtime()) {
      vthread::libc::pthread_exit(value);
    }
  }
  shim::ThreadState* state = shim::thread_state();
  if (!state) sched::exit_current(value, [] { exit(0); });
  state->exit_value = value;
  // No cancel acts from now on, even at cancellation points in cleanup handlers (glibc's EXITING_BIT).
  state->cancel.fetch_or(shim::kCancelExiting, std::memory_order_acq_rel);
  shim::unwind(state);
}

void __pthread_register_cancel(__pthread_unwind_buf_t* buf) {
  if (!sched::current()) {
    return vthread::libc::__pthread_register_cancel(buf);
  }
  shim::ThreadState* state = shim::thread_state();
  shim::outer_buffer(buf) = state->cleanup_chain;
  state->cleanup_chain = buf;
}

void __pthread_unregister_cancel(__pthread_unwind_buf_t* buf) {
  shim::ThreadState* state = sched::current() ? shim::thread_state() : nullptr;
  if (!state || state->cleanup_chain != buf) {
    // Registered with glibc (by a non-fiber, or before the runtime started): glibc pops it.
    return vthread::libc::__pthread_unregister_cancel(buf);
  }
  state->cleanup_chain = shim::outer_buffer(buf);
}

void __pthread_unwind_next(__pthread_unwind_buf_t* buf) {
  shim::ThreadState* state = sched::current() ? shim::thread_state() : nullptr;
  if (!state) {
    vthread::libc::__pthread_unwind_next(buf);
  }
  // buf's handler has run; carry on to the next buffer out.
  state->cleanup_chain = shim::outer_buffer(buf);
  shim::unwind(state);
}

}  // extern "C"
