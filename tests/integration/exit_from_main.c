// How the process ends when main does not simply return after joining everything.
//
//   exit_from_main main_pthread_exit
//       main creates threads and calls pthread_exit(NULL). The process lives on until the last
//       thread exits; then it exits with status 0 (glibc: the last thread calls exit(0), which
//       runs the atexit handlers). The threads keep working for ~100 ms after main is gone,
//       create and join another thread, check that main's thread-specific-data destructor ran
//       when main exited, and the last one checks everyone's results. An atexit handler checks
//       them again and turns any failure into exit status 5.
//       Expected exit status: 0.
//   exit_from_main main_pthread_exit_atexit_status
//       Same, but the atexit handler ends the process with _exit(7) when all is well: a runtime
//       that ends the process with _exit(0) instead of exit(0) after the last thread (skipping
//       the atexit handlers and the stdio flush) exits 0 here. Expected exit status: 7.
//   exit_from_main thread_exit3
//       A thread calls exit(3) while main is blocked in pthread_join of a thread that sleeps for
//       an hour and other threads sleep or spin. The whole process ends at once with status 3.
//   exit_from_main thread_exit3_after_main_exit
//       Same, after main has called pthread_exit. Expected exit status: 3.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 8

static int results[WORKERS];  // written by each worker, read by the last one
static atomic_int finished;
static atomic_int main_key_destructor_ran;
static atomic_int last_thread_checked;
static pthread_key_t main_key;

static void fail(const char* what) {
  fprintf(stderr, "FAIL: %s\n", what);
  fflush(stderr);
  _exit(1);
}

static void* add_one(void* arg) { return (void*)((intptr_t)arg + 1); }

static void check_results(void) {
  for (int i = 0; i < WORKERS; ++i) {
    if (results[i] != i * i + 1) fail("a worker's result is missing");
  }
}

static void* worker(void* arg) {
  const int i = (int)(intptr_t)arg;
  usleep(100000);  // main is long gone by now
  // Threads can still be created and joined after main exited.
  pthread_t t;
  void* r;
  if (pthread_create(&t, NULL, add_one, (void*)(intptr_t)(i * i)) != 0) fail("create after main exit");
  if (pthread_join(t, &r) != 0) fail("join after main exit");
  results[i] = (int)(intptr_t)r;
  // main's pthread_exit ran its thread-specific-data destructors before it ended. (Poll for a
  // while instead of assuming 100 ms was enough.)
  for (int tries = 0; !atomic_load(&main_key_destructor_ran); ++tries) {
    if (tries > 5000) fail("main's key destructor did not run");
    usleep(1000);
  }
  if (atomic_fetch_add(&finished, 1) == WORKERS - 1) {
    check_results();  // the fetch_add ordered every other worker's write before this read
    atomic_store(&last_thread_checked, 1);
    printf("last thread: all %d results present\n", WORKERS);
    // Ending through pthread_exit with a value: the exit status is still 0.
    pthread_exit((void*)42);
  }
  return NULL;
}

static int atexit_status = 0;  // 0: return normally from the handler

static void at_exit_check(void) {
  if (!atomic_load(&last_thread_checked)) {
    fprintf(stderr, "FAIL: process exited before the last thread finished its check\n");
    fflush(stderr);
    _exit(5);
  }
  check_results();
  printf("atexit: ok\n");
  if (atexit_status != 0) {
    fflush(stdout);
    _exit(atexit_status);
  }
}

static void main_key_destructor(void* value) {
  if (value == (void*)&main_key) atomic_store(&main_key_destructor_ran, 1);
}

static void* exit3_after(void* arg) {
  usleep((useconds_t)(intptr_t)arg);
  exit(3);
}

static void* sleep_an_hour(void* arg) {
  (void)arg;
  sleep(3600);
  return NULL;
}

static void* spin_yielding(void* arg) {
  (void)arg;
  for (;;) sched_yield();
  return NULL;
}

static void start_bystanders(pthread_t* sleeper) {
  pthread_t t;
  for (int i = 0; i < 4; ++i) {
    if (pthread_create(&t, NULL, sleep_an_hour, NULL) != 0) fail("create sleeper");
  }
  if (pthread_create(&t, NULL, spin_yielding, NULL) != 0) fail("create spinner");
  if (pthread_create(sleeper, NULL, sleep_an_hour, NULL) != 0) fail("create sleeper");
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char* mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "main_pthread_exit_atexit_status") == 0) atexit_status = 7;
  if (strcmp(mode, "main_pthread_exit") == 0 || atexit_status != 0) {
    if (pthread_key_create(&main_key, main_key_destructor) != 0) fail("key_create");
    if (pthread_setspecific(main_key, &main_key) != 0) fail("setspecific");
    if (atexit(at_exit_check) != 0) fail("atexit");
    for (int i = 0; i < WORKERS; ++i) {
      pthread_t t;
      if (pthread_create(&t, NULL, worker, (void*)(intptr_t)i) != 0) fail("create worker");
      if (i % 2 == 0 && pthread_detach(t) != 0) fail("detach");  // and half stay joinable
    }
    pthread_exit(NULL);
  }
  if (strcmp(mode, "thread_exit3") == 0) {
    pthread_t sleeper, t;
    start_bystanders(&sleeper);
    if (pthread_create(&t, NULL, exit3_after, (void*)(intptr_t)50000) != 0) fail("create");
    pthread_join(sleeper, NULL);
    fail("main's join returned: exit(3) did not end the process");
  }
  if (strcmp(mode, "thread_exit3_after_main_exit") == 0) {
    pthread_t sleeper, t;
    start_bystanders(&sleeper);
    if (pthread_create(&t, NULL, exit3_after, (void*)(intptr_t)100000) != 0) fail("create");
    pthread_exit(NULL);
  }
  fprintf(stderr, "usage: %s main_pthread_exit|main_pthread_exit_atexit_status|thread_exit3|"
                  "thread_exit3_after_main_exit\n", argv[0]);
  return 2;
}
