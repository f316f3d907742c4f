#include "tools/stress/harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <memory>

namespace stress {

namespace {

// Only the first failures of a scenario are printed; the table counts all of them.
constexpr uint64_t kPrintedFailures = 5;

}  // namespace

std::vector<Scenario>& Registry() {
  static auto* registry = new std::vector<Scenario>;
  return *registry;
}

void Round::Latency(int64_t ns) {
  int64_t seen = slot_.max_latency_ns.load(std::memory_order_relaxed);
  while (ns > seen &&
         !slot_.max_latency_ns.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

void Round::Fail(const char* fmt, ...) {
  uint64_t n = slot_.failures.fetch_add(1, std::memory_order_relaxed);
  if (n >= kPrintedFailures) return;
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  // One write(), so lines from concurrent threads and the watchdog do not interleave.
  char line[768];
  int len = snprintf(line, sizeof line, "stress: FAIL %s (round %llu, round seed %#llx): %s%s\n",
                     scenario_.name, static_cast<unsigned long long>(index_),
                     static_cast<unsigned long long>(seed_), what,
                     n + 1 == kPrintedFailures ? " [further failures of this scenario not printed]"
                                               : "");
  if (write(STDERR_FILENO, line, static_cast<size_t>(len)) < 0) {
    // Nothing better to do; the failure is still counted.
  }
}

namespace {

struct ThreadStart {
  const std::function<void(int)>* body;
  int index;
};

void* ThreadMain(void* arg) {
  std::unique_ptr<ThreadStart> start(static_cast<ThreadStart*>(arg));
  (*start->body)(start->index);
  return nullptr;
}

}  // namespace

int RunThreads(Round& round, int n, const std::function<void(int)>& body, size_t stack_size) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack_size != 0) pthread_attr_setstacksize(&attr, stack_size);
  std::vector<pthread_t> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    pthread_t t;
    auto* start = new ThreadStart{&body, i};
    int rc = pthread_create(&t, &attr, ThreadMain, start);
    if (rc != 0) {
      delete start;
      round.Fail("pthread_create of thread %d of %d: %s", i, n, strerror(rc));
      continue;
    }
    threads.push_back(t);
  }
  pthread_attr_destroy(&attr);
  for (pthread_t t : threads) {
    int rc = pthread_join(t, nullptr);
    if (rc != 0) round.Fail("pthread_join: %s", strerror(rc));
  }
  return static_cast<int>(threads.size());
}

void SleepNs(int64_t ns) {
  timespec ts = ToTimespec(ns);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace stress
