// pthread_exit from main unwinds main's stack, as glibc does: main's C++ destructors run, the
// process lives on until the last thread ends, and then exits with status 0 through exit(), whose
// atexit handler checks that the destructor ran (exit status 1 otherwise).
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>

namespace {

std::atomic<bool> destructor_ran{false};
std::atomic<bool> worker_saw_it{false};

struct MainFrameGuard {
  ~MainFrameGuard() { destructor_ran = true; }
};

void check_at_exit() {
  if (!destructor_ran || !worker_saw_it) _exit(1);
}

void* worker(void*) {
  for (int i = 0; i < 200 && !destructor_ran; ++i) usleep(5000);
  worker_saw_it = destructor_ran.load();
  return nullptr;
}

}  // namespace

int main() {
  atexit(check_at_exit);
  MainFrameGuard guard;
  pthread_t thread;
  if (pthread_create(&thread, nullptr, worker, nullptr) != 0) return 2;
  pthread_exit(nullptr);
}
