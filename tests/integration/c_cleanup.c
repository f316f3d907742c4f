// POSIX cancellation cleanup handlers on pthread_exit, from C. Built twice (see BUILD):
//   without -fexceptions  pthread_cleanup_push registers a sigjmp_buf with
//                         __pthread_register_cancel; glibc's pthread_exit unwinds by longjmp-ing
//                         through those buffers (__pthread_unwind / __pthread_unwind_next)
//   with -fexceptions     pthread_cleanup_push uses __attribute__((cleanup)), run by the
//                         forced unwind (the same mechanism as C++ destructors)
// In both cases pthread_exit must run the handlers still pushed, last pushed first, then the
// thread-specific-data destructors. Exits 0 when all is well.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char events[256];  // only one thread at a time appends to it

static void record(const char* what) {
  strncat(events, what, sizeof events - strlen(events) - 1);
  strncat(events, ";", sizeof events - strlen(events) - 1);
}

static void handler(void* arg) { record((const char*)arg); }

static pthread_key_t key;
static void key_dtor(void* v) {
  (void)v;
  record("key");
}

static void exit_from_depth(int depth) {
  if (depth < 0) return;
  pthread_cleanup_push(handler, depth == 0 ? "depth0" : "depth1");
  if (depth == 0) pthread_exit((void*)(intptr_t)99);
  exit_from_depth(depth - 1);
  record("unreachable");
  pthread_cleanup_pop(0);
}

static void* body(void* arg) {
  (void)arg;
  pthread_setspecific(key, &key);
  pthread_cleanup_push(handler, "outer");
  pthread_cleanup_push(handler, "popped-not-run");
  pthread_cleanup_pop(0);
  pthread_cleanup_push(handler, "popped-and-run");
  pthread_cleanup_pop(1);
  usleep(1000);  // a switch in between must not lose the registered handlers
  exit_from_depth(1);
  pthread_cleanup_pop(0);
  return NULL;
}

// Returning normally (after popping everything) runs no handler but the explicitly popped one.
static void* body_returns(void* arg) {
  (void)arg;
  pthread_cleanup_push(handler, "never");
  pthread_cleanup_pop(0);
  return (void*)(intptr_t)5;
}

int main(void) {
  int failures = 0;
  pthread_t t;
  void* r = NULL;
  if (pthread_key_create(&key, key_dtor) != 0) return 2;
  for (int round = 0; round < 3; ++round) {  // repeat: handler state must not leak between threads
    events[0] = '\0';
    if (pthread_create(&t, NULL, body, NULL) != 0 || pthread_join(t, &r) != 0) return 2;
    const char* expected = "popped-and-run;depth0;depth1;outer;key;";
    if (r != (void*)(intptr_t)99 || strcmp(events, expected) != 0) {
      fprintf(stderr, "round %d: result %p, events \"%s\", expected \"%s\"\n", round, r, events, expected);
      ++failures;
    }
  }
  events[0] = '\0';
  if (pthread_create(&t, NULL, body_returns, NULL) != 0 || pthread_join(t, &r) != 0) return 2;
  if (r != (void*)(intptr_t)5 || strcmp(events, "") != 0) {
    fprintf(stderr, "returning thread: result %p, events \"%s\"\n", r, events);
    ++failures;
  }
  if (failures) return 1;
  printf("PASS\n");
  return 0;
}
