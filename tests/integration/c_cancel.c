// Thread cancellation from C. Built twice (see BUILD): without -fexceptions pthread_cleanup_push
// registers buffers with __pthread_register_cancel and the cancel unwinds through them; with
// -fexceptions it uses __attribute__((cleanup)), run by the forced unwind. Either way a cancelled
// thread runs the handlers still pushed, last pushed first, then thread-specific-data destructors,
// and join returns PTHREAD_CANCELED. Covers a sleeping thread and a condition waiter whose handler
// unlocks the mutex (the classic idiom, which needs the mutex held when the handler runs).
// Exits 0 when all is well.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char events[256];
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;

static void record(const char* what) {
  pthread_mutex_lock(&events_mu);
  strncat(events, what, sizeof events - strlen(events) - 1);
  strncat(events, ";", sizeof events - strlen(events) - 1);
  pthread_mutex_unlock(&events_mu);
}

static void handler(void* arg) { record((const char*)arg); }

static pthread_key_t key;
static void key_dtor(void* v) {
  (void)v;
  record("key");
}

static volatile int ready;

static void sleep_at_depth(int depth) {
  pthread_cleanup_push(handler, depth == 0 ? "depth0" : "depth1");
  if (depth == 0) {
    ready = 1;
    sleep(60);
  } else {
    sleep_at_depth(depth - 1);
  }
  record("unreachable");
  pthread_cleanup_pop(0);
}

static void* sleeper(void* arg) {
  (void)arg;
  pthread_setspecific(key, &key);
  pthread_cleanup_push(handler, "outer");
  pthread_cleanup_push(handler, "popped-and-run");
  pthread_cleanup_pop(1);
  sleep_at_depth(1);
  pthread_cleanup_pop(0);
  return NULL;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void unlock_mutex(void* arg) {
  int rc = pthread_mutex_unlock((pthread_mutex_t*)arg);
  record(rc == 0 ? "unlocked" : "unlock-failed");
}

static void* waiter(void* arg) {
  (void)arg;
  pthread_mutex_lock(&mu);
  pthread_cleanup_push(unlock_mutex, &mu);
  ready = 1;
  for (;;) pthread_cond_wait(&cv, &mu);
  pthread_cleanup_pop(1);
  return NULL;
}

static int join_within(pthread_t t, void** result) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 20;
  return pthread_timedjoin_np(t, result, &deadline);
}

static int run(void* (*body)(void*), const char* expected) {
  events[0] = '\0';
  ready = 0;
  pthread_t t;
  if (pthread_create(&t, NULL, body, NULL) != 0) return 1;
  while (!ready) usleep(1000);
  usleep(20000);
  if (pthread_cancel(t) != 0) return 2;
  void* result = NULL;
  int rc = join_within(t, &result);
  if (rc != 0) {
    fprintf(stderr, "join: %s\n", strerror(rc));
    return 3;
  }
  if (result != PTHREAD_CANCELED) {
    fprintf(stderr, "join returned %p, not PTHREAD_CANCELED\n", result);
    return 4;
  }
  if (strcmp(events, expected) != 0) {
    fprintf(stderr, "events: %s\nexpected: %s\n", events, expected);
    return 5;
  }
  return 0;
}

int main(void) {
  if (pthread_key_create(&key, key_dtor) != 0) return 10;
  int rc = run(sleeper, "popped-and-run;depth0;depth1;outer;key;");
  if (rc) return rc;
  rc = run(waiter, "unlocked;");
  if (rc) return 20 + rc;
  if (pthread_mutex_trylock(&mu) != 0) return 30;  // the handler released it
  pthread_mutex_unlock(&mu);
  return 0;
}
