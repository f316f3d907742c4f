// The signal scenario: a sender thread pthread_kills the round's other threads while they compute,
// sleep, lock, wait, yield and block and unblock the signal. Invariants: every signal sent to a
// thread runs its handler in that thread (within 5 s; the latency column is the time from
// pthread_kill to the handler), never while the thread blocks it; a signal a thread keeps blocked
// and waits for with sigtimedwait reaches that call and no handler; sleeps cut short by a handler
// report EINTR and the time left, and never end early in total.
//
// Only thread-directed signals, so the scenarios running beside this one in the process never see
// one: SIGUSR1 (handled, not SA_RESTART, so that it interrupts) and SIGUSR2 (always blocked by the
// receivers and taken with sigtimedwait; its handler only counts mistakes).

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "tools/stress/harness.h"

namespace stress {
namespace {

// One receiving thread, as the sender and its own handler see it.
struct Receiver {
  std::atomic<pthread_t> thread{};
  std::atomic<bool> ready{false};
  std::atomic<uint64_t> handled{0};     // SIGUSR1 handlers run in this thread
  std::atomic<uint64_t> usr2_taken{0};  // SIGUSR2 instances sigtimedwait returned
  // Set (by the thread itself) only while it blocks SIGUSR1: after blocking, cleared before
  // unblocking, so a handler that finds it set ran while the signal was blocked.
  std::atomic<bool> blocking{false};
  const char* doing = "starting";
};

thread_local Receiver* t_receiver = nullptr;
std::atomic<uint64_t> g_stray_usr1{0};       // ran in a thread that is no receiver
std::atomic<uint64_t> g_usr1_while_blocked{0};
std::atomic<uint64_t> g_usr2_handled{0};     // SIGUSR2 is never unblocked where it is sent

void OnUsr1(int) {
  int saved_errno = errno;
  Receiver* self = t_receiver;
  if (!self) {
    g_stray_usr1.fetch_add(1);
  } else if (self->blocking.load(std::memory_order_relaxed)) {
    g_usr1_while_blocked.fetch_add(1);
  } else {
    self->handled.fetch_add(1, std::memory_order_release);
  }
  errno = saved_errno;
}

void OnUsr2(int) { g_usr2_handled.fetch_add(1); }

void InstallHandlers() {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, [] {
    struct sigaction action = {};
    sigemptyset(&action.sa_mask);
    action.sa_handler = OnUsr1;
    sigaction(SIGUSR1, &action, nullptr);
    action.sa_handler = OnUsr2;
    sigaction(SIGUSR2, &action, nullptr);
  });
}

sigset_t Only(int sig) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  return set;
}

struct Shared {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
  sem_t sem;
  std::atomic<bool> stop{false};
};

void Compute(int64_t ns) {
  volatile uint64_t sink = 0;
  for (int64_t end = Now() + ns; Now() < end;) sink = sink + 1;
}

// Sleeps `ns` in total across handlers: each EINTR must come with the time left.
void SleepThroughHandlers(Round& round, int64_t ns) {
  const int64_t start = Now();
  timespec left = ToTimespec(ns);
  while (nanosleep(&left, &left) != 0) {
    if (errno != EINTR) {
      round.Fail("nanosleep: %s", strerror(errno));
      return;
    }
  }
  if (Now() - start < ns) {
    round.Fail("nanosleep for %lld ns, interrupted and resumed, ended %lld ns early",
               static_cast<long long>(ns), static_cast<long long>(ns - (Now() - start)));
  }
}

void TimedWaitForUsr2(Round& round, Receiver& self, int64_t ns) {
  sigset_t usr2 = Only(SIGUSR2);
  timespec timeout = ToTimespec(ns);
  int sig = sigtimedwait(&usr2, nullptr, &timeout);
  if (sig == SIGUSR2) {
    self.usr2_taken.fetch_add(1, std::memory_order_release);
  } else if (sig != -1 || (errno != EAGAIN && errno != EINTR)) {
    round.Fail("sigtimedwait: returned %d, %s", sig, strerror(errno));
  }
}

void ReceiverOp(Round& round, Rng& r, Shared& shared, Receiver& self) {
  const int64_t ns = static_cast<int64_t>(r.Below(1000)) * kNsPerUs;
  switch (r.Below(9)) {
    case 0:
      self.doing = "computing";
      Compute(ns / 2);
      break;
    case 1:
      self.doing = "in nanosleep";
      SleepThroughHandlers(round, ns);
      break;
    case 2:
      self.doing = "locking a mutex";
      pthread_mutex_lock(&shared.mutex);
      SleepNs(ns / 10);
      pthread_mutex_unlock(&shared.mutex);
      break;
    case 3: {
      self.doing = "in a condition wait";
      timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + ns);
      pthread_mutex_lock(&shared.mutex);
      int rc = pthread_cond_timedwait(&shared.cond, &shared.mutex, &deadline);
      pthread_mutex_unlock(&shared.mutex);
      if (rc != 0 && rc != ETIMEDOUT) round.Fail("pthread_cond_timedwait: %s", strerror(rc));
      break;
    }
    case 4:
      self.doing = "taking an rwlock";
      if (r.OneIn(2)) {
        pthread_rwlock_wrlock(&shared.rwlock);
      } else {
        pthread_rwlock_rdlock(&shared.rwlock);
      }
      SleepNs(ns / 10);
      pthread_rwlock_unlock(&shared.rwlock);
      break;
    case 5: {
      self.doing = "in sem_timedwait";
      timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + ns);
      if (sem_timedwait(&shared.sem, &deadline) != 0 && errno != ETIMEDOUT && errno != EINTR) {
        round.Fail("sem_timedwait: %s", strerror(errno));
      }
      break;
    }
    case 6: {
      self.doing = "blocking SIGUSR1";
      sigset_t usr1 = Only(SIGUSR1);
      pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
      self.blocking.store(true, std::memory_order_relaxed);
      if (r.OneIn(2)) {
        SleepNs(ns / 2);
      } else {
        Compute(ns / 4);
      }
      self.blocking.store(false, std::memory_order_relaxed);
      pthread_sigmask(SIG_UNBLOCK, &usr1, nullptr);
      break;
    }
    case 7:
      self.doing = "in sigtimedwait for SIGUSR2";
      TimedWaitForUsr2(round, self, ns);
      break;
    default:
      self.doing = "yielding";
      sched_yield();
      break;
  }
  round.Op();
}

// Sends one signal to `to` and waits for it to arrive; false (after a failure) if it did not.
bool SendAndAwait(Round& round, Rng& r, Receiver& to, int index) {
  const bool usr2 = r.OneIn(4);
  std::atomic<uint64_t>& arrived = usr2 ? to.usr2_taken : to.handled;
  const uint64_t before = arrived.load(std::memory_order_acquire);
  const int64_t sent = Now();
  if (int rc = pthread_kill(to.thread.load(), usr2 ? SIGUSR2 : SIGUSR1); rc != 0) {
    round.Fail("pthread_kill: %s", strerror(rc));
    return false;
  }
  while (arrived.load(std::memory_order_acquire) == before) {
    if (Now() - sent > 5 * kNsPerSec) {
      round.Fail("%s sent to receiver %d did not arrive in 5 s (it was %s)", usr2 ? "SIGUSR2" : "SIGUSR1", index,
                 to.doing);
      return false;
    }
    SleepNs(20 * kNsPerUs);
  }
  if (!usr2) round.Latency(Now() - sent);
  round.Op();
  return true;
}

void SignalRound(Round& round) {
  InstallHandlers();
  Rng rng(round.seed());
  const int receivers = rng.Range(1, std::max(1, round.max_threads() - 1));
  const int sends = rng.Range(20, 200);
  Shared shared;
  sem_init(&shared.sem, 0, 0);
  std::vector<std::unique_ptr<Receiver>> states;
  for (int i = 0; i < receivers; ++i) states.push_back(std::make_unique<Receiver>());
  const uint64_t stray = g_stray_usr1.load(), while_blocked = g_usr1_while_blocked.load();
  const uint64_t usr2_handled = g_usr2_handled.load();
  RunThreads(round, receivers + 1, [&](int self) {
    Rng r(rng.Fork(self));
    if (self == receivers) {  // the sender
      for (Receiver* waiting = nullptr;;) {
        waiting = nullptr;
        for (auto& s : states) {
          if (!s->ready.load(std::memory_order_acquire)) waiting = s.get();
        }
        if (!waiting) break;
        SleepNs(50 * kNsPerUs);
      }
      for (int k = 0; k < sends && !round.Stopping(); ++k) {
        int to = static_cast<int>(r.Below(static_cast<uint64_t>(receivers)));
        if (!SendAndAwait(round, r, *states[static_cast<size_t>(to)], to)) break;
        if (r.OneIn(8)) sem_post(&shared.sem);
        if (r.OneIn(8)) pthread_cond_broadcast(&shared.cond);
      }
      shared.stop.store(true, std::memory_order_release);
      return;
    }
    Receiver& me = *states[static_cast<size_t>(self)];
    t_receiver = &me;
    sigset_t usr2 = Only(SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, nullptr);
    me.thread.store(pthread_self());
    me.ready.store(true, std::memory_order_release);
    while (!shared.stop.load(std::memory_order_acquire)) ReceiverOp(round, r, shared, me);
    me.doing = "done";
    // Leaves no SIGUSR2 behind for the next thread to run here (it would be a fiber's, not the
    // carrier's, under vthread; natively the thread is gone with it).
    timespec zero = {0, 0};
    while (sigtimedwait(&usr2, nullptr, &zero) == SIGUSR2) me.usr2_taken.fetch_add(1);
    t_receiver = nullptr;
  });
  sem_destroy(&shared.sem);
  if (uint64_t n = g_stray_usr1.load() - stray) {
    round.Fail("%llu SIGUSR1 handlers ran in no receiver", static_cast<unsigned long long>(n));
  }
  if (uint64_t n = g_usr1_while_blocked.load() - while_blocked) {
    round.Fail("%llu SIGUSR1 handlers ran while their thread blocked it", static_cast<unsigned long long>(n));
  }
  if (uint64_t n = g_usr2_handled.load() - usr2_handled) {
    round.Fail("%llu SIGUSR2 handlers ran though every receiver blocks it", static_cast<unsigned long long>(n));
  }
}

Register signal_scenario({"signal",
                          "pthread_kill to threads computing, sleeping, locking, waiting, yielding and "
                          "blocking the signal: each handler runs in its thread, never while blocked; "
                          "a blocked signal reaches sigtimedwait; interrupted sleeps never end early",
                          "pthread_kill to the handler running", "", SignalRound});

}  // namespace
}  // namespace stress
