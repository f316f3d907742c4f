// Scenarios on threads themselves: create/join/detach churn, per-thread errno and thread_local
// state across blocking calls, cancellation at random points, fork from busy threads, and
// CPU-bound threads that need preemption.

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <vector>

#include "tools/stress/harness.h"

namespace stress {
namespace {

// A blocking or yielding call chosen at random: each may park the thread and resume it on another
// carrier under vthread, which is what the per-thread state checks are about.
void BlockSomehow(Rng& r, pthread_mutex_t* shared_mutex) {
  switch (r.Below(5)) {
    case 0:
      sched_yield();
      break;
    case 1:
      SleepNs(static_cast<int64_t>(r.Below(50)) * kNsPerUs);
      break;
    case 2:
      pthread_mutex_lock(shared_mutex);
      sched_yield();
      pthread_mutex_unlock(shared_mutex);
      break;
    case 3: {
      pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
      pthread_mutex_lock(shared_mutex);
      timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + static_cast<int64_t>(r.Below(30)) * kNsPerUs);
      pthread_cond_timedwait(&cond, shared_mutex, &deadline);
      pthread_mutex_unlock(shared_mutex);
      break;
    }
    default:
      SleepNs(0);
      break;
  }
}

// --- churn ----------------------------------------------------------------------------------------

struct ChurnArg {
  int depth;
  uint64_t value;
  std::atomic<int>* detached_live;
};

void* ChurnThread(void* p) {
  ChurnArg* arg = static_cast<ChurnArg*>(p);
  uint64_t result = arg->value * 3 + 1;
  if (arg->depth > 0) {
    // A child of a child: created and joined from a thread that is not the round's driver.
    ChurnArg child{arg->depth - 1, arg->value + 1, nullptr};
    pthread_t t;
    if (pthread_create(&t, nullptr, ChurnThread, &child) == 0) {
      void* ret;
      pthread_join(t, &ret);
      if (reinterpret_cast<uintptr_t>(ret) != (arg->value + 1) * 3 + 1) result = 0;
    } else {
      result = 0;
    }
  }
  if (arg->detached_live != nullptr) {
    arg->detached_live->fetch_sub(1);
    delete arg;
  }
  return reinterpret_cast<void*>(static_cast<uintptr_t>(result));
}

void ChurnRound(Round& round) {
  Rng rng(round.seed());
  const int batches = rng.Range(1, 10);
  std::atomic<int> detached_live{0};
  for (int b = 0; b < batches && !round.Stopping(); ++b) {
    const int n = rng.Range(1, round.max_threads());
    std::vector<pthread_t> joinable;
    std::vector<std::unique_ptr<ChurnArg>> args;
    std::vector<int64_t> started;
    for (int i = 0; i < n; ++i) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      static constexpr size_t kStacks[] = {0, 16 * 1024, 64 * 1024, 1024 * 1024};
      if (size_t stack = kStacks[rng.Below(4)]; stack != 0) pthread_attr_setstacksize(&attr, stack);
      if (rng.OneIn(3)) pthread_attr_setguardsize(&attr, rng.Below(3) * 4096);
      const int kind = static_cast<int>(rng.Below(4));  // 0-1 joinable, 2 detached by attr, 3 by call
      const int depth = rng.OneIn(4) ? rng.Range(1, 3) : 0;
      if (kind == 2) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
      ChurnArg* arg = new ChurnArg{depth, rng.Next() >> 8, kind >= 2 ? &detached_live : nullptr};
      if (kind >= 2) detached_live.fetch_add(1);
      pthread_t t;
      int rc = pthread_create(&t, &attr, ChurnThread, arg);
      pthread_attr_destroy(&attr);
      if (rc != 0) {
        round.Fail("pthread_create (kind %d): %s", kind, strerror(rc));
        if (kind >= 2) detached_live.fetch_sub(1);
        delete arg;
        continue;
      }
      if (kind == 3) {
        // The thread owns arg and may already be gone: detaching an exited joinable thread must
        // still work (it releases it).
        if ((rc = pthread_detach(t)) != 0) round.Fail("pthread_detach: %s", strerror(rc));
      } else if (kind < 2) {
        joinable.push_back(t);
        args.emplace_back(arg);
        started.push_back(Now());
      }
      round.Op();
    }
    for (size_t i = 0; i < joinable.size(); ++i) {
      void* ret = nullptr;
      int rc;
      switch (rng.Below(3)) {
        case 0:
          rc = pthread_join(joinable[i], &ret);
          break;
        case 1:
          while ((rc = pthread_tryjoin_np(joinable[i], &ret)) == EBUSY) sched_yield();
          break;
        default:
          for (;;) {
            timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + 100 * kNsPerUs);
            if ((rc = pthread_timedjoin_np(joinable[i], &ret, &deadline)) != ETIMEDOUT) break;
          }
      }
      round.Latency(Now() - started[i]);
      if (rc != 0) {
        round.Fail("join: %s", strerror(rc));
      } else if (reinterpret_cast<uintptr_t>(ret) != args[i]->value * 3 + 1) {
        round.Fail("thread (depth %d) returned %#lx, expected %#lx", args[i]->depth,
                   static_cast<unsigned long>(reinterpret_cast<uintptr_t>(ret)),
                   static_cast<unsigned long>(args[i]->value * 3 + 1));
      }
    }
  }
  // Detached threads end on their own; wait for them so the next round starts clean.
  const int64_t give_up = Now() + 10 * kNsPerSec;
  while (detached_live.load() != 0 && Now() < give_up) SleepNs(100 * kNsPerUs);
  if (int live = detached_live.load(); live != 0) {
    round.Fail("%d detached threads did not finish within 10 s", live);
  }
}

Register churn_scenario({"churn",
                         "create/join/detach churn with random stack and guard sizes, detach by "
                         "attribute or call, nested creation, join/tryjoin/timedjoin: return values "
                         "intact, detached threads finish",
                         "create until joined", "", ChurnRound});

// --- errno ----------------------------------------------------------------------------------------

void ErrnoRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  const int ops = rng.Range(100, 1000);
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    int* const where = &errno;
    for (int op = 0; op < ops && !round.Stopping(); ++op) {
      // Either a value only this thread uses, or a real error from a failing call.
      int want;
      if (r.OneIn(2)) {
        want = 1000 + self * 100000 + op;
        errno = want;
      } else {
        close(-1);
        want = EBADF;
      }
      const int64_t start = Now();
      BlockSomehow(r, &mutex);
      round.Latency(Now() - start);
      if (errno != want) {
        round.Fail("thread %d: errno %d after a blocking call, expected %d", self, errno, want);
      }
      if (&errno != where) round.Fail("thread %d: &errno moved", self);
      round.Op();
    }
  });
}

Register errno_scenario({"errno",
                         "each thread sets errno (its own value or EBADF from a failing call), "
                         "blocks or yields, and finds it unchanged",
                         "one blocking call", "", ErrnoRound});

// --- tls ------------------------------------------------------------------------------------------

std::atomic<int> tls_destructed{0};

struct TlsState {
  uint64_t words[8] = {};
  bool armed = false;
  ~TlsState() {
    if (armed) tls_destructed.fetch_add(1);
  }
};

thread_local TlsState tls_state;
__thread uint64_t tls_plain;

void TlsRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  const int ops = rng.Range(50, 500);
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  std::vector<const void*> addresses(threads, nullptr);
  tls_destructed.store(0);
  const int ran = RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    TlsState& mine = tls_state;
    addresses[self] = &mine;
    mine.armed = true;
    for (int op = 0; op < ops && !round.Stopping(); ++op) {
      const uint64_t tag = (uint64_t{static_cast<uint32_t>(self)} << 32) | static_cast<uint32_t>(op);
      for (int i = 0; i < 8; ++i) mine.words[i] = tag + i;
      tls_plain = ~tag;
      const int64_t start = Now();
      BlockSomehow(r, &mutex);
      round.Latency(Now() - start);
      if (&tls_state != &mine) round.Fail("thread %d: thread_local moved", self);
      for (int i = 0; i < 8; ++i) {
        if (tls_state.words[i] != tag + i) {
          round.Fail("thread %d: thread_local word %d is %#llx, expected %#llx", self, i,
                     static_cast<unsigned long long>(tls_state.words[i]),
                     static_cast<unsigned long long>(tag + i));
          break;
        }
      }
      if (tls_plain != ~tag) round.Fail("thread %d: __thread value changed", self);
      round.Op();
    }
  });
  std::set<const void*> distinct(addresses.begin(), addresses.end());
  if (static_cast<int>(distinct.size()) != ran) {
    round.Fail("%d threads had %zu distinct thread_local objects", ran, distinct.size());
  }
  if (tls_destructed.load() != ran) {
    round.Fail("%d thread_local destructors ran for %d finished threads", tls_destructed.load(), ran);
  }
}

Register tls_scenario({"tls",
                       "thread_local and __thread values and addresses survive blocking and "
                       "yields; one thread_local destructor per thread, before join returns",
                       "one blocking call", "", TlsRound});

// --- cancel ---------------------------------------------------------------------------------------

std::atomic<int> cancel_destructors{0};

struct CountsDestruction {
  ~CountsDestruction() { cancel_destructors.fetch_add(1); }
};

// One cancellable worker. It parks at a cancellation point until `release`, then returns 1.
struct CancelTarget {
  int kind;  // see CancelWorker
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  sem_t sem;
  pthread_t helper;  // the thread a kind-3 worker joins
  std::atomic<bool> release{false};
  std::atomic<bool> cleanup_ran{false};
  std::atomic<bool> disabled_section_done{false};
  bool cancel_sent = false;
  int64_t cancel_ns = 0;
  pthread_t thread;
};

void CleanupUnlock(void* p) {
  auto* t = static_cast<CancelTarget*>(p);
  t->cleanup_ran.store(true);
  pthread_mutex_unlock(&t->mutex);
}

void CleanupMark(void* p) { static_cast<CancelTarget*>(p)->cleanup_ran.store(true); }

void* SleepUntilReleased(void* p) {
  auto* t = static_cast<CancelTarget*>(p);
  while (!t->release.load()) SleepNs(200 * kNsPerUs);
  return nullptr;
}

void* CancelWorker(void* p) {
  auto* t = static_cast<CancelTarget*>(p);
  CountsDestruction counted;
  if (t->kind == 0) {  // condition wait; the cleanup handler runs with the mutex held again
    pthread_mutex_lock(&t->mutex);
    pthread_cleanup_push(CleanupUnlock, t);
    while (!t->release.load()) pthread_cond_wait(&t->cond, &t->mutex);
    pthread_cleanup_pop(0);
    pthread_mutex_unlock(&t->mutex);
    return reinterpret_cast<void*>(1);
  }
  pthread_cleanup_push(CleanupMark, t);
  switch (t->kind) {
    case 1:  // sleeps
      while (!t->release.load()) SleepNs(300 * kNsPerUs);
      break;
    case 2:  // semaphore
      while (!t->release.load()) sem_wait(&t->sem);
      break;
    case 3:  // join of a thread that runs until released
      pthread_join(t->helper, nullptr);
      break;
    case 4:  // a disabled section (sleeps inside must not act on a cancel), then testcancel polling
      pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
      SleepNs(100 * kNsPerUs);
      sched_yield();
      SleepNs(100 * kNsPerUs);
      t->disabled_section_done.store(true);
      pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
      while (!t->release.load()) {
        pthread_testcancel();
        sched_yield();
      }
      break;
  }
  pthread_cleanup_pop(0);
  return reinterpret_cast<void*>(1);
}

void CancelRound(Round& round) {
  Rng rng(round.seed());
  const int n = rng.Range(1, round.max_threads());
  std::vector<std::unique_ptr<CancelTarget>> targets;
  cancel_destructors.store(0);
  for (int i = 0; i < n; ++i) {
    auto t = std::make_unique<CancelTarget>();
    t->kind = static_cast<int>(rng.Below(5));
    sem_init(&t->sem, 0, 0);
    if (t->kind == 3 && pthread_create(&t->helper, nullptr, SleepUntilReleased, t.get()) != 0) {
      t->kind = 1;
    }
    if (int rc = pthread_create(&t->thread, nullptr, CancelWorker, t.get()); rc != 0) {
      round.Fail("pthread_create: %s", strerror(rc));
      if (t->kind == 3) {
        t->release.store(true);
        pthread_join(t->helper, nullptr);
      }
      continue;
    }
    targets.push_back(std::move(t));
  }
  // Cancel most of them at random moments: before they reach their cancellation point, while
  // parked there, or racing the release below.
  for (auto& t : targets) {
    if (rng.OneIn(4)) continue;
    if (rng.OneIn(2)) SleepNs(static_cast<int64_t>(rng.Below(500)) * kNsPerUs);
    t->cancel_ns = Now();
    t->cancel_sent = true;
    if (int rc = pthread_cancel(t->thread); rc != 0) round.Fail("pthread_cancel: %s", strerror(rc));
  }
  for (auto& t : targets) {
    t->release.store(true);
    pthread_mutex_lock(&t->mutex);
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mutex);
    sem_post(&t->sem);
  }
  for (auto& t : targets) {
    void* ret;
    int rc = pthread_join(t->thread, &ret);
    if (t->cancel_sent) round.Latency(Now() - t->cancel_ns);
    round.Op();
    if (rc != 0) {
      round.Fail("pthread_join: %s", strerror(rc));
      continue;
    }
    const bool cancelled = ret == PTHREAD_CANCELED;
    if (cancelled && !t->cancel_sent) round.Fail("kind %d: cancelled without pthread_cancel", t->kind);
    if (!cancelled && ret != reinterpret_cast<void*>(1)) round.Fail("kind %d returned %p", t->kind, ret);
    if (cancelled != t->cleanup_ran.load()) {
      round.Fail("kind %d: %s but its cleanup handler %s", t->kind,
                 cancelled ? "cancelled" : "not cancelled", t->cleanup_ran.load() ? "ran" : "did not run");
    }
    if (cancelled && t->kind == 4 && !t->disabled_section_done.load()) {
      round.Fail("cancelled inside a PTHREAD_CANCEL_DISABLE section");
    }
    // Nobody may hold a worker's mutex now (the cond waiter's handler must have unlocked it).
    if ((rc = pthread_mutex_trylock(&t->mutex)) != 0) {
      round.Fail("kind %d (%s): its mutex is still locked after join (%s)", t->kind,
                 cancelled ? "cancelled" : "finished", strerror(rc));
    } else {
      pthread_mutex_unlock(&t->mutex);
    }
    // A join that was cancelled did not join (POSIX): the helper is still joinable.
    if (t->kind == 3 && cancelled) pthread_join(t->helper, nullptr);
    sem_destroy(&t->sem);
  }
  if (cancel_destructors.load() != static_cast<int>(targets.size())) {
    round.Fail("%d of %zu workers ran their C++ destructors", cancel_destructors.load(), targets.size());
  }
}

Register cancel_scenario({"cancel",
                          "pthread_cancel at random moments of workers in cond wait, sleep, "
                          "sem_wait, join, or a disabled section + testcancel: cleanup handler iff "
                          "cancelled, destructors always, the cond mutex released, never cancelled "
                          "while disabled",
                          "pthread_cancel until join returns", "", CancelRound});

// --- fork -----------------------------------------------------------------------------------------

// The busy threads' shared state: the pair is always equal outside the mutex. pthread_atfork takes
// the mutex around fork, so the child finds it consistent and unlocked.
pthread_mutex_t fork_mutex = PTHREAD_MUTEX_INITIALIZER;
uint64_t fork_pair[2];

void ForkPrepare() { pthread_mutex_lock(&fork_mutex); }
void ForkRelease() { pthread_mutex_unlock(&fork_mutex); }
void InstallAtfork() { pthread_atfork(ForkPrepare, ForkRelease, ForkRelease); }

void* ChildThread(void* p) { return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p) + 1); }

// In the child: only the forking thread exists. It must find the shared pair consistent, create
// and join a thread, and allocate. Exits with 42 when all is well.
[[noreturn]] void ForkChild() {
  int status = 42;
  pthread_mutex_lock(&fork_mutex);
  if (fork_pair[0] != fork_pair[1]) status = 10;
  pthread_mutex_unlock(&fork_mutex);
  pthread_t t;
  void* ret = nullptr;
  if (pthread_create(&t, nullptr, ChildThread, reinterpret_cast<void*>(41)) != 0) status = 11;
  else if (pthread_join(t, &ret) != 0 || ret != reinterpret_cast<void*>(42)) status = 12;
  std::vector<int> some(1000, 1);
  if (some[999] != 1) status = 13;
  _exit(status);
}

void ForkRound(Round& round) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, InstallAtfork);
  Rng rng(round.seed());
  const int busy = rng.Range(1, std::max(1, round.max_threads() - 1));
  const int forks = rng.Range(1, 4);
  std::atomic<bool> stop{false};
  RunThreads(round, busy + 1, [&](int self) {
    Rng r(rng.Fork(self));
    if (self > 0) {  // busy: mutex traffic, allocation, yields
      while (!stop.load()) {
        pthread_mutex_lock(&fork_mutex);
        ++fork_pair[0];
        if (r.OneIn(8)) sched_yield();
        ++fork_pair[1];
        pthread_mutex_unlock(&fork_mutex);
        std::vector<char> garbage(r.Below(4096));
        if (r.OneIn(4)) sched_yield();
      }
      return;
    }
    for (int i = 0; i < forks && !round.Stopping(); ++i) {
      SleepNs(static_cast<int64_t>(r.Below(2000)) * kNsPerUs);
      const int64_t start = Now();
      pid_t pid = fork();
      if (pid == 0) ForkChild();
      if (pid < 0) {
        round.Fail("fork: %s", strerror(errno));
        continue;
      }
      // waitpid would hold the carrier under vthread; poll instead.
      int status = 0;
      pid_t got;
      const int64_t give_up = Now() + 20 * kNsPerSec;
      while ((got = waitpid(pid, &status, WNOHANG)) == 0 && Now() < give_up) SleepNs(200 * kNsPerUs);
      if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        round.Fail("forked child did not exit within 20 s");
        continue;
      }
      round.Latency(Now() - start);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 42) {
        round.Fail("forked child: %s %d (42 means all well; 10 inconsistent state, 11 create, 12 join)",
                   WIFEXITED(status) ? "exit" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      }
      round.Op();
    }
    stop.store(true);
  });
}

Register fork_scenario({"fork",
                        "fork from one thread while others lock, allocate and yield: the child (42 = "
                        "ok) sees consistent atfork-protected state, can create and join a thread",
                        "fork until the child is reaped", "", ForkRound});

// --- spin (opt-in) --------------------------------------------------------------------------------

void SpinRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  std::atomic<int> arrived{0};
  std::atomic<int64_t> last_arrival{0};
  RunThreads(round, threads, [&](int) {
    // A spin barrier with no call into the library: it completes only if all threads run at once,
    // or if the spinners are preempted so that the late ones get to run.
    last_arrival.store(Now());
    arrived.fetch_add(1);
    while (arrived.load(std::memory_order_relaxed) < threads) {
    }
  });
  round.Latency(Now() - last_arrival.load());
  round.Op();
}

Register spin_scenario({"spin",
                        "CPU-bound threads in a spin barrier that never call into the library: "
                        "completes only if all spinners get a CPU",
                        "last arrival until all released",
                        "needs preemption: vthread has none yet, so with more spinners than carriers "
                        "the first spinners keep their carriers and the run hangs (the watchdog "
                        "reports it)",
                        SpinRound});

}  // namespace
}  // namespace stress
