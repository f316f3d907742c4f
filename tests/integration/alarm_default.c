/* alarm() with SIGALRM left at SIG_DFL ends the process by SIGALRM, as natively, even though the
 * library preempts with SIGALRM: its handler takes the default action for the program's signal.
 * CPU-bound threads run meanwhile, so the library's ticks (which must not kill) are flowing too.
 * Exits with 0 only if it survives, which is a failure: BUILD expects 142 (128 + SIGALRM). */
#include <pthread.h>
#include <time.h>
#include <unistd.h>

static void* hog(void* arg) {
  (void)arg;
  for (;;) {
  }
  return 0;
}

int main(void) {
  pthread_t t;
  for (int i = 0; i < 4; ++i) pthread_create(&t, 0, hog, 0);
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, 0); /* ticks flow; none may be taken for the program's alarm */
  alarm(1);
  ts.tv_sec = 10;
  ts.tv_nsec = 0;
  nanosleep(&ts, 0);
  return 0;
}
