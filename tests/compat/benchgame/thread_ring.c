// thread-ring, after the Computer Language Benchmarks Game specification: 503 threads in a ring;
// thread 1 gets a token N and each thread passes token - 1 to the next; the thread that receives 0
// prints its number (1 to 503) and the program ends. Written here from the public specification.
//
//   thread_ring VARIANT N
//     mutex     each thread blocks locking its own mutex; the passer unlocks it (as in the gcc entries)
//     sem       one semaphore per thread
//     cond      one mutex + condition variable + flag per thread
//     stack     mutex, with stacks the program allocates (pthread_attr_setstack)
//     affinity  mutex; main pins itself to one CPU and the threads get an explicit CPU set
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { kThreads = 503, kStackSize = 64 * 1024 };

static struct Node {
  pthread_mutex_t mutex;  // mutex, stack, affinity: locked while the node waits
  sem_t sem;
  pthread_cond_t cond;
  int has_token;  // cond: guarded by mutex
} nodes[kThreads];
static int token;  // handed over with the node's wake-up, which orders it
static const char* variant;

static void Wait(struct Node* n) {
  if (strcmp(variant, "sem") == 0) {
    while (sem_wait(&n->sem) != 0) {
    }
  } else if (strcmp(variant, "cond") == 0) {
    pthread_mutex_lock(&n->mutex);
    while (!n->has_token) pthread_cond_wait(&n->cond, &n->mutex);
    n->has_token = 0;
    pthread_mutex_unlock(&n->mutex);
  } else {
    pthread_mutex_lock(&n->mutex);
  }
}

static void Wake(struct Node* n) {
  if (strcmp(variant, "sem") == 0) {
    sem_post(&n->sem);
  } else if (strcmp(variant, "cond") == 0) {
    pthread_mutex_lock(&n->mutex);
    n->has_token = 1;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->mutex);
  } else {
    pthread_mutex_unlock(&n->mutex);
  }
}

static void* Run(void* arg) {
  int id = (int)(long)arg;
  struct Node* next = &nodes[(id + 1) % kThreads];
  for (;;) {
    Wait(&nodes[id]);
    if (token == 0) {
      printf("%d\n", id + 1);
      exit(0);
    }
    --token;
    Wake(next);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: thread_ring mutex|sem|cond|stack|affinity N\n");
    return 2;
  }
  variant = argv[1];
  token = atoi(argv[2]);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  cpu_set_t all;
  if (strcmp(variant, "affinity") == 0) {
    // Like the entries that pin the process to one CPU: this thread to the first allowed CPU; the
    // ring's threads get every CPU this thread was allowed before.
    sched_getaffinity(0, sizeof all, &all);
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &all)) {
        CPU_SET(c, &one);
        break;
      }
    }
    if (sched_setaffinity(0, sizeof one, &one) != 0) perror("sched_setaffinity");
    pthread_attr_setaffinity_np(&attr, sizeof all, &all);
  }
  for (int i = 0; i < kThreads; ++i) {
    pthread_mutex_init(&nodes[i].mutex, NULL);
    pthread_cond_init(&nodes[i].cond, NULL);
    sem_init(&nodes[i].sem, 0, 0);
    if (strcmp(variant, "mutex") == 0 || strcmp(variant, "stack") == 0 ||
        strcmp(variant, "affinity") == 0) {
      pthread_mutex_lock(&nodes[i].mutex);
    }
    if (strcmp(variant, "stack") == 0) {
      void* stack;
      if (posix_memalign(&stack, 4096, kStackSize) != 0) return 1;
      pthread_attr_setstack(&attr, stack, kStackSize);
    }
    pthread_t t;
    int rc = pthread_create(&t, &attr, Run, (void*)(long)i);
    if (rc != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  Wake(&nodes[0]);
  pthread_exit(NULL);  // the thread that gets token 0 ends the process
}
