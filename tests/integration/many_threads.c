// Many concurrently alive threads, all blocked, all completing correctly.
//
//   many_threads THREADS MODE [STACK_KIB]
//     THREADS    how many threads are alive at once (100000 under the shim; natively Linux stops
//                near 32k tasks here, so the native variants use a few thousand)
//     MODE       chain: thread i joins thread i-1 (thread 0 waits for the release), so all but
//                       one thread are blocked in pthread_join and no timers are involved
//                sleep: every thread sleeps with clock_nanosleep(TIMER_ABSTIME) until a common
//                       deadline, then polls (sleeping) for the release
//     STACK_KIB  0 or absent: default attributes (a NULL attr: 8 MiB stacks, which the shim must
//                handle at 100k threads since it reserves them with MAP_NORESERVE); otherwise
//                pthread_attr_setstacksize(STACK_KIB KiB)
//
// Main releases the threads only once all of them have started, so at that moment all THREADS
// are alive together. Exit status 0 when every result checks out.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long n_threads;
static pthread_t* tids;
static atomic_long alive;
static atomic_int released;
static atomic_long errors;
static int64_t sleep_deadline_ns;  // CLOCK_MONOTONIC, sleep mode

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Sleeps with a period growing from 1 ms to 128 ms until main releases everyone: polling every
// millisecond from 100k threads would make the test a timer benchmark.
static void wait_for_release(void) {
  useconds_t period = 1000;
  while (!atomic_load(&released)) {
    usleep(period);
    if (period < 128000) period *= 2;
  }
}

static void* chain_main(void* arg) {
  const long i = (long)(intptr_t)arg;
  atomic_fetch_add(&alive, 1);
  if (i == 0) {
    wait_for_release();
    return (void*)0;
  }
  void* prev;
  int rc = pthread_join(tids[i - 1], &prev);
  // Thread i returns 0 + 1 + ... + i.
  if (rc != 0 || (uintptr_t)prev != (uintptr_t)(i - 1) * (uintptr_t)i / 2) {
    if (atomic_fetch_add(&errors, 1) < 5) {
      fprintf(stderr, "thread %ld: join rc=%d value=%lu\n", i, rc, (unsigned long)(uintptr_t)prev);
    }
  }
  return (void*)((uintptr_t)prev + (uintptr_t)i);
}

static void* sleep_main(void* arg) {
  const long i = (long)(intptr_t)arg;
  atomic_fetch_add(&alive, 1);
  struct timespec deadline = {(time_t)(sleep_deadline_ns / 1000000000), (long)(sleep_deadline_ns % 1000000000)};
  int rc;
  while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL)) == EINTR) {
  }
  if (rc != 0 || now_ns() < sleep_deadline_ns) {
    if (atomic_fetch_add(&errors, 1) < 5) fprintf(stderr, "thread %ld: woke early or rc=%d\n", i, rc);
  }
  wait_for_release();
  return (void*)(uintptr_t)(2 * i + 1);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s THREADS chain|sleep [STACK_KIB]\n", argv[0]);
    return 2;
  }
  n_threads = atol(argv[1]);
  const char* mode = argv[2];
  const long stack_kib = argc > 3 ? atol(argv[3]) : 0;
  const int chain = strcmp(mode, "chain") == 0;
  if (n_threads < 1 || (!chain && strcmp(mode, "sleep") != 0)) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  tids = calloc((size_t)n_threads, sizeof *tids);
  if (tids == NULL) return 2;

  pthread_attr_t attr;
  pthread_attr_t* attrp = NULL;
  if (stack_kib > 0) {
    pthread_attr_init(&attr);
    int rc = pthread_attr_setstacksize(&attr, (size_t)stack_kib * 1024);
    if (rc != 0) {
      fprintf(stderr, "setstacksize: %s\n", strerror(rc));
      return 2;
    }
    attrp = &attr;
  }

  const int64_t start = now_ns();
  // Sleepers' common deadline: a guess at when creation is done. If creating takes longer, the
  // early threads just continue by polling for the release.
  sleep_deadline_ns = start + 1000000000;
  for (long i = 0; i < n_threads; ++i) {
    int rc = pthread_create(&tids[i], attrp, chain ? chain_main : sleep_main, (void*)(intptr_t)i);
    if (rc != 0) {
      fprintf(stderr, "pthread_create #%ld: %s\n", i, strerror(rc));
      _exit(1);
    }
  }
  const int64_t created = now_ns();
  while (atomic_load(&alive) < n_threads) usleep(1000);
  const int64_t all_alive = now_ns();
  atomic_store(&released, 1);

  uintptr_t sum = 0;
  if (chain) {
    void* r;
    int rc = pthread_join(tids[n_threads - 1], &r);
    if (rc != 0) {
      fprintf(stderr, "join of the last thread: %s\n", strerror(rc));
      return 1;
    }
    sum = (uintptr_t)r;
  } else {
    for (long i = 0; i < n_threads; ++i) {
      void* r;
      int rc = pthread_join(tids[i], &r);
      if (rc != 0) {
        fprintf(stderr, "join #%ld: %s\n", i, strerror(rc));
        return 1;
      }
      sum += (uintptr_t)r;
    }
  }
  const int64_t done = now_ns();
  // chain: 0 + 1 + ... + (n-1); sleep: 1 + 3 + ... + (2n-1) = n^2.
  const uintptr_t n = (uintptr_t)n_threads;
  const uintptr_t expected = chain ? (n - 1) * n / 2 : n * n;
  fprintf(stderr,
          "%ld threads, %s, stack %s: created in %.3f s, all alive after %.3f s, done after %.3f s\n",
          n_threads, mode, stack_kib > 0 ? argv[3] : "default", (created - start) / 1e9,
          (all_alive - start) / 1e9, (done - start) / 1e9);
  if (sum != expected || atomic_load(&errors) != 0) {
    fprintf(stderr, "FAIL: sum %lu, expected %lu; %ld thread errors\n", (unsigned long)sum,
            (unsigned long)expected, atomic_load(&errors));
    return 1;
  }
  if (attrp != NULL) pthread_attr_destroy(attrp);
  free(tids);
  printf("PASS\n");
  return 0;
}
