/* The program tests/gdb_test.sh debugs: threads parked in a sleep, on a mutex and in a condition
 * wait, two threads deadlocked on each other's mutexes, then a SIGTRAP that stops it under gdb. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cond_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER, second = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t both_hold_one;

static void* sleeper(void* arg) {
  pthread_setname_np(pthread_self(), "sleeper");
  sleep(1000);
  return arg;
}

static void* locker(void* arg) {
  pthread_setname_np(pthread_self(), "locker");
  pthread_mutex_lock(&held);
  return arg;
}

static void* waiter(void* arg) {
  pthread_setname_np(pthread_self(), "waiter");
  pthread_mutex_lock(&cond_mutex);
  for (;;) pthread_cond_wait(&never, &cond_mutex);
  return arg;
}

static void lock_in_order(const char* name, pthread_mutex_t* a, pthread_mutex_t* b) {
  pthread_setname_np(pthread_self(), name);
  pthread_mutex_lock(a);
  pthread_barrier_wait(&both_hold_one);
  pthread_mutex_lock(b);
}

static void* forward(void* arg) {
  lock_in_order("forward", &first, &second);
  return arg;
}

static void* backward(void* arg) {
  lock_in_order("backward", &second, &first);
  return arg;
}

int main(void) {
  pthread_t t;
  pthread_mutex_lock(&held);
  pthread_create(&t, NULL, sleeper, NULL);
  pthread_create(&t, NULL, locker, NULL);
  pthread_create(&t, NULL, waiter, NULL);
  pthread_barrier_init(&both_hold_one, NULL, 2);
  pthread_create(&t, NULL, forward, NULL);
  pthread_create(&t, NULL, backward, NULL);
  usleep(200 * 1000);
  raise(SIGTRAP);
  return 0;
}
