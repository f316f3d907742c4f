// pthread_cancel of a thread blocked in a system call that is a cancellation point (read, poll,
// accept) ends the call and cancels the thread: cleanup handlers and destructors run, and join
// returns PTHREAD_CANCELED. With cancellation disabled the call is left alone.
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>

#include "tests/integration/util.h"

namespace {

using vthread_test::kNsPerMs;
using vthread_test::kNsPerSec;
using vthread_test::NowNs;

std::atomic<int> g_cleanups{0};
std::atomic<int> g_destructors{0};
std::atomic<bool> g_about_to_block{false};

struct CountsDestruction {
  ~CountsDestruction() { g_destructors.fetch_add(1); }
};

void CountCleanup(void*) { g_cleanups.fetch_add(1); }

enum class Call { kRead, kPoll, kAccept };

struct Blocker {
  Call call;
  int fd;
};

void* BlockForever(void* arg) {
  auto* b = static_cast<Blocker*>(arg);
  CountsDestruction guard;
  pthread_cleanup_push(CountCleanup, nullptr);
  g_about_to_block = true;
  char c;
  struct pollfd pfd = {b->fd, POLLIN, 0};
  switch (b->call) {
    case Call::kRead: (void)!read(b->fd, &c, 1); break;
    case Call::kPoll: poll(&pfd, 1, -1); break;
    case Call::kAccept: accept(b->fd, nullptr, nullptr); break;
  }
  pthread_cleanup_pop(0);
  return nullptr;
}

// Starts a thread blocked in `call` on `fd`, cancels it once blocked, and checks it was cancelled
// within 5 s (a deadline only so that a failure does not hang the test; natively it takes
// microseconds). `release` unblocks the call if the cancel did not.
void ExpectCancelled(Call call, int fd, const std::function<void()>& release) {
  g_cleanups = 0;
  g_destructors = 0;
  g_about_to_block = false;
  Blocker b{call, fd};
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, BlockForever, &b), 0);
  while (!g_about_to_block) usleep(1000);
  usleep(50 * 1000);  // into the call
  ASSERT_EQ(pthread_cancel(t), 0);
  timespec deadline = vthread_test::ToTimespec(NowNs(CLOCK_REALTIME) + 5 * kNsPerSec);
  void* result = nullptr;
  if (pthread_timedjoin_np(t, &result, &deadline) == ETIMEDOUT) {
    ADD_FAILURE() << "the blocked call was not cancelled within 5 s";
    release();
    ASSERT_EQ(pthread_join(t, &result), 0);
  }
  EXPECT_EQ(result, PTHREAD_CANCELED);
  EXPECT_EQ(g_cleanups.load(), 1);
  EXPECT_EQ(g_destructors.load(), 1);
}

void ExpectCancelledOnEmptyPipe(Call call) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ExpectCancelled(call, p[0], [&] {
    if (write(p[1], "x", 1) != 1) abort();
  });
  close(p[0]);
  close(p[1]);
}

TEST(CancelBlockingCall, ReadOnAnEmptyPipe) { ExpectCancelledOnEmptyPipe(Call::kRead); }

TEST(CancelBlockingCall, PollWithoutTimeout) { ExpectCancelledOnEmptyPipe(Call::kPoll); }

TEST(CancelBlockingCall, AcceptWithNoClient) {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(client, 0);
  ExpectCancelled(Call::kAccept, listener, [&] {
    if (connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) abort();
  });
  close(client);
  close(listener);
}

// With cancellation disabled the read is not interrupted: it returns the byte written later, and
// the cancel is acted on at the next cancellation point once enabled.
std::atomic<ssize_t> g_read_result{-2};

void* ReadWithCancelDisabled(void* arg) {
  int fd = *static_cast<int*>(arg);
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
  g_about_to_block = true;
  char c;
  g_read_result = read(fd, &c, 1);
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
  pthread_testcancel();
  return nullptr;
}

TEST(CancelBlockingCall, DisabledCancelLeavesTheCallAlone) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  g_about_to_block = false;
  g_read_result = -2;
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, ReadWithCancelDisabled, &p[0]), 0);
  while (!g_about_to_block) usleep(1000);
  usleep(50 * 1000);
  ASSERT_EQ(pthread_cancel(t), 0);
  usleep(100 * 1000);
  EXPECT_EQ(g_read_result.load(), -2);  // still blocked
  ASSERT_EQ(write(p[1], "x", 1), 1);
  void* result = nullptr;
  ASSERT_EQ(pthread_join(t, &result), 0);
  EXPECT_EQ(g_read_result.load(), 1);
  EXPECT_EQ(result, PTHREAD_CANCELED);
  close(p[0]);
  close(p[1]);
}

// A reader cancelled over and over at random moments of a busy pipe: every cancel is acted on,
// and the process survives.
void* ReadLoop(void* arg) {
  int fd = *static_cast<int*>(arg);
  char buf[64];
  for (;;) (void)!read(fd, buf, sizeof buf);
  return nullptr;
}

TEST(CancelBlockingCall, ReadersCancelledAtRandomMoments) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  for (int i = 0; i < 50; ++i) {
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, nullptr, ReadLoop, &p[0]), 0);
    for (int k = 0; k < i % 5; ++k) ASSERT_EQ(write(p[1], "0123456789", 10), 10);
    usleep((i % 7) * 300);
    ASSERT_EQ(pthread_cancel(t), 0);
    void* result = nullptr;
    ASSERT_EQ(pthread_join(t, &result), 0);
    EXPECT_EQ(result, PTHREAD_CANCELED);
  }
  close(p[0]);
  close(p[1]);
}

}  // namespace
