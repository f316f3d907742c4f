// Returning from main ends the process at once with main's return value, whatever the other
// threads are doing: here detached threads sleep for an hour in each sleep function, one is
// blocked joining a sleeper, one spins on sched_yield, and joinable ones are never joined.
// Expected exit status: 7, promptly (the sleepers would take an hour; the test's timeout is short).
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static atomic_int started;

static void* sleeper(void* arg) {
  atomic_fetch_add(&started, 1);
  struct timespec hour = {3600, 0};
  switch ((int)(intptr_t)arg % 4) {
    case 0: sleep(3600); break;
    case 1: usleep(999999); for (;;) usleep(999999); break;
    case 2: nanosleep(&hour, NULL); break;
    case 3: clock_nanosleep(CLOCK_MONOTONIC, 0, &hour, NULL); break;
  }
  return NULL;
}

static void* joiner(void* arg) {
  atomic_fetch_add(&started, 1);
  pthread_join(*(pthread_t*)arg, NULL);
  return NULL;
}

static void* spinner(void* arg) {
  (void)arg;
  atomic_fetch_add(&started, 1);
  for (;;) sched_yield();
  return NULL;
}

int main(void) {
  static pthread_t joinable_sleeper;
  pthread_attr_t detached;
  pthread_attr_init(&detached);
  pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
  int n = 0;
  pthread_t t;
  for (int i = 0; i < 16; ++i, ++n) {
    if (pthread_create(&t, &detached, sleeper, (void*)(intptr_t)i) != 0) return 1;
  }
  if (pthread_create(&joinable_sleeper, NULL, sleeper, (void*)(intptr_t)0) != 0) return 1;
  ++n;
  if (pthread_create(&t, &detached, joiner, &joinable_sleeper) != 0) return 1;
  ++n;
  if (pthread_create(&t, &detached, spinner, NULL) != 0) return 1;
  ++n;
  for (int i = 0; i < 4; ++i, ++n) {  // joinable, never joined
    if (pthread_create(&t, NULL, sleeper, (void*)(intptr_t)i) != 0) return 1;
  }
  pthread_attr_destroy(&detached);
  // Make sure they are all really inside their sleeps before returning.
  while (atomic_load(&started) < n) usleep(1000);
  usleep(20000);
  printf("main returns 7 with %d threads still sleeping or spinning\n", n);
  return 7;
}
