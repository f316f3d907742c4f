// POSIX thread cancellation, as glibc does it natively (this test is the spec: every case passes
// natively too). pthread_cancel, pthread_setcancelstate/-type, pthread_testcancel; acting on a
// cancel runs the cleanup handlers (last pushed first) and C++ destructors by a forced unwind
// (abi::__forced_unwind, which catch (...) { throw; } passes on), and join then returns
// PTHREAD_CANCELED. Each cancellation point the shim interposes is cancelled while the thread is
// blocked in it: the join family, the four sleeps, the condition waits (the cleanup handler runs
// with the mutex held again) and the semaphore waits. Non-cancellation points (a mutex wait) are
// not woken, a disabled thread is not cancelled until it enables and reaches a cancellation point,
// and pthread_once gives the initializer to another caller when it is cancelled, exits or throws.
//
// A thread that should have been cancelled and was not would block for kLong; joins use a
// deadline well below that, so a missed cancel is a failure, not a hang.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cxxabi.h>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

constexpr unsigned kLongSeconds = 60;  // how long a blocked thread would block if not cancelled
constexpr int64_t kJoinLimitMs = 20000;

// Events recorded by the threads of one test; a mutex because some tests record from two threads.
class Events {
 public:
  void Add(const std::string& e) {
    pthread_mutex_lock(&mu_);
    events_.push_back(e);
    pthread_mutex_unlock(&mu_);
  }
  std::vector<std::string> Get() {
    pthread_mutex_lock(&mu_);
    std::vector<std::string> copy = events_;
    pthread_mutex_unlock(&mu_);
    return copy;
  }

 private:
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
  std::vector<std::string> events_;
};

Events* g_events;

void Record(void* what) { g_events->Add(static_cast<const char*>(what)); }

// Joins `t`, failing (instead of hanging) if it does not end within kJoinLimitMs.
void* JoinWithin(pthread_t t) {
  timespec deadline = DeadlineIn(kJoinLimitMs * kNsPerMs);
  void* result = reinterpret_cast<void*>(0xdead);
  int rc = pthread_timedjoin_np(t, &result, &deadline);
  EXPECT_EQ(0, rc) << "the thread did not end: a cancel was missed";
  return result;
}

// The common shape: `blocker` runs in a new thread inside a cleanup handler that records
// "cleanup"; it sets `ready` just before blocking at a cancellation point. The test cancels it once
// it has had time to block, and expects PTHREAD_CANCELED and exactly the cleanup.
struct Blocked {
  std::function<void()> blocker;
  std::atomic<bool> ready{false};
};

void* RunBlocked(void* p) {
  auto* b = static_cast<Blocked*>(p);
  pthread_cleanup_push(Record, const_cast<char*>("cleanup"));
  b->ready = true;
  b->blocker();
  g_events->Add("returned from the cancellation point");
  pthread_cleanup_pop(0);
  return nullptr;
}

void ExpectCancelledWhileBlocked(std::function<void()> blocker) {
  Events events;
  g_events = &events;
  Blocked b;
  b.blocker = std::move(blocker);
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, RunBlocked, &b));
  ASSERT_TRUE(PollUntil([&] { return b.ready.load(); }));
  usleep(20000);  // let it block
  const int64_t start = NowNs();
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_LT(NowNs() - start, int64_t{10} * kNsPerSec);
  EXPECT_EQ(std::vector<std::string>{"cleanup"}, events.Get());
}

// ---- the sleep family ----------------------------------------------------------------------------

TEST(CancelAt, Sleep) {
  ExpectCancelledWhileBlocked([] { sleep(kLongSeconds); });
}

TEST(CancelAt, Usleep) {
  ExpectCancelledWhileBlocked([] { usleep(kLongSeconds * 1000000u); });
}

TEST(CancelAt, Nanosleep) {
  ExpectCancelledWhileBlocked([] {
    timespec ts = {kLongSeconds, 0};
    nanosleep(&ts, nullptr);
  });
}

TEST(CancelAt, ClockNanosleepRelativeAndAbsolute) {
  ExpectCancelledWhileBlocked([] {
    timespec ts = {kLongSeconds, 0};
    clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
  });
  ExpectCancelledWhileBlocked([] {
    timespec ts = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec, CLOCK_REALTIME);
    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, nullptr);
  });
}

// A pending cancel acts on entry to a sleep, even one of zero length.
TEST(CancelAt, ZeroLengthSleepActsOnAPendingCancel) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_cancel(pthread_self());
    g_events->Add("pending");
    usleep(0);
    g_events->Add("unreachable");
    return nullptr;
  }, nullptr));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ(std::vector<std::string>{"pending"}, events.Get());
}

// ---- the join family -------------------------------------------------------------------------------

void* SleepLong(void*) {
  sleep(kLongSeconds);
  return nullptr;
}

void ExpectJoinCancelled(int (*join)(pthread_t, void**)) {
  static int (*s_join)(pthread_t, void**);
  s_join = join;
  pthread_t sleeper;
  ASSERT_EQ(0, pthread_create(&sleeper, nullptr, SleepLong, nullptr));
  ExpectCancelledWhileBlocked([sleeper] { s_join(sleeper, nullptr); });
  // The cancelled joiner did not consume the join: the sleeper is still joinable.
  EXPECT_EQ(0, pthread_cancel(sleeper));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(sleeper));
}

TEST(CancelAt, JoinAndTheJoinerLeavesTheTargetJoinable) {
  ExpectJoinCancelled([](pthread_t t, void** r) { return pthread_join(t, r); });
}

TEST(CancelAt, TimedJoin) {
  ExpectJoinCancelled([](pthread_t t, void** r) {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec);
    return pthread_timedjoin_np(t, r, &deadline);
  });
}

TEST(CancelAt, ClockJoin) {
  ExpectJoinCancelled([](pthread_t t, void** r) {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec, CLOCK_MONOTONIC);
    return pthread_clockjoin_np(t, r, CLOCK_MONOTONIC, &deadline);
  });
}

// ---- condition variables -------------------------------------------------------------------------

struct CondCase {
  pthread_mutex_t mu;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  std::function<int(pthread_cond_t*, pthread_mutex_t*)> wait;
  std::atomic<bool> waiting{false};
  std::atomic<int> unlock_rc{-1};
};
CondCase* g_cond;

// The cleanup handler: POSIX says the mutex is held again when it runs. An errorcheck mutex proves
// it: unlocking one the thread does not own is EPERM.
void UnlockInCleanup(void*) {
  g_cond->unlock_rc = pthread_mutex_unlock(&g_cond->mu);
  g_events->Add("cleanup");
}

void ExpectCondWaitCancelledWithMutexHeld(std::function<int(pthread_cond_t*, pthread_mutex_t*)> wait) {
  Events events;
  g_events = &events;
  CondCase c;
  g_cond = &c;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&c.mu, &attr);
  pthread_mutexattr_destroy(&attr);
  c.wait = std::move(wait);
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_mutex_lock(&g_cond->mu);
    pthread_cleanup_push(UnlockInCleanup, nullptr);
    g_cond->waiting = true;
    for (;;) g_cond->wait(&g_cond->cv, &g_cond->mu);  // nobody signals
    pthread_cleanup_pop(1);
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([&] { return c.waiting.load(); }));
  // Taking the mutex proves the thread is inside the wait (it released the mutex there).
  ASSERT_EQ(0, pthread_mutex_lock(&c.mu));
  ASSERT_EQ(0, pthread_mutex_unlock(&c.mu));
  usleep(10000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ(0, c.unlock_rc.load()) << "the cleanup handler ran without the mutex";
  EXPECT_EQ(std::vector<std::string>{"cleanup"}, events.Get());
  EXPECT_EQ(0, pthread_mutex_trylock(&c.mu));  // and the handler's unlock released it
  EXPECT_EQ(0, pthread_mutex_unlock(&c.mu));
  pthread_mutex_destroy(&c.mu);
}

TEST(CancelAt, CondWaitReacquiresTheMutexBeforeCleanup) {
  ExpectCondWaitCancelledWithMutexHeld([](pthread_cond_t* cv, pthread_mutex_t* mu) {
    return pthread_cond_wait(cv, mu);
  });
}

TEST(CancelAt, CondTimedWaitReacquiresTheMutexBeforeCleanup) {
  ExpectCondWaitCancelledWithMutexHeld([](pthread_cond_t* cv, pthread_mutex_t* mu) {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec);
    return pthread_cond_timedwait(cv, mu, &deadline);
  });
}

TEST(CancelAt, CondClockWaitReacquiresTheMutexBeforeCleanup) {
  ExpectCondWaitCancelledWithMutexHeld([](pthread_cond_t* cv, pthread_mutex_t* mu) {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec, CLOCK_MONOTONIC);
    return pthread_cond_clockwait(cv, mu, CLOCK_MONOTONIC, &deadline);
  });
}

// A cancelled waiter leaves the queue: a later signal goes to the waiter that is still there.
TEST(CancelAt, CondWaitOfACancelledWaiterDoesNotSwallowALaterSignal) {
  struct Shared {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int tokens = 0;
    int waiting = 0;
  };
  static Shared s;
  s.tokens = 0;
  s.waiting = 0;
  auto consumer = [](void*) -> void* {
    pthread_mutex_lock(&s.mu);
    pthread_cleanup_push([](void*) { pthread_mutex_unlock(&s.mu); }, nullptr);
    ++s.waiting;
    while (s.tokens == 0) pthread_cond_wait(&s.cv, &s.mu);
    --s.tokens;
    pthread_cleanup_pop(1);
    return reinterpret_cast<void*>(1);
  };
  pthread_t first, second;
  ASSERT_EQ(0, pthread_create(&first, nullptr, consumer, nullptr));
  ASSERT_TRUE(PollUntil([] {
    pthread_mutex_lock(&s.mu);
    bool in = s.waiting == 1;
    pthread_mutex_unlock(&s.mu);
    return in;
  }));
  ASSERT_EQ(0, pthread_create(&second, nullptr, consumer, nullptr));
  ASSERT_TRUE(PollUntil([] {
    pthread_mutex_lock(&s.mu);
    bool in = s.waiting == 2;
    pthread_mutex_unlock(&s.mu);
    return in;
  }));
  usleep(10000);
  EXPECT_EQ(0, pthread_cancel(first));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(first));
  pthread_mutex_lock(&s.mu);
  s.tokens = 1;
  pthread_cond_signal(&s.cv);
  pthread_mutex_unlock(&s.mu);
  EXPECT_EQ(reinterpret_cast<void*>(1), JoinWithin(second));
}

// ---- semaphores ----------------------------------------------------------------------------------

sem_t g_sem;

void ExpectSemWaitCancelled(std::function<void()> wait) {
  ASSERT_EQ(0, sem_init(&g_sem, 0, 0));
  ExpectCancelledWhileBlocked(std::move(wait));
  // The cancelled waiter took nothing: a post is still there afterwards.
  EXPECT_EQ(0, sem_post(&g_sem));
  int value = -1;
  EXPECT_EQ(0, sem_getvalue(&g_sem, &value));
  EXPECT_EQ(1, value);
  sem_destroy(&g_sem);
}

TEST(CancelAt, SemWait) {
  ExpectSemWaitCancelled([] { sem_wait(&g_sem); });
}

TEST(CancelAt, SemTimedWait) {
  ExpectSemWaitCancelled([] {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec);
    sem_timedwait(&g_sem, &deadline);
  });
}

TEST(CancelAt, SemClockWait) {
  ExpectSemWaitCancelled([] {
    timespec deadline = DeadlineIn(int64_t{kLongSeconds} * kNsPerSec, CLOCK_MONOTONIC);
    sem_clockwait(&g_sem, CLOCK_MONOTONIC, &deadline);
  });
}

// sem_wait acts on a pending cancel even when it would not wait (glibc: "shall occur").
TEST(CancelAt, SemWaitActsOnAPendingCancelEvenWithAUnitAvailable) {
  ASSERT_EQ(0, sem_init(&g_sem, 0, 1));
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_cancel(pthread_self());
    sem_wait(&g_sem);
    return nullptr;
  }, nullptr));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  int value = -1;
  EXPECT_EQ(0, sem_getvalue(&g_sem, &value));
  EXPECT_EQ(1, value);
  sem_destroy(&g_sem);
}

// ---- pthread_testcancel, and what is not a cancellation point -----------------------------------------

TEST(Testcancel, DoesNothingUntilCancelledThenActs) {
  static std::atomic<int> laps{0};
  static std::atomic<bool> cancelled{false};
  laps = 0;
  cancelled = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    for (;;) {
      bool was_cancelled = cancelled.load();
      pthread_testcancel();
      if (was_cancelled) return reinterpret_cast<void*>(0xbad);  // testcancel did not act
      laps.fetch_add(1);
      sched_yield();
    }
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return laps.load() > 100; }));
  EXPECT_EQ(0, pthread_cancel(t));
  cancelled = true;  // after: a lap that sees it must find the cancel pending
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
}

// A mutex wait is not a cancellation point: the cancel does not end it, and acts at the next
// cancellation point after the thread got the mutex.
TEST(NotACancellationPoint, MutexLockIsNotEndedByACancel) {
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static std::atomic<int> stage{0};
  stage = 0;
  ASSERT_EQ(0, pthread_mutex_lock(&mu));
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    stage = 1;
    pthread_mutex_lock(&mu);
    stage = 2;
    pthread_mutex_unlock(&mu);
    pthread_testcancel();
    stage = 3;
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return stage.load() == 1; }));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  usleep(50000);
  EXPECT_EQ(1, stage.load()) << "a cancel ended a mutex wait";
  ASSERT_EQ(0, pthread_mutex_unlock(&mu));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ(2, stage.load());
}

// ---- state and type ------------------------------------------------------------------------------

TEST(CancelState, DefaultsErrorsAndOldValues) {
  RunInThread([] {
    int old = -1;
    EXPECT_EQ(EINVAL, pthread_setcancelstate(12345, &old));
    EXPECT_EQ(-1, old);
    EXPECT_EQ(EINVAL, pthread_setcanceltype(12345, &old));
    EXPECT_EQ(-1, old);
    EXPECT_EQ(0, pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old));
    EXPECT_EQ(PTHREAD_CANCEL_ENABLE, old);
    EXPECT_EQ(0, pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old));
    EXPECT_EQ(PTHREAD_CANCEL_DISABLE, old);
    EXPECT_EQ(0, pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr));  // glibc allows NULL
    EXPECT_EQ(0, pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old));
    EXPECT_EQ(PTHREAD_CANCEL_DEFERRED, old);
    EXPECT_EQ(0, pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old));
    EXPECT_EQ(PTHREAD_CANCEL_ASYNCHRONOUS, old);
    EXPECT_EQ(0, pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, nullptr));
  });
  // A new thread starts enabled and deferred whatever its creator set.
  int old;
  ASSERT_EQ(0, pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old));
  RunInThread([] {
    int state = -1;
    EXPECT_EQ(0, pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &state));
    EXPECT_EQ(PTHREAD_CANCEL_ENABLE, state);
  });
  ASSERT_EQ(0, pthread_setcancelstate(old, nullptr));
}

// Disabled: cancellation points (even a blocked one, which the cancel must not end) carry on.
// Enabling does not act on a deferred cancel; the next cancellation point does.
TEST(CancelState, DisabledDefersUntilEnabledAndACancellationPoint) {
  Events events;
  g_events = &events;
  static std::atomic<bool> blocked{false};
  blocked = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    int old = -1;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    blocked = true;
    const int64_t start = NowNs();
    usleep(200000);  // cancelled meanwhile; it must sleep the whole time
    if (NowNs() - start >= 190 * kNsPerMs) g_events->Add("slept through the cancel");
    pthread_testcancel();
    sleep(0);
    g_events->Add("cancellation points passed");
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    if (old == PTHREAD_CANCEL_DISABLE) g_events->Add("enabled");
    pthread_testcancel();
    g_events->Add("unreachable");
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return blocked.load(); }));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"slept through the cancel", "cancellation points passed", "enabled"}),
            events.Get());
}

// Asynchronous type: glibc acts at once when a cancel becomes due (here: enabling with one pending).
TEST(CancelType, AsynchronousActsAtOnceWhenEnabledWithACancelPending) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
    pthread_cancel(pthread_self());
    int old = -1;
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);  // disabled: nothing yet
    if (old == PTHREAD_CANCEL_DEFERRED) g_events->Add("async, still disabled");
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);  // acts here
    g_events->Add("unreachable");
    return nullptr;
  }, nullptr));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ(std::vector<std::string>{"async, still disabled"}, events.Get());
}

// Asynchronous type and a pending cancel of the caller itself: pthread_cancel acts at once.
TEST(CancelType, AsynchronousSelfCancelActsInPthreadCancel) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
    pthread_cleanup_push(Record, const_cast<char*>("cleanup"));
    pthread_cancel(pthread_self());
    g_events->Add("unreachable");
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ(std::vector<std::string>{"cleanup"}, events.Get());
}

// An asynchronous thread that is busy (here: yielding and re-asserting its type, both
// async-cancel-safe) is cancelled. Natively the signal stops it anywhere; under vthread, without
// preemption, at its next call into the runtime.
TEST(CancelType, AsynchronousBusyThreadIsCancelled) {
  static std::atomic<bool> running{false};
  running = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
    running = true;
    for (;;) {
      pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
      sched_yield();
    }
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return running.load(); }));
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
}

// An asynchronous thread that only computes, never calling into libc or the runtime, is
// cancelled: natively by glibc's SIGCANCEL, under vthread at a preemption safe point (1 carrier:
// the main thread only runs again because the spinner is preempted).
TEST(CancelType, AsynchronousThreadThatOnlyComputesIsCancelled) {
  static std::atomic<bool> running{false};
  static volatile unsigned long spins = 0;
  running = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, nullptr);
    running = true;
    for (;;) spins = spins + 1;
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return running.load(); }));
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
}

// ---- what acting on a cancel does ----------------------------------------------------------------

TEST(Acting, CleanupHandlersRunLastPushedFirstAndPoppedOnesDoNot) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_cleanup_push(Record, const_cast<char*>("first pushed"));
    pthread_cleanup_push(Record, const_cast<char*>("second pushed"));
    pthread_cleanup_push(Record, const_cast<char*>("popped without running"));
    pthread_cleanup_pop(0);
    pthread_cleanup_push(Record, const_cast<char*>("third pushed"));
    sleep(kLongSeconds);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"third pushed", "second pushed", "first pushed"}), events.Get());
}

struct Noisy {
  explicit Noisy(const char* n) : name(n) {}
  ~Noisy() { g_events->Add(std::string("~") + name); }
  const char* name;
};

void* CxxUnwindBody(void*) {
  Noisy outer("outer");
  try {
    Noisy middle("middle");
    try {
      Noisy inner("inner");
      sleep(kLongSeconds);
      g_events->Add("unreachable");
    } catch (abi::__forced_unwind&) {
      g_events->Add("caught abi::__forced_unwind");
      throw;
    }
  } catch (...) {
    g_events->Add("caught ...");
    throw;
  }
  g_events->Add("unreachable");
  return nullptr;
}

TEST(Acting, CxxDestructorsRunAndTheForcedUnwindCanBeCaughtAndRethrown) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, CxxUnwindBody, nullptr));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"~inner", "caught abi::__forced_unwind", "~middle", "caught ...", "~outer"}),
            events.Get());
}

// Thread-specific-data destructors run after the cleanup handlers, as on pthread_exit.
TEST(Acting, KeyDestructorsRunAfterCleanupHandlers) {
  Events events;
  g_events = &events;
  static pthread_key_t key;
  ASSERT_EQ(0, pthread_key_create(&key, [](void*) { g_events->Add("key destructor"); }));
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setspecific(key, &key);
    pthread_cleanup_push(Record, const_cast<char*>("cleanup"));
    sleep(kLongSeconds);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"cleanup", "key destructor"}), events.Get());
  pthread_key_delete(key);
}

// Cancellation points in a cleanup handler do not cancel again (the thread is already exiting).
TEST(Acting, CancellationPointsInCleanupHandlersDoNotActAgain) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_cleanup_push([](void*) {
      g_events->Add("outer cleanup");
    }, nullptr);
    pthread_cleanup_push([](void*) {
      usleep(1000);
      pthread_testcancel();
      g_events->Add("inner cleanup finished");
    }, nullptr);
    sleep(kLongSeconds);
    pthread_cleanup_pop(0);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"inner cleanup finished", "outer cleanup"}), events.Get());
}

// ---- whom to cancel ------------------------------------------------------------------------------

TEST(Target, CancelOfAnExitedUnjoinedThreadReturnsZeroAndKeepsItsValue) {
  static std::atomic<bool> done{false};
  done = false;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    done = true;
    return reinterpret_cast<void*>(42);
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return done.load(); }));
  usleep(20000);  // let it finish exiting
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_EQ(0, pthread_cancel(t));  // twice is fine too
  EXPECT_EQ(reinterpret_cast<void*>(42), JoinWithin(t));
}

TEST(Target, CancelSelfIsDeferredToTheNextCancellationPoint) {
  Events events;
  g_events = &events;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    if (pthread_cancel(pthread_self()) == 0) g_events->Add("cancel returned");
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);  // not a cancellation point
    pthread_mutex_unlock(&mu);
    g_events->Add("still running");
    pthread_testcancel();
    g_events->Add("unreachable");
    return nullptr;
  }, nullptr));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(t));
  EXPECT_EQ((std::vector<std::string>{"cancel returned", "still running"}), events.Get());
}

TEST(Target, DetachedThreadRunsItsCleanupWhenCancelled) {
  static std::atomic<bool> sleeping{false}, cleaned{false};
  sleeping = false;
  cleaned = false;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, &attr, [](void*) -> void* {
    pthread_cleanup_push([](void*) { cleaned = true; }, nullptr);
    sleeping = true;
    sleep(kLongSeconds);
    pthread_cleanup_pop(0);
    return nullptr;
  }, nullptr));
  pthread_attr_destroy(&attr);
  ASSERT_TRUE(PollUntil([] { return sleeping.load(); }));
  usleep(20000);
  EXPECT_EQ(0, pthread_cancel(t));
  EXPECT_TRUE(PollUntil([] { return cleaned.load(); }, kJoinLimitMs));
}

// Once joined, a handle names nothing. glibc reads the (possibly reused) descriptor, which is
// undefined behaviour to rely on, so only the shim's ESRCH is checked.
TEST(Target, JoinedHandleIsEsrchUnderVthread) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr));
  ASSERT_EQ(0, pthread_join(t, nullptr));
  if (!ExpectFibers()) GTEST_SKIP() << "natively undefined";
  EXPECT_EQ(ESRCH, pthread_cancel(t));
}

// ---- races ---------------------------------------------------------------------------------------

// Threads that keep entering and leaving cancellation points (short sleeps, short timed condition
// and semaphore waits that time out), cancelled at random moments: every cancel is acted on (a
// cancel that arrives just as a thread is about to park must not be lost).
TEST(Races, CancelsArrivingAtRandomMomentsAreNeverLost) {
  constexpr int kThreads = 64;
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  static sem_t sem;
  ASSERT_EQ(0, sem_init(&sem, 0, 0));
  std::vector<pthread_t> threads(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_EQ(0, pthread_create(&threads[i], nullptr, [](void* arg) -> void* {
      const int kind = static_cast<int>(reinterpret_cast<intptr_t>(arg)) % 4;
      for (unsigned lap = 0;; ++lap) {
        switch (kind) {
          case 0:
            usleep(lap % 3 * 50);
            break;
          case 1: {
            pthread_mutex_lock(&mu);
            pthread_cleanup_push([](void*) { pthread_mutex_unlock(&mu); }, nullptr);
            timespec deadline = DeadlineIn((lap % 3) * 100000);
            pthread_cond_timedwait(&cv, &mu, &deadline);
            pthread_cleanup_pop(1);
            break;
          }
          case 2: {
            timespec deadline = DeadlineIn((lap % 3) * 100000);
            sem_timedwait(&sem, &deadline);
            break;
          }
          case 3:
            sched_yield();
            pthread_testcancel();
            break;
        }
      }
      return nullptr;
    }, reinterpret_cast<void*>(static_cast<intptr_t>(i))));
  }
  std::mt19937 rng(12345);
  for (int i = 0; i < kThreads; ++i) {
    usleep(rng() % 500);
    EXPECT_EQ(0, pthread_cancel(threads[i]));
  }
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(threads[i])) << i;
  sem_destroy(&sem);
}

// ---- pthread_once --------------------------------------------------------------------------------

// The initializer's thread is cancelled inside it: the control goes back to "not run", and a
// caller that was waiting for it runs its own initializer instead.
TEST(OnceAndCancel, ACancelledInitializerIsRunByTheNextCaller) {
  static pthread_once_t once;
  static std::atomic<bool> in_init, second_calling;
  static std::atomic<int> runs;
  once = PTHREAD_ONCE_INIT;  // (again, for --gtest_repeat)
  in_init = false;
  second_calling = false;
  runs = 0;
  pthread_t first, second;
  ASSERT_EQ(0, pthread_create(&first, nullptr, [](void*) -> void* {
    pthread_once(&once, [] {
      runs++;
      in_init = true;
      sleep(kLongSeconds);  // cancelled here
    });
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return in_init.load(); }));
  ASSERT_EQ(0, pthread_create(&second, nullptr, [](void*) -> void* {
    second_calling = true;
    pthread_once(&once, [] { runs += 10; });
    return reinterpret_cast<void*>(2);
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return second_calling.load(); }));
  usleep(20000);  // the second caller waits for the first's initializer
  EXPECT_EQ(1, runs.load());
  EXPECT_EQ(0, pthread_cancel(first));
  EXPECT_EQ(PTHREAD_CANCELED, JoinWithin(first));
  EXPECT_EQ(reinterpret_cast<void*>(2), JoinWithin(second));
  EXPECT_EQ(11, runs.load());
  EXPECT_EQ(0, pthread_once(&once, [] { runs += 100; }));  // done now
  EXPECT_EQ(11, runs.load());
}

TEST(OnceAndCancel, AnInitializerThatCallsPthreadExitIsRunAgainLater) {
  static pthread_once_t once;
  static std::atomic<int> runs;
  once = PTHREAD_ONCE_INIT;
  runs = 0;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_once(&once, [] {
      runs++;
      pthread_exit(reinterpret_cast<void*>(7));
    });
    return nullptr;
  }, nullptr));
  EXPECT_EQ(reinterpret_cast<void*>(7), JoinWithin(t));
  RunInThread([] { EXPECT_EQ(0, pthread_once(&once, [] { runs += 10; })); });
  EXPECT_EQ(11, runs.load());
}

// A C++ exception leaves the initializer: it reaches pthread_once's caller, the control is reset,
// and the waiting caller runs its initializer.
TEST(OnceAndCancel, AnInitializerThatThrowsIsRunAgainByAWaitingCaller) {
  static pthread_once_t once;
  static std::atomic<bool> in_init, second_calling;
  static std::atomic<int> runs;
  once = PTHREAD_ONCE_INIT;  // (again, for --gtest_repeat)
  in_init = false;
  second_calling = false;
  runs = 0;
  pthread_t first, second;
  ASSERT_EQ(0, pthread_create(&first, nullptr, [](void*) -> void* {
    try {
      pthread_once(&once, [] {
        runs++;
        in_init = true;
        while (!second_calling.load()) usleep(1000);
        usleep(20000);
        throw std::runtime_error("initializer failed");
      });
    } catch (const std::runtime_error&) {
      return reinterpret_cast<void*>(1);
    }
    return nullptr;
  }, nullptr));
  ASSERT_TRUE(PollUntil([] { return in_init.load(); }));
  ASSERT_EQ(0, pthread_create(&second, nullptr, [](void*) -> void* {
    second_calling = true;
    pthread_once(&once, [] { runs += 10; });
    return reinterpret_cast<void*>(2);
  }, nullptr));
  EXPECT_EQ(reinterpret_cast<void*>(1), JoinWithin(first));
  EXPECT_EQ(reinterpret_cast<void*>(2), JoinWithin(second));
  EXPECT_EQ(11, runs.load());
}

// The same thread calls again after catching: the initializer runs again (and this time succeeds).
TEST(OnceAndCancel, TheThrowingThreadItselfCanRetry) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  static int runs = 0;
  RunHereAndInThread([] {
    once = PTHREAD_ONCE_INIT;
    runs = 0;
    EXPECT_THROW(pthread_once(&once, [] {
      runs++;
      throw std::runtime_error("first try");
    }), std::runtime_error);
    EXPECT_EQ(0, pthread_once(&once, [] { runs += 10; }));
    EXPECT_EQ(0, pthread_once(&once, [] { runs += 100; }));
    EXPECT_EQ(11, runs);
  });
}

}  // namespace
}  // namespace vthread_test
