// Cancelling the main thread: like pthread_exit from main, its cleanup handlers run, it ends, and
// the process lives on until the last thread ends, then exits with status 0. Here another thread
// cancels main while main is blocked in pthread_join (a cancellation point), checks that main's
// cleanup handler ran, and returns. Exit status 0 means all went well.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_t main_thread;
static volatile int main_cleaned;

static void main_cleanup(void* arg) {
  (void)arg;
  main_cleaned = 1;
}

static void* canceller(void* arg) {
  (void)arg;
  usleep(20000);  // let main block in pthread_join
  if (pthread_cancel(main_thread) != 0) exit(2);
  for (int i = 0; i < 5000 && !main_cleaned; ++i) usleep(1000);
  if (!main_cleaned) exit(3);
  usleep(20000);
  return NULL;  // the last thread: the process exits with 0
}

int main(void) {
  main_thread = pthread_self();
  pthread_t t;
  if (pthread_create(&t, NULL, canceller, NULL) != 0) return 4;
  pthread_cleanup_push(main_cleanup, NULL);
  pthread_join(t, NULL);  // cancelled here
  pthread_cleanup_pop(0);
  return 5;  // not reached
}
