#include "sched/libc.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

#include <atomic>

#include "arch/raw_syscall.h"

namespace vthread::libc {
namespace {

// Resolves `name` once. dlsym is safe to call here: it does not create threads or call back into
// interposed pthread functions.
void* resolve(std::atomic<void*>& slot, const char* name) {
  void* fn = slot.load(std::memory_order_acquire);
  if (fn) return fn;
  fn = dlsym(RTLD_NEXT, name);
  if (!fn) {
    char line[160];
    int n = snprintf(line, sizeof line, "vthread: fatal: cannot find the real %s in the C library\n", name);
    arch::raw_syscall(SYS_write, 2, line, n);
    abort();
  }
  slot.store(fn, std::memory_order_release);
  return fn;
}

}  // namespace

void* resolve_real(std::atomic<void*>& slot, const char* name) { return resolve(slot, name); }

#define VTHREAD_REAL(ret, name, params, args)                               \
  ret name params {                                                         \
    static std::atomic<void*> slot{nullptr};                                \
    return reinterpret_cast<ret(*) params>(resolve(slot, #name)) args;     \
  }

VTHREAD_REAL(int, pthread_create, (pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg),
             (thread, attr, start, arg))
VTHREAD_REAL(int, pthread_join, (pthread_t thread, void** result), (thread, result))
VTHREAD_REAL(int, pthread_kill, (pthread_t thread, int sig), (thread, sig))
void siglongjmp(sigjmp_buf env, int value) {
  static std::atomic<void*> slot{nullptr};
  reinterpret_cast<void (*)(sigjmp_buf, int)>(resolve(slot, "siglongjmp"))(env, value);
  __builtin_unreachable();
}
void longjmp_chk(jmp_buf env, int value) {
  static std::atomic<void*> slot{nullptr};
  reinterpret_cast<void (*)(jmp_buf, int)>(resolve(slot, "__longjmp_chk"))(env, value);
  __builtin_unreachable();
}
VTHREAD_REAL(int, raise, (int sig), (sig))
VTHREAD_REAL(int, siginterrupt, (int sig, int interrupt), (sig, interrupt))
VTHREAD_REAL(int, pthread_sigqueue, (pthread_t thread, int sig, const union sigval value), (thread, sig, value))
VTHREAD_REAL(int, sigaction, (int sig, const struct sigaction* action, struct sigaction* old_action),
             (sig, action, old_action))
VTHREAD_REAL(sighandler_t, signal, (int sig, sighandler_t handler), (sig, handler))
VTHREAD_REAL(int, sigprocmask, (int how, const sigset_t* set, sigset_t* old_set), (how, set, old_set))
VTHREAD_REAL(int, pthread_sigmask, (int how, const sigset_t* set, sigset_t* old_set), (how, set, old_set))
VTHREAD_REAL(int, sigtimedwait, (const sigset_t* set, siginfo_t* info, const struct timespec* timeout), (set, info, timeout))
VTHREAD_REAL(int, sigsuspend, (const sigset_t* mask), (mask))
VTHREAD_REAL(int, pause, (), ())
VTHREAD_REAL(int, sigpending, (sigset_t* set), (set))
VTHREAD_REAL(int, pthread_detach, (pthread_t thread), (thread))
VTHREAD_REAL(pthread_t, pthread_self, (), ())
VTHREAD_REAL(int, pthread_getattr_np, (pthread_t thread, pthread_attr_t* attr), (thread, attr))
VTHREAD_REAL(int, pthread_setname_np, (pthread_t thread, const char* name), (thread, name))
VTHREAD_REAL(int, pthread_getname_np, (pthread_t thread, char* name, size_t size), (thread, name, size))
VTHREAD_REAL(int, pthread_once, (pthread_once_t* once, void (*init)()), (once, init))
VTHREAD_REAL(int, nanosleep, (const struct timespec* request, struct timespec* remaining), (request, remaining))
VTHREAD_REAL(int, clock_nanosleep, (clockid_t clock, int flags, const struct timespec* request, struct timespec* remaining),
             (clock, flags, request, remaining))
VTHREAD_REAL(int, sched_yield, (), ())
VTHREAD_REAL(int, pthread_mutex_init, (pthread_mutex_t* mutex, const pthread_mutexattr_t* attr), (mutex, attr))
VTHREAD_REAL(int, pthread_mutex_lock, (pthread_mutex_t* mutex), (mutex))
VTHREAD_REAL(int, pthread_mutex_trylock, (pthread_mutex_t* mutex), (mutex))
VTHREAD_REAL(int, pthread_mutex_timedlock, (pthread_mutex_t* mutex, const struct timespec* abstime), (mutex, abstime))
VTHREAD_REAL(int, pthread_mutex_clocklock, (pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime),
             (mutex, clock, abstime))
VTHREAD_REAL(int, pthread_mutex_unlock, (pthread_mutex_t* mutex), (mutex))
VTHREAD_REAL(int, pthread_mutex_destroy, (pthread_mutex_t* mutex), (mutex))
VTHREAD_REAL(int, pthread_mutex_consistent, (pthread_mutex_t* mutex), (mutex))
VTHREAD_REAL(int, pthread_cond_wait, (pthread_cond_t* cond, pthread_mutex_t* mutex), (cond, mutex))
VTHREAD_REAL(int, pthread_cond_timedwait, (pthread_cond_t* cond, pthread_mutex_t* mutex, const struct timespec* abstime),
             (cond, mutex, abstime))
VTHREAD_REAL(int, pthread_cond_clockwait,
             (pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime),
             (cond, mutex, clock, abstime))
VTHREAD_REAL(int, pthread_cond_signal, (pthread_cond_t* cond), (cond))
VTHREAD_REAL(int, pthread_cond_broadcast, (pthread_cond_t* cond), (cond))
VTHREAD_REAL(int, pthread_barrier_init, (pthread_barrier_t* barrier, const pthread_barrierattr_t* attr, unsigned count),
             (barrier, attr, count))
VTHREAD_REAL(int, pthread_barrier_wait, (pthread_barrier_t* barrier),
             (barrier))
VTHREAD_REAL(int, pthread_barrier_destroy, (pthread_barrier_t* barrier),
             (barrier))
VTHREAD_REAL(int, pthread_rwlock_rdlock, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, pthread_rwlock_wrlock, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, pthread_rwlock_tryrdlock, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, pthread_rwlock_trywrlock, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, pthread_rwlock_timedrdlock, (pthread_rwlock_t* rwlock, const struct timespec* abstime),
             (rwlock, abstime))
VTHREAD_REAL(int, pthread_rwlock_timedwrlock, (pthread_rwlock_t* rwlock, const struct timespec* abstime),
             (rwlock, abstime))
VTHREAD_REAL(int, pthread_rwlock_clockrdlock, (pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime),
             (rwlock, clock, abstime))
VTHREAD_REAL(int, pthread_rwlock_clockwrlock, (pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime),
             (rwlock, clock, abstime))
VTHREAD_REAL(int, pthread_rwlock_unlock, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, pthread_rwlock_destroy, (pthread_rwlock_t* rwlock),
             (rwlock))
VTHREAD_REAL(int, sem_init, (sem_t* sem, int pshared, unsigned value),
             (sem, pshared, value))
VTHREAD_REAL(int, sem_wait, (sem_t* sem),
             (sem))
VTHREAD_REAL(int, sem_trywait, (sem_t* sem),
             (sem))
VTHREAD_REAL(int, sem_timedwait, (sem_t* sem, const struct timespec* abstime),
             (sem, abstime))
VTHREAD_REAL(int, sem_clockwait, (sem_t* sem, clockid_t clock, const struct timespec* abstime),
             (sem, clock, abstime))
VTHREAD_REAL(int, sem_post, (sem_t* sem),
             (sem))
VTHREAD_REAL(int, pthread_getschedparam, (pthread_t thread, int* policy, struct sched_param* param),
             (thread, policy, param))
VTHREAD_REAL(int, pthread_setschedparam, (pthread_t thread, int policy, const struct sched_param* param),
             (thread, policy, param))
VTHREAD_REAL(int, pthread_setschedprio, (pthread_t thread, int priority), (thread, priority))
VTHREAD_REAL(int, clock_getres, (clockid_t clock, struct timespec* res), (clock, res))
VTHREAD_REAL(int, pthread_getcpuclockid, (pthread_t thread, clockid_t* clock), (thread, clock))
VTHREAD_REAL(int, pthread_setaffinity_np, (pthread_t thread, size_t size, const cpu_set_t* set), (thread, size, set))
VTHREAD_REAL(int, pthread_getaffinity_np, (pthread_t thread, size_t size, cpu_set_t* set), (thread, size, set))
VTHREAD_REAL(int, sched_setaffinity, (pid_t pid, size_t size, const cpu_set_t* set), (pid, size, set))
VTHREAD_REAL(int, sched_getaffinity, (pid_t pid, size_t size, cpu_set_t* set), (pid, size, set))
VTHREAD_REAL(void, __pthread_register_cancel, (__pthread_unwind_buf_t* buf), (buf))
VTHREAD_REAL(void, __pthread_unregister_cancel, (__pthread_unwind_buf_t* buf), (buf))
VTHREAD_REAL(int, pthread_cancel, (pthread_t thread), (thread))
VTHREAD_REAL(int, pthread_setcancelstate, (int state, int* old_state), (state, old_state))
VTHREAD_REAL(int, pthread_setcanceltype, (int type, int* old_type), (type, old_type))
VTHREAD_REAL(void, pthread_testcancel, (), ())

#undef VTHREAD_REAL

static int resolve_clock_gettime(clockid_t clock, struct timespec* ts) {
  static std::atomic<void*> slot{nullptr};
  auto real = reinterpret_cast<ClockGettime>(resolve(slot, "clock_gettime"));
  g_clock_gettime.store(real, std::memory_order_relaxed);
  return real(clock, ts);
}

std::atomic<ClockGettime> g_clock_gettime{resolve_clock_gettime};

// The ones that never return.
void pthread_exit(void* value) {
  static std::atomic<void*> slot{nullptr};
  reinterpret_cast<void (*)(void*)>(resolve(slot, "pthread_exit"))(value);
  __builtin_unreachable();
}

void __pthread_unwind_next(__pthread_unwind_buf_t* buf) {
  static std::atomic<void*> slot{nullptr};
  reinterpret_cast<void (*)(__pthread_unwind_buf_t*)>(resolve(slot, "__pthread_unwind_next"))(buf);
  __builtin_unreachable();
}

}  // namespace vthread::libc
