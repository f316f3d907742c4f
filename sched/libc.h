// The real glibc functions behind the ones the shim interposes, resolved with dlsym(RTLD_NEXT) on
// first use. The runtime and the shim call these whenever they need glibc's own behaviour (carrier
// threads, threads that are not fibers), never the interposed names.
#ifndef VTHREAD_SCHED_LIBC_H_
#define VTHREAD_SCHED_LIBC_H_

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <time.h>

#include <atomic>

namespace vthread::libc {

// The real clock_gettime, which the shim's passes every ordinary clock to, and the runtime reads
// its own clocks with. Being hot, it is called through a pointer that starts out at a resolver,
// instead of checking for a resolved pointer on every call.
using ClockGettime = int (*)(clockid_t clock, struct timespec* ts);
extern std::atomic<ClockGettime> g_clock_gettime;
inline int clock_gettime(clockid_t clock, struct timespec* ts) {
  return g_clock_gettime.load(std::memory_order_relaxed)(clock, ts);
}
int clock_getres(clockid_t clock, struct timespec* res);

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg);
int pthread_join(pthread_t thread, void** result);
int pthread_detach(pthread_t thread);
pthread_t pthread_self();
int pthread_getattr_np(pthread_t thread, pthread_attr_t* attr);
int pthread_setname_np(pthread_t thread, const char* name);
int pthread_getname_np(pthread_t thread, char* name, size_t size);
int pthread_once(pthread_once_t* once, void (*init)());
int nanosleep(const struct timespec* request, struct timespec* remaining);
int clock_nanosleep(clockid_t clock, int flags, const struct timespec* request, struct timespec* remaining);
int sched_yield();
int pthread_mutex_init(pthread_mutex_t* mutex, const pthread_mutexattr_t* attr);
int pthread_mutex_lock(pthread_mutex_t* mutex);
int pthread_mutex_trylock(pthread_mutex_t* mutex);
int pthread_mutex_timedlock(pthread_mutex_t* mutex, const struct timespec* abstime);
int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime);
int pthread_mutex_unlock(pthread_mutex_t* mutex);
int pthread_mutex_destroy(pthread_mutex_t* mutex);
int pthread_mutex_consistent(pthread_mutex_t* mutex);
int pthread_cond_wait(pthread_cond_t* cond, pthread_mutex_t* mutex);
int pthread_cond_timedwait(pthread_cond_t* cond, pthread_mutex_t* mutex, const struct timespec* abstime);
int pthread_cond_clockwait(pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock, const struct timespec* abstime);
int pthread_cond_signal(pthread_cond_t* cond);
int pthread_cond_broadcast(pthread_cond_t* cond);
int pthread_barrier_init(pthread_barrier_t* barrier, const pthread_barrierattr_t* attr, unsigned count);
int pthread_barrier_wait(pthread_barrier_t* barrier);
int pthread_barrier_destroy(pthread_barrier_t* barrier);
int pthread_rwlock_rdlock(pthread_rwlock_t* rwlock);
int pthread_rwlock_wrlock(pthread_rwlock_t* rwlock);
int pthread_rwlock_tryrdlock(pthread_rwlock_t* rwlock);
int pthread_rwlock_trywrlock(pthread_rwlock_t* rwlock);
int pthread_rwlock_timedrdlock(pthread_rwlock_t* rwlock, const struct timespec* abstime);
int pthread_rwlock_timedwrlock(pthread_rwlock_t* rwlock, const struct timespec* abstime);
int pthread_rwlock_clockrdlock(pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime);
int pthread_rwlock_clockwrlock(pthread_rwlock_t* rwlock, clockid_t clock, const struct timespec* abstime);
int pthread_rwlock_unlock(pthread_rwlock_t* rwlock);
int pthread_rwlock_destroy(pthread_rwlock_t* rwlock);
int sem_init(sem_t* sem, int pshared, unsigned value);
int sem_wait(sem_t* sem);
int sem_trywait(sem_t* sem);
int sem_timedwait(sem_t* sem, const struct timespec* abstime);
int sem_clockwait(sem_t* sem, clockid_t clock, const struct timespec* abstime);
int sem_post(sem_t* sem);
int pthread_getschedparam(pthread_t thread, int* policy, struct sched_param* param);
int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param* param);
int pthread_setschedprio(pthread_t thread, int priority);
int pthread_kill(pthread_t thread, int sig);
int pthread_sigqueue(pthread_t thread, int sig, const union sigval value);
int raise(int sig);
int siginterrupt(int sig, int interrupt);
[[noreturn]] void siglongjmp(sigjmp_buf env, int value);
[[noreturn]] void longjmp_chk(jmp_buf env, int value);  // __longjmp_chk, of _FORTIFY_SOURCE builds
int sigaction(int sig, const struct sigaction* action, struct sigaction* old_action);
sighandler_t signal(int sig, sighandler_t handler);
int sigprocmask(int how, const sigset_t* set, sigset_t* old_set);
int pthread_sigmask(int how, const sigset_t* set, sigset_t* old_set);
int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* timeout);
int sigsuspend(const sigset_t* mask);
int pause();
int sigpending(sigset_t* set);
// The real `name`, resolved once into `slot` (fatal if glibc lacks it): for wrappers that a macro
// generates in bulk (shim/blocking.cc).
void* resolve_real(std::atomic<void*>& slot, const char* name);
int pthread_getcpuclockid(pthread_t thread, clockid_t* clock);
int pthread_setaffinity_np(pthread_t thread, size_t size, const cpu_set_t* set);
int pthread_getaffinity_np(pthread_t thread, size_t size, cpu_set_t* set);
int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t* set);
int sched_getaffinity(pid_t pid, size_t size, cpu_set_t* set);
[[noreturn]] void pthread_exit(void* value);
int pthread_cancel(pthread_t thread);
int pthread_setcancelstate(int state, int* old_state);
int pthread_setcanceltype(int type, int* old_type);
void pthread_testcancel();
void __pthread_register_cancel(__pthread_unwind_buf_t* buf);
void __pthread_unregister_cancel(__pthread_unwind_buf_t* buf);
[[noreturn]] void __pthread_unwind_next(__pthread_unwind_buf_t* buf);

}  // namespace vthread::libc

#endif  // VTHREAD_SCHED_LIBC_H_
