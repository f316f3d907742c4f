/* Exits with the number of lock calls that failed in libctor_lock.so's constructor (0 natively),
 * after a thread has run, so the runtime starts too. */
#include <pthread.h>

extern int g_ctor_lock_errors;

static void* nothing(void* arg) { return arg; }

int main(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0) return 100;
  return g_ctor_lock_errors;
}
