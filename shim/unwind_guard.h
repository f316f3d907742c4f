// Running a callback with a cleanup that runs if the callback is left by unwinding: a C++ exception,
// or the forced unwind of pthread_exit and cancellation. The shim is built without exceptions, so
// this one C function (unwind_guard.c) is built with -fexceptions, as glibc builds pthread_once.
#ifndef VTHREAD_SHIM_UNWIND_GUARD_H_
#define VTHREAD_SHIM_UNWIND_GUARD_H_

#ifdef __cplusplus
extern "C" {
#endif

// Calls fn(). If fn is left by unwinding, on_unwind(arg) runs as the unwinding passes this frame
// (and the unwinding then goes on); if fn returns, on_unwind is not called.
void vthread_call_with_unwind_cleanup(void (*fn)(void), void (*on_unwind)(void*), void* arg);

#ifdef __cplusplus
}
#endif

#endif  // VTHREAD_SHIM_UNWIND_GUARD_H_
