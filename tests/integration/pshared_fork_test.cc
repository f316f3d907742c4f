// Process-shared synchronisation between a parent and a fork()ed child: PTHREAD_PROCESS_SHARED
// mutexes and condition variables and pshared sem_t in MAP_SHARED anonymous memory, and named
// semaphores. The waits cross process boundaries, so they must reach the kernel's shared futexes.
//
// The shim does not fully support fork yet, so the child only uses the inherited objects and then
// _exit()s: no threads, no gtest, no sem_open. Every wait in the child has a deadline, so a lost
// wake-up makes the child exit with a failure code instead of hanging the test; the parent checks
// the code.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <new>
#include <string>

#include "tests/integration/util.h"

namespace {

using vthread_test::DeadlineIn;
using vthread_test::kNsPerSec;

constexpr int kRounds = 1000;

// Child exit codes.
enum : int { kChildOk = 0, kChildTimedOut = 10, kChildError = 11, kChildBadState = 12 };

template <typename T>
T* MapShared() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  return new (p) T();
}

template <typename T>
void Unmap(T* p) {
  p->~T();
  munmap(p, sizeof(T));
}

// Forks a child that runs `child` and _exit()s with its result; returns the pid (or -1).
template <typename Fn>
pid_t ForkChild(Fn child) {
  pid_t pid = fork();
  if (pid == 0) _exit(child());
  return pid;
}

int ExitCodeOf(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (!WIFEXITED(status)) return -2;
  return WEXITSTATUS(status);
}

// --- mutex + condition variable ------------------------------------------------------------------

struct MutexCond {
  pthread_mutex_t m;
  pthread_cond_t c;
  int turn = 0;  // 0: parent's turn, 1: child's turn
  int parent_moves = 0;
  int child_moves = 0;
  long counter = 0;
};

void InitShared(MutexCond* s) {
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  ASSERT_EQ(pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED), 0);
  int pshared = -1;
  ASSERT_EQ(pthread_mutexattr_getpshared(&ma, &pshared), 0);
  ASSERT_EQ(pshared, PTHREAD_PROCESS_SHARED);
  ASSERT_EQ(pthread_mutex_init(&s->m, &ma), 0);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  ASSERT_EQ(pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED), 0);
  ASSERT_EQ(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
  ASSERT_EQ(pthread_cond_init(&s->c, &ca), 0);
  pthread_condattr_destroy(&ca);
}

// Waits for `turn == me`, makes the move, passes the turn. Returns 0 or an error / ETIMEDOUT.
int TakeTurn(MutexCond* s, int me, int* moves) {
  int r = pthread_mutex_lock(&s->m);
  if (r != 0) return r;
  timespec deadline = DeadlineIn(10 * kNsPerSec, CLOCK_MONOTONIC);
  while (s->turn != me && r == 0) r = pthread_cond_timedwait(&s->c, &s->m, &deadline);
  if (r == 0) {
    ++*moves;
    s->turn = 1 - me;
    r = pthread_cond_signal(&s->c);
  }
  int u = pthread_mutex_unlock(&s->m);
  return r != 0 ? r : u;
}

TEST(ProcessShared, MutexAndCondPingPongWithAForkedChild) {
  MutexCond* s = MapShared<MutexCond>();
  ASSERT_NE(s, nullptr);
  InitShared(s);
  pid_t pid = ForkChild([s] {
    for (int i = 0; i < kRounds; ++i) {
      int r = TakeTurn(s, 1, &s->child_moves);
      if (r == ETIMEDOUT) return int{kChildTimedOut};
      if (r != 0) return int{kChildError};
    }
    return int{kChildOk};
  });
  ASSERT_GT(pid, 0);
  int failed = 0;
  for (int i = 0; i < kRounds && failed == 0; ++i) failed = TakeTurn(s, 0, &s->parent_moves);
  EXPECT_EQ(failed, 0) << strerror(failed);
  EXPECT_EQ(ExitCodeOf(pid), kChildOk);
  EXPECT_EQ(s->parent_moves, kRounds);
  EXPECT_EQ(s->child_moves, kRounds);
  EXPECT_EQ(s->turn, 0);
  EXPECT_EQ(pthread_cond_destroy(&s->c), 0);
  EXPECT_EQ(pthread_mutex_destroy(&s->m), 0);
  Unmap(s);
}

TEST(ProcessShared, MutexExcludesAcrossProcesses) {
  constexpr int kIters = 20000;
  MutexCond* s = MapShared<MutexCond>();
  ASSERT_NE(s, nullptr);
  InitShared(s);
  auto work = [s] {
    for (int i = 0; i < kIters; ++i) {
      if (pthread_mutex_lock(&s->m) != 0) return int{kChildError};
      long v = s->counter;
      if (i % 1000 == 0) sched_yield();  // hold it across a switch so the other process waits
      s->counter = v + 1;
      if (pthread_mutex_unlock(&s->m) != 0) return int{kChildError};
    }
    return int{kChildOk};
  };
  pid_t pid = ForkChild(work);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(work(), kChildOk);
  EXPECT_EQ(ExitCodeOf(pid), kChildOk);
  EXPECT_EQ(s->counter, 2L * kIters);
  // The other process's lock attempts must not have left the mutex in a strange state.
  EXPECT_EQ(pthread_mutex_trylock(&s->m), 0);
  EXPECT_EQ(pthread_mutex_unlock(&s->m), 0);
  EXPECT_EQ(pthread_mutex_destroy(&s->m), 0);
  EXPECT_EQ(pthread_cond_destroy(&s->c), 0);
  Unmap(s);
}

// --- unnamed and named semaphores ----------------------------------------------------------------

// One side of a semaphore ping-pong: wait on `mine`, bump `*ball` (which must have the expected
// parity), post `theirs`. The parent starts.
int PlaySem(sem_t* mine, sem_t* theirs, int* ball, int parity, bool first) {
  for (int i = 0; i < kRounds; ++i) {
    if (!(first && i == 0)) {
      timespec deadline = DeadlineIn(10 * kNsPerSec);
      if (sem_timedwait(mine, &deadline) != 0) {
        return errno == ETIMEDOUT ? int{kChildTimedOut} : int{kChildError};
      }
    }
    if (*ball % 2 != parity) return int{kChildBadState};
    ++*ball;
    if (sem_post(theirs) != 0) return int{kChildError};
  }
  return int{kChildOk};
}

struct SemPair {
  sem_t to_child;
  sem_t to_parent;
  int ball = 0;
};

TEST(ProcessShared, UnnamedSemaphorePingPongWithAForkedChild) {
  SemPair* s = MapShared<SemPair>();
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(sem_init(&s->to_child, 1, 0), 0);
  ASSERT_EQ(sem_init(&s->to_parent, 1, 0), 0);
  pid_t pid = ForkChild([s] { return PlaySem(&s->to_child, &s->to_parent, &s->ball, 1, false); });
  ASSERT_GT(pid, 0);
  EXPECT_EQ(PlaySem(&s->to_parent, &s->to_child, &s->ball, 0, true), kChildOk);
  // The parent's last post is the child's last wait; the child's last post is still pending.
  timespec deadline = DeadlineIn(10 * kNsPerSec);
  EXPECT_EQ(sem_timedwait(&s->to_parent, &deadline), 0);
  EXPECT_EQ(ExitCodeOf(pid), kChildOk);
  EXPECT_EQ(s->ball, 2 * kRounds);
  int v = -1;
  EXPECT_EQ(sem_getvalue(&s->to_child, &v), 0);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(sem_getvalue(&s->to_parent, &v), 0);
  EXPECT_EQ(v, 0);
  EXPECT_EQ(sem_destroy(&s->to_child), 0);
  EXPECT_EQ(sem_destroy(&s->to_parent), 0);
  Unmap(s);
}

TEST(ProcessShared, NamedSemaphoresPingPongWithAForkedChild) {
  const std::string base = "/vthread_pshared_" + std::to_string(getpid());
  const std::string to_child_name = base + "_c", to_parent_name = base + "_p";
  sem_unlink(to_child_name.c_str());
  sem_unlink(to_parent_name.c_str());
  sem_t* to_child = sem_open(to_child_name.c_str(), O_CREAT | O_EXCL, 0600, 0);
  ASSERT_NE(to_child, SEM_FAILED) << strerror(errno);
  sem_t* to_parent = sem_open(to_parent_name.c_str(), O_CREAT | O_EXCL, 0600, 0);
  ASSERT_NE(to_parent, SEM_FAILED) << strerror(errno);
  errno = 0;
  EXPECT_EQ(sem_open(to_child_name.c_str(), O_CREAT | O_EXCL, 0600, 0), SEM_FAILED);
  EXPECT_EQ(errno, EEXIST);

  int* ball = MapShared<int>();
  ASSERT_NE(ball, nullptr);
  pid_t pid = ForkChild([&] { return PlaySem(to_child, to_parent, ball, 1, false); });
  ASSERT_GT(pid, 0);
  EXPECT_EQ(PlaySem(to_parent, to_child, ball, 0, true), kChildOk);
  timespec deadline = DeadlineIn(10 * kNsPerSec);
  EXPECT_EQ(sem_timedwait(to_parent, &deadline), 0);
  EXPECT_EQ(ExitCodeOf(pid), kChildOk);
  EXPECT_EQ(*ball, 2 * kRounds);

  // Opening the name again reaches the same semaphore: a post through it is seen by the other.
  sem_t* again = sem_open(to_child_name.c_str(), 0);
  ASSERT_NE(again, SEM_FAILED);
  EXPECT_EQ(sem_post(again), 0);
  EXPECT_EQ(sem_trywait(to_child), 0);
  EXPECT_EQ(sem_close(again), 0);

  EXPECT_EQ(sem_close(to_child), 0);
  EXPECT_EQ(sem_close(to_parent), 0);
  EXPECT_EQ(sem_unlink(to_child_name.c_str()), 0);
  EXPECT_EQ(sem_unlink(to_parent_name.c_str()), 0);
  errno = 0;
  EXPECT_EQ(sem_unlink(to_child_name.c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(sem_open(to_parent_name.c_str(), 0), SEM_FAILED);
  EXPECT_EQ(errno, ENOENT);
  munmap(ball, sizeof(int));
}

}  // namespace
