// Robust mutexes: a holder that exits hands the next locker EOWNERDEAD (lock, trylock, timedlock
// and a condition wait's relock), pthread_mutex_consistent repairs it, unlocking without it makes
// the mutex ENOTRECOVERABLE for everyone, and only the holder may unlock. Every type (normal,
// recursive, errorcheck) is checked, since glibc's error codes differ between them. Waiters that
// park while the dying holder still runs must be woken by its exit (on one carrier, a waiter
// blocked in the kernel would never let the holder run to exit).
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <thread>

#include "tests/integration/util.h"

namespace {

using vthread_test::PollUntil;

class RobustMutex : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    pthread_mutexattr_t attr;
    ASSERT_EQ(pthread_mutexattr_init(&attr), 0);
    ASSERT_EQ(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST), 0);
    ASSERT_EQ(pthread_mutexattr_settype(&attr, GetParam()), 0);
    ASSERT_EQ(pthread_mutex_init(&mutex_, &attr), 0);
    pthread_mutexattr_destroy(&attr);
  }
  void TearDown() override { pthread_mutex_destroy(&mutex_); }

  // A thread locks the mutex and exits holding it.
  void DieHolding() {
    int r = -1;
    std::thread([&] { r = pthread_mutex_lock(&mutex_); }).join();
    ASSERT_EQ(r, 0);
  }

  pthread_mutex_t mutex_;
};

TEST_P(RobustMutex, OwnerDeathReportsEownerdeadAndConsistentRepairs) {
  DieHolding();
  ASSERT_EQ(pthread_mutex_lock(&mutex_), EOWNERDEAD);
  // Held, inconsistent: the holder may make it consistent, then use it normally.
  EXPECT_EQ(pthread_mutex_consistent(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_consistent(&mutex_), EINVAL);  // it is consistent already
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_lock(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
}

TEST_P(RobustMutex, UnlockingWhileInconsistentMakesItUnrecoverable) {
  DieHolding();
  ASSERT_EQ(pthread_mutex_trylock(&mutex_), EOWNERDEAD);
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_lock(&mutex_), ENOTRECOVERABLE);
  int from_other = -1;
  std::thread([&] { from_other = pthread_mutex_lock(&mutex_); }).join();
  EXPECT_EQ(from_other, ENOTRECOVERABLE);
  // Last: glibc 2.36's trylock returns ENOTRECOVERABLE but leaves the word locked.
  EXPECT_EQ(pthread_mutex_trylock(&mutex_), ENOTRECOVERABLE);
}

TEST_P(RobustMutex, TimedLockGetsEownerdeadToo) {
  DieHolding();
  timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 5;
  ASSERT_EQ(pthread_mutex_timedlock(&mutex_, &deadline), EOWNERDEAD);
  EXPECT_EQ(pthread_mutex_consistent(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
}

TEST_P(RobustMutex, OnlyTheHolderMayUnlock) {
  ASSERT_EQ(pthread_mutex_lock(&mutex_), 0);
  int from_other = -1;
  std::thread([&] { from_other = pthread_mutex_unlock(&mutex_); }).join();
  EXPECT_EQ(from_other, EPERM);
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), EPERM);  // not locked at all
}

TEST_P(RobustMutex, AWaiterIsWokenByTheHoldersDeath) {
  std::atomic<bool> locked{false}, release{false};
  std::thread holder([&] {
    pthread_mutex_lock(&mutex_);
    locked = true;
    while (!release) sched_yield();
    // exits holding the mutex
  });
  ASSERT_TRUE(PollUntil([&] { return locked.load(); }));
  std::atomic<int> waiter_result{-1};
  std::thread waiter([&] {
    waiter_result = pthread_mutex_lock(&mutex_);
    if (waiter_result == EOWNERDEAD) pthread_mutex_consistent(&mutex_);
    pthread_mutex_unlock(&mutex_);
  });
  release = true;
  holder.join();
  waiter.join();
  EXPECT_EQ(waiter_result, EOWNERDEAD);
  EXPECT_EQ(pthread_mutex_lock(&mutex_), 0);  // the waiter repaired it
  EXPECT_EQ(pthread_mutex_unlock(&mutex_), 0);
}

TEST_P(RobustMutex, ConditionWaitReturnsEownerdeadFromItsRelock) {
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  std::atomic<bool> waiting{false};
  std::atomic<int> wait_result{-1};
  std::thread waiter([&] {
    pthread_mutex_lock(&mutex_);
    waiting = true;
    wait_result = pthread_cond_wait(&cond, &mutex_);
    if (wait_result == EOWNERDEAD) pthread_mutex_consistent(&mutex_);
    pthread_mutex_unlock(&mutex_);
  });
  ASSERT_TRUE(PollUntil([&] { return waiting.load(); }));
  // Locking waits until the waiter is inside the wait (it released the mutex there).
  std::thread([&] {
    pthread_mutex_lock(&mutex_);
    pthread_cond_signal(&cond);
    // exits holding the mutex: the waiter's relock finds its owner dead
  }).join();
  waiter.join();
  EXPECT_EQ(wait_result, EOWNERDEAD);
  pthread_cond_destroy(&cond);
}

TEST(RobustMutexKinds, ConsistentOnAMutexThatIsNotRobustIsEinval) {
  pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;
  ASSERT_EQ(pthread_mutex_lock(&plain), 0);
  EXPECT_EQ(pthread_mutex_consistent(&plain), EINVAL);
  EXPECT_EQ(pthread_mutex_unlock(&plain), 0);
}

TEST(RobustMutexKinds, RecursiveHolderCountsDownWhileInconsistent) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_t m;
  pthread_mutex_init(&m, &attr);
  pthread_mutexattr_destroy(&attr);
  std::thread([&] { pthread_mutex_lock(&m); }).join();
  ASSERT_EQ(pthread_mutex_lock(&m), EOWNERDEAD);
  EXPECT_EQ(pthread_mutex_lock(&m), 0);           // the holder relocks: count 2
  EXPECT_EQ(pthread_mutex_unlock(&m), ENOTRECOVERABLE);  // as glibc: still held, still inconsistent
  EXPECT_EQ(pthread_mutex_unlock(&m), 0);
  EXPECT_EQ(pthread_mutex_lock(&m), ENOTRECOVERABLE);
  pthread_mutex_destroy(&m);
}

INSTANTIATE_TEST_SUITE_P(Types, RobustMutex,
                         ::testing::Values(PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ERRORCHECK),
                         [](const ::testing::TestParamInfo<int>& info) {
                           switch (info.param) {
                             case PTHREAD_MUTEX_NORMAL: return "Normal";
                             case PTHREAD_MUTEX_RECURSIVE: return "Recursive";
                             default: return "Errorcheck";
                           }
                         });

}  // namespace
