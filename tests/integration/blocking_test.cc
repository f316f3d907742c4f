// A thread blocked in the kernel does not hold up the others, even with one carrier: its carrier's
// work is handed to another kernel thread. Both a blocking call the library wraps (read) and one it
// cannot see (a raw read system call through syscall()).
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::NowNs;

constexpr int kWorkers = 1000;

int g_pipe[2];
std::atomic<bool> g_reader_done{false};
bool g_raw_read = false;

void* Reader(void*) {
  char c;
  ssize_t n = g_raw_read ? syscall(SYS_read, g_pipe[0], &c, 1) : read(g_pipe[0], &c, 1);
  g_reader_done = n == 1;
  return nullptr;
}

// Half the workers sleep, half ping-pong in pairs through a mutex and condition variable.
struct Pair {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  int turn = 0;
};

struct Worker {
  Pair* pair;
  int side;  // -1: a sleeper
};

void* Work(void* arg) {
  auto* w = static_cast<Worker*>(arg);
  for (int i = 0; i < 20; ++i) {
    if (w->side < 0) {
      usleep(1000);
      continue;
    }
    pthread_mutex_lock(&w->pair->mutex);
    while (w->pair->turn % 2 != w->side) pthread_cond_wait(&w->pair->cond, &w->pair->mutex);
    ++w->pair->turn;
    pthread_cond_signal(&w->pair->cond);
    pthread_mutex_unlock(&w->pair->mutex);
  }
  return nullptr;
}

// Runs the workers while a reader is blocked on an empty pipe; the reader gets its byte only after
// they all finished, so they cannot have depended on it unblocking.
void RunWhileReaderBlocked(bool raw) {
  g_raw_read = raw;
  g_reader_done = false;
  ASSERT_EQ(pipe(g_pipe), 0);
  pthread_t reader;
  ASSERT_EQ(pthread_create(&reader, nullptr, Reader, nullptr), 0);
  usleep(20 * 1000);  // let it block
  std::vector<Pair> pairs(kWorkers / 4);
  std::vector<Worker> workers(kWorkers);
  std::vector<pthread_t> threads(kWorkers);
  int64_t start = NowNs();
  for (int i = 0; i < kWorkers; ++i) {
    workers[i] = i < kWorkers / 2 ? Worker{nullptr, -1} : Worker{&pairs[(i - kWorkers / 2) / 2], i % 2};
    ASSERT_EQ(pthread_create(&threads[i], nullptr, Work, &workers[i]), 0);
  }
  for (pthread_t t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
  int64_t elapsed = NowNs() - start;
  EXPECT_FALSE(g_reader_done.load());
  // Natively ~30 ms; the reader is held for as long as this takes, so no bound is needed for
  // correctness, but a hand-off that took a carrier's whole blocking time would show here.
  EXPECT_LT(elapsed, 5 * vthread_test::kNsPerSec);
  ASSERT_EQ(write(g_pipe[1], "x", 1), 1);
  ASSERT_EQ(pthread_join(reader, nullptr), 0);
  EXPECT_TRUE(g_reader_done.load());
  close(g_pipe[0]);
  close(g_pipe[1]);
}

TEST(Blocking, ReadOnPipeDoesNotDelayOthers) { RunWhileReaderBlocked(false); }

TEST(Blocking, UnwrappedBlockingSyscallDoesNotDelayOthers) { RunWhileReaderBlocked(true); }

// The main thread itself blocked: the program's other threads still run, and a thread it then
// waits for can finish.
void* WriteAfterWork(void*) {
  volatile uint64_t x = 0;
  for (int i = 0; i < 1000000; ++i) x = x + i;
  usleep(1000);
  if (write(g_pipe[1], "y", 1) != 1) abort();
  return nullptr;
}

TEST(Blocking, MainBlockedInReadWhileAThreadFeedsIt) {
  ASSERT_EQ(pipe(g_pipe), 0);
  pthread_t writer;
  ASSERT_EQ(pthread_create(&writer, nullptr, WriteAfterWork, nullptr), 0);
  char c = 0;
  ASSERT_EQ(read(g_pipe[0], &c, 1), 1);
  EXPECT_EQ(c, 'y');
  ASSERT_EQ(pthread_join(writer, nullptr), 0);
  close(g_pipe[0]);
  close(g_pipe[1]);
}

// A thread preempted while it holds a stdio lock (flockfile, then a long computation) and another
// that blocks in the kernel on that lock inside fprintf: with one carrier, the holder can only run
// again if the blocked carrier is handed off (the library sees no call: the wait is glibc's own).
FILE* g_file;
std::atomic<bool> g_printer_started{false};

void* HoldStdioLock(void*) {
  flockfile(g_file);
  while (!g_printer_started.load()) {
  }
  int64_t until = NowNs() + 50 * vthread_test::kNsPerMs;
  while (NowNs() < until) {
  }
  fputs("holder\n", g_file);
  funlockfile(g_file);
  return nullptr;
}

void* PrintUnderLock(void*) {
  g_printer_started = true;
  fprintf(g_file, "printer\n");
  return nullptr;
}

TEST(Blocking, PreemptedHolderOfStdioLock) {
  g_file = tmpfile();
  ASSERT_NE(g_file, nullptr);
  pthread_t holder, printer;
  ASSERT_EQ(pthread_create(&holder, nullptr, HoldStdioLock, nullptr), 0);
  usleep(10 * 1000);  // the holder takes the lock first
  ASSERT_EQ(pthread_create(&printer, nullptr, PrintUnderLock, nullptr), 0);
  ASSERT_EQ(pthread_join(holder, nullptr), 0);
  ASSERT_EQ(pthread_join(printer, nullptr), 0);
  rewind(g_file);
  char line[32];
  ASSERT_NE(fgets(line, sizeof line, g_file), nullptr);
  EXPECT_STREQ(line, "holder\n");
  ASSERT_NE(fgets(line, sizeof line, g_file), nullptr);
  EXPECT_STREQ(line, "printer\n");
  fclose(g_file);
}

}  // namespace

// A thread that was preempted while computing, then blocks in poll(): a thread whose sleep ends
// meanwhile (its wake-up queued on the poller's carrier) must not interrupt the poll, which the
// kernel never restarts once a signal handler ran. It returns when the pipe has data, as natively.
std::atomic<int> g_poll_result{-2};

void* Compute60ms(void*) {
  int64_t until = NowNs() + 60 * vthread_test::kNsPerMs;
  while (NowNs() < until) {
  }
  return nullptr;
}

void* ComputeThenPoll(void*) {
  int64_t until = NowNs() + 50 * vthread_test::kNsPerMs;
  while (NowNs() < until) {
  }
  struct pollfd pfd = {g_pipe[0], POLLIN, 0};
  g_poll_result = poll(&pfd, 1, -1);
  return nullptr;
}

void* SleepThenWrite(void*) {
  usleep(200 * 1000);
  if (write(g_pipe[1], "z", 1) != 1) abort();
  return nullptr;
}

TEST(Blocking, PollIsNotInterruptedByAThreadWaking) {
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(pipe(g_pipe), 0);
    g_poll_result = -2;
    pthread_t rival, poller, waker;
    ASSERT_EQ(pthread_create(&rival, nullptr, Compute60ms, nullptr), 0);  // so that the poller is preempted
    ASSERT_EQ(pthread_create(&poller, nullptr, ComputeThenPoll, nullptr), 0);
    ASSERT_EQ(pthread_create(&waker, nullptr, SleepThenWrite, nullptr), 0);
    ASSERT_EQ(pthread_join(poller, nullptr), 0);
    EXPECT_EQ(g_poll_result.load(), 1);
    ASSERT_EQ(pthread_join(waker, nullptr), 0);
    ASSERT_EQ(pthread_join(rival, nullptr), 0);
    close(g_pipe[0]);
    close(g_pipe[1]);
  }
}
