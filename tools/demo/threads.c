/* An ordinary pthread program (it knows nothing of vthread): start N threads that are all alive at
 * once, each blocked joining the one before it, then let the chain unwind and check the result.
 * Linux refuses new threads at about 32k here (pid_max); under vthread they are fibers.
 *
 *   threads [N]    default 100000
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int released;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long count_kernel_tasks(void) {
  DIR* dir = opendir("/proc/self/task");
  long n = 0;
  if (!dir) return -1;
  for (struct dirent* e; (e = readdir(dir));) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

static long rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  }
  if (f) fclose(f);
  return kib;
}

/* Thread 0 waits for main's signal; every other thread joins its predecessor and adds one. */
static void* link_in_chain(void* previous) {
  if (!previous) {
    while (!atomic_load(&released)) usleep(20000);
    return (void*)(intptr_t)1;
  }
  void* value;
  pthread_join(*(pthread_t*)previous, &value);
  return (void*)((intptr_t)value + 1);
}

int main(int argc, char** argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  if (n < 1) n = 1;
  pthread_t* threads = calloc((size_t)n, sizeof *threads);
  double start = now();
  long created = 0;
  int err = 0;
  for (; created < n; ++created) {
    err = pthread_create(&threads[created], NULL, link_in_chain, created ? &threads[created - 1] : NULL);
    if (err) break;
  }
  double create_time = now() - start;
  long tasks = count_kernel_tasks();
  long rss = rss_kib();
  if (err) {
    printf("pthread_create failed at thread %ld of %ld: %s\n", created + 1, n, strerror(err));
  } else {
    printf("created %ld threads in %.2f s (%.1f us each); all alive at once\n", created, create_time,
           create_time * 1e6 / created);
  }
  printf("kernel tasks in /proc/self/task: %ld; resident memory: %ld MiB\n", tasks, rss / 1024);
  atomic_store(&released, 1);
  void* value = NULL;
  if (created) pthread_join(threads[created - 1], &value);
  int ok = !err && (intptr_t)value == n;
  printf("join chain returned %ld (expected %ld): %s; total %.2f s\n", (long)(intptr_t)value, n,
         ok ? "correct" : "FAILED", now() - start);
  free(threads);
  return ok ? 0 : 1;
}
