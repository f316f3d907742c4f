/* A library whose constructor takes locks, yields and sleeps. ld.so runs it before the
 * constructors of a preloaded library, so under vthread this is the shim's code running before
 * its own initialisation. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

int g_ctor_lock_errors = -1;

static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;

__attribute__((constructor)) static void take_locks(void) {
  int errors = 0;
  errors += pthread_rwlock_rdlock(&rwlock) != 0;
  errors += pthread_rwlock_unlock(&rwlock) != 0;
  errors += pthread_rwlock_wrlock(&rwlock) != 0;
  errors += pthread_rwlock_unlock(&rwlock) != 0;
  errors += pthread_mutex_lock(&recursive) != 0;
  errors += pthread_mutex_lock(&recursive) != 0;
  errors += pthread_mutex_unlock(&recursive) != 0;
  errors += pthread_mutex_unlock(&recursive) != 0;
  errors += pthread_mutex_lock(&errorcheck) != 0;
  errors += pthread_mutex_unlock(&errorcheck) != 0;
  errors += sched_yield() != 0;
  errors += usleep(1) != 0;
  g_ctor_lock_errors = errors;
}
