// Scenarios on the synchronization primitives: mutex, cond, rwlock, barrier, sem. Each round picks
// thread counts, object kinds and operation mixes from its seed; the invariants are exact (no lost
// update, nothing lost or duplicated, exclusion never broken, one serial thread per barrier cycle).

#include <errno.h>
#include <semaphore.h>
#include <string.h>

#include <deque>
#include <memory>
#include <vector>

#include "tools/stress/harness.h"

namespace stress {
namespace {

// --- mutex --------------------------------------------------------------------------------------

constexpr int kMutexTypes[] = {PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
                               PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP};

struct GuardedCounter {
  pthread_mutex_t mutex;
  int type;
  // Read, maybe yield, then written back: any two holders at once lose an update.
  uint64_t value = 0;
  // Who holds the mutex (thread index + 1); checked on every acquisition.
  std::atomic<int> holder{0};
};

// Acquires with lock, trylock-and-yield, or timedlock with a short deadline, as the round's rng says.
// An unexpected error is a failure, and the caller goes on as if it held the mutex.
void LockSomehow(Round& round, Rng& rng, pthread_mutex_t* m) {
  switch (rng.Below(3)) {
    case 0: {
      int rc = pthread_mutex_lock(m);
      if (rc != 0) round.Fail("pthread_mutex_lock: %s", strerror(rc));
      return;
    }
    case 1:
      for (;;) {
        int rc = pthread_mutex_trylock(m);
        if (rc == 0) return;
        if (rc != EBUSY) return round.Fail("pthread_mutex_trylock: %s", strerror(rc));
        sched_yield();
      }
    default:
      for (;;) {
        timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + static_cast<int64_t>(rng.Below(200)) * kNsPerUs);
        int rc = pthread_mutex_timedlock(m, &deadline);
        if (rc == 0) return;
        if (rc != ETIMEDOUT) return round.Fail("pthread_mutex_timedlock: %s", strerror(rc));
      }
  }
}

void MutexRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  const int counters = rng.Range(1, 4);
  const int ops_per_thread = rng.Range(100, 2000);
  std::vector<GuardedCounter> counter(counters);
  for (GuardedCounter& c : counter) {
    c.type = kMutexTypes[rng.Below(4)];
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, c.type);
    pthread_mutex_init(&c.mutex, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  std::vector<std::vector<uint64_t>> done(threads, std::vector<uint64_t>(counters, 0));
  RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    for (int op = 0; op < ops_per_thread && !round.Stopping(); ++op) {
      const int j = static_cast<int>(r.Below(counters));
      GuardedCounter& c = counter[j];
      const int64_t start = Now();
      LockSomehow(round, r, &c.mutex);
      round.Latency(Now() - start);
      if (int other = c.holder.exchange(self + 1); other != 0) {
        round.Fail("counter %d (type %d): thread %d got the mutex while thread %d held it", j, c.type,
                   self, other - 1);
      }
      if (c.type == PTHREAD_MUTEX_RECURSIVE && r.OneIn(4)) {
        int rc = pthread_mutex_lock(&c.mutex);
        if (rc != 0) round.Fail("recursive relock: %s", strerror(rc));
        pthread_mutex_unlock(&c.mutex);
      } else if (c.type == PTHREAD_MUTEX_ERRORCHECK && r.OneIn(8)) {
        int rc = pthread_mutex_lock(&c.mutex);
        if (rc != EDEADLK) round.Fail("errorcheck relock returned %d, not EDEADLK", rc);
      }
      uint64_t v = c.value;
      if (r.OneIn(8)) sched_yield();
      c.value = v + 1;
      ++done[self][j];
      c.holder.store(0);
      int rc = pthread_mutex_unlock(&c.mutex);
      if (rc != 0) round.Fail("pthread_mutex_unlock: %s", strerror(rc));
      if (c.type == PTHREAD_MUTEX_ERRORCHECK && r.OneIn(8)) {
        rc = pthread_mutex_unlock(&c.mutex);  // not the owner (maybe nobody is)
        if (rc != EPERM) round.Fail("errorcheck unlock by a non-owner returned %d, not EPERM", rc);
      }
      round.Op();
    }
  });
  for (int j = 0; j < counters; ++j) {
    uint64_t expected = 0;
    for (int t = 0; t < threads; ++t) expected += done[t][j];
    if (counter[j].value != expected) {
      round.Fail("counter %d (mutex type %d): %llu after %llu increments (lost updates)", j,
                 counter[j].type, static_cast<unsigned long long>(counter[j].value),
                 static_cast<unsigned long long>(expected));
    }
    int rc = pthread_mutex_destroy(&counter[j].mutex);
    if (rc != 0) round.Fail("pthread_mutex_destroy of an unlocked mutex: %s", strerror(rc));
  }
}

Register mutex_scenario({"mutex",
                         "mutex-protected counters of every mutex type, lock/trylock/timedlock: no "
                         "lost update, one holder at a time, EDEADLK/EPERM of errorcheck",
                         "wait to acquire a mutex", "", MutexRound});

// --- producer/consumer checks shared by cond and sem ----------------------------------------------

struct Item {
  int producer;
  int seq;
  int64_t enqueued_ns;
};

// What consumers saw: every (producer, seq) exactly once, and each consumer sees one producer's
// items in increasing order (the queue is FIFO and a consumer takes items one at a time).
class Ledger {
 public:
  Ledger(int producers, int consumers, int per_producer)
      : seen_(static_cast<size_t>(producers) * per_producer),  // value-initialized: zeros
        last_(consumers, std::vector<int>(producers, -1)), per_producer_(per_producer) {}

  void Take(Round& round, int consumer, const Item& item) {
    round.Latency(Now() - item.enqueued_ns);
    seen_[static_cast<size_t>(item.producer) * per_producer_ + item.seq].fetch_add(1);
    int& last = last_[consumer][item.producer];
    if (item.seq <= last) {
      round.Fail("consumer %d got item %d of producer %d after item %d (not FIFO)", consumer,
                 item.seq, item.producer, last);
    }
    last = item.seq;
    round.Op();
  }

  // `produced[p]` items of producer p were put in the queue.
  void Check(Round& round, const std::vector<int>& produced) {
    for (size_t p = 0; p < produced.size(); ++p) {
      for (int s = 0; s < per_producer_; ++s) {
        int n = seen_[p * per_producer_ + s].load();
        int want = s < produced[p] ? 1 : 0;
        if (n != want) {
          round.Fail("item %d of producer %zu consumed %d times, expected %d", s, p, n, want);
          return;
        }
      }
    }
  }

 private:
  std::vector<std::atomic<int>> seen_;
  std::vector<std::vector<int>> last_;  // [consumer][producer]: last seq seen
  const int per_producer_;
};

// --- cond -----------------------------------------------------------------------------------------

void CondRound(Round& round) {
  Rng rng(round.seed());
  const int producers = rng.Range(1, std::max(1, round.max_threads() / 2));
  const int consumers = rng.Range(1, std::max(1, round.max_threads() - producers));
  const int per_producer = rng.Range(50, 1000);
  const size_t capacity = static_cast<size_t>(rng.Range(1, 16));
  const bool broadcast = rng.OneIn(2);
  const clockid_t clock = rng.OneIn(2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;

  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t not_empty, not_full;
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, clock);
  pthread_cond_init(&not_empty, &attr);
  pthread_cond_init(&not_full, &attr);
  pthread_condattr_destroy(&attr);
  std::deque<Item> queue;
  int producers_left = producers;
  std::vector<int> produced(producers, 0);
  Ledger ledger(producers, consumers, per_producer);

  auto wait = [&](Rng& r, pthread_cond_t* cond) {
    int rc;
    if (r.OneIn(2)) {
      rc = pthread_cond_wait(cond, &mutex);
    } else {
      timespec deadline = ToTimespec(Now(clock) + static_cast<int64_t>(r.Below(500)) * kNsPerUs);
      rc = pthread_cond_timedwait(cond, &mutex, &deadline);
      if (rc == ETIMEDOUT) rc = 0;
    }
    if (rc != 0) round.Fail("condition wait: %s", strerror(rc));
  };
  auto wake = [&](pthread_cond_t* cond) {
    broadcast ? pthread_cond_broadcast(cond) : pthread_cond_signal(cond);
  };

  RunThreads(round, producers + consumers, [&](int self) {
    Rng r(rng.Fork(self));
    pthread_mutex_lock(&mutex);
    if (self < producers) {
      for (int seq = 0; seq < per_producer && !round.Stopping(); ++seq) {
        while (queue.size() >= capacity) wait(r, &not_full);
        queue.push_back(Item{self, seq, Now()});
        produced[self] = seq + 1;
        wake(&not_empty);
        if (r.OneIn(16)) {
          pthread_mutex_unlock(&mutex);
          sched_yield();
          pthread_mutex_lock(&mutex);
        }
      }
      if (--producers_left == 0) pthread_cond_broadcast(&not_empty);
    } else {
      const int consumer = self - producers;
      for (;;) {
        while (queue.empty() && producers_left > 0) wait(r, &not_empty);
        if (queue.empty()) break;
        Item item = queue.front();
        queue.pop_front();
        wake(&not_full);
        ledger.Take(round, consumer, item);
      }
    }
    pthread_mutex_unlock(&mutex);
  });
  ledger.Check(round, produced);
  pthread_cond_destroy(&not_empty);
  pthread_cond_destroy(&not_full);
}

Register cond_scenario({"cond",
                        "bounded queue with mutex + 2 condvars (signal or broadcast, wait or timed "
                        "wait, either clock): every item consumed once, per-producer FIFO",
                        "item time in the queue", "", CondRound});

// --- rwlock ---------------------------------------------------------------------------------------

void RwlockRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  const int ops_per_thread = rng.Range(100, 1000);
  const bool prefer_writer = rng.OneIn(2);
  pthread_rwlock_t lock;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  if (prefer_writer) {
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  }
  pthread_rwlock_init(&lock, &attr);
  pthread_rwlockattr_destroy(&attr);

  std::atomic<int> readers{0}, writers{0};
  // Writers fill it with one value; a reader that sees two values saw a write in progress.
  std::vector<uint64_t> data(8, 0);
  std::atomic<uint64_t> writes{0};

  RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    for (int op = 0; op < ops_per_thread && !round.Stopping(); ++op) {
      const bool write = r.OneIn(4);
      const int how = static_cast<int>(r.Below(3));  // blocking, try, timed
      const int64_t start = Now();
      for (;;) {
        int rc;
        if (how == 0) {
          rc = write ? pthread_rwlock_wrlock(&lock) : pthread_rwlock_rdlock(&lock);
        } else if (how == 1) {
          rc = write ? pthread_rwlock_trywrlock(&lock) : pthread_rwlock_tryrdlock(&lock);
          if (rc == EBUSY) {
            sched_yield();
            continue;
          }
        } else {
          timespec deadline = ToTimespec(Now(CLOCK_REALTIME) + static_cast<int64_t>(r.Below(300)) * kNsPerUs);
          rc = write ? pthread_rwlock_timedwrlock(&lock, &deadline)
                     : pthread_rwlock_timedrdlock(&lock, &deadline);
          if (rc == ETIMEDOUT) continue;
        }
        if (rc != 0) round.Fail("rwlock %s lock: %s", write ? "write" : "read", strerror(rc));
        break;
      }
      round.Latency(Now() - start);
      if (write) {
        if (writers.fetch_add(1) != 0 || readers.load() != 0) {
          round.Fail("writer got the rwlock beside %d writers and %d readers", writers.load() - 1,
                     readers.load());
        }
        const uint64_t v = writes.fetch_add(1) + 1;
        for (size_t i = 0; i < data.size(); ++i) {
          data[i] = v;
          if (i == data.size() / 2 && r.OneIn(4)) sched_yield();
        }
        writers.fetch_sub(1);
      } else {
        readers.fetch_add(1);
        if (writers.load() != 0) round.Fail("reader got the rwlock while a writer held it");
        uint64_t first = data[0];
        if (r.OneIn(4)) sched_yield();
        for (uint64_t v : data) {
          if (v != first) round.Fail("reader saw a torn write (%llu and %llu)",
                                     static_cast<unsigned long long>(first),
                                     static_cast<unsigned long long>(v));
        }
        readers.fetch_sub(1);
      }
      int rc = pthread_rwlock_unlock(&lock);
      if (rc != 0) round.Fail("pthread_rwlock_unlock: %s", strerror(rc));
      round.Op();
    }
  });
  if (data[0] != writes.load()) {
    round.Fail("last write left %llu, %llu writes were made",
               static_cast<unsigned long long>(data[0]), static_cast<unsigned long long>(writes.load()));
  }
  pthread_rwlock_destroy(&lock);
}

Register rwlock_scenario({"rwlock",
                          "readers and writers (blocking/try/timed, reader- or writer-preferring): "
                          "writers exclusive, readers never see a torn write",
                          "wait to acquire the rwlock", "", RwlockRound});

// --- barrier --------------------------------------------------------------------------------------

void BarrierRound(Round& round) {
  Rng rng(round.seed());
  const int threads = rng.Range(2, round.max_threads());
  const int phases = rng.Range(5, 100);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, nullptr, static_cast<unsigned>(threads));
  std::vector<std::atomic<int>> slot(threads);
  std::atomic<int> serial{0};
  // Every thread must run every phase (a thread leaving early would strand the others), so the
  // round does not look at Stopping(); it is short.
  RunThreads(round, threads, [&](int self) {
    Rng r(rng.Fork(self));
    for (int phase = 1; phase <= phases; ++phase) {
      slot[self].store(phase);
      if (r.OneIn(4)) sched_yield();
      for (int half = 0; half < 2; ++half) {
        const int64_t start = Now();
        int rc = pthread_barrier_wait(&barrier);
        round.Latency(Now() - start);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD) serial.fetch_add(1);
        else if (rc != 0) round.Fail("pthread_barrier_wait: %s", strerror(rc));
        if (half == 1) break;
        // Between the two waits of a phase nobody writes: all must show this phase.
        for (int t = 0; t < threads; ++t) {
          if (int p = slot[t].load(); p != phase) {
            round.Fail("after barrier %d thread %d sees thread %d in phase %d", phase, self, t, p);
          }
        }
      }
      round.Op();
    }
  });
  if (serial.load() != 2 * phases) {
    round.Fail("%d serial threads over %d barrier cycles", serial.load(), 2 * phases);
  }
  int rc = pthread_barrier_destroy(&barrier);
  if (rc != 0) round.Fail("pthread_barrier_destroy: %s", strerror(rc));
}

Register barrier_scenario({"barrier",
                           "threads in phases, two barrier waits per phase: all see the phase, one "
                           "PTHREAD_BARRIER_SERIAL_THREAD per cycle",
                           "wait at a barrier", "", BarrierRound});

// --- sem ------------------------------------------------------------------------------------------

// sem_wait, sem_trywait-and-yield or sem_timedwait/sem_clockwait in a loop, as the rng says.
void SemWaitSomehow(Round& round, Rng& r, sem_t* sem) {
  const int how = static_cast<int>(r.Below(4));
  for (;;) {
    int rc;
    if (how == 0) {
      rc = sem_wait(sem);
    } else if (how == 1) {
      rc = sem_trywait(sem);
      if (rc != 0 && errno == EAGAIN) {
        sched_yield();
        continue;
      }
    } else {
      const clockid_t clock = how == 2 ? CLOCK_REALTIME : CLOCK_MONOTONIC;
      timespec deadline = ToTimespec(Now(clock) + static_cast<int64_t>(r.Below(300)) * kNsPerUs);
      rc = how == 2 ? sem_timedwait(sem, &deadline) : sem_clockwait(sem, clock, &deadline);
      if (rc != 0 && errno == ETIMEDOUT) continue;
    }
    if (rc != 0) round.Fail("semaphore wait (kind %d): %s", how, strerror(errno));
    return;
  }
}

void SemRound(Round& round) {
  Rng rng(round.seed());
  const int producers = rng.Range(1, std::max(1, round.max_threads() / 2));
  const int consumers = rng.Range(1, std::max(1, round.max_threads() - producers));
  const int per_producer = rng.Range(50, 1000);
  const int capacity = rng.Range(1, 8);
  sem_t empty, full, guard;  // free slots, filled slots, a binary semaphore as the ring's lock
  sem_init(&empty, 0, static_cast<unsigned>(capacity));
  sem_init(&full, 0, 0);
  sem_init(&guard, 0, 1);
  std::vector<Item> ring(capacity);
  size_t head = 0, tail = 0;
  std::vector<int> produced(producers, 0);
  std::atomic<int> producers_left{producers};
  Ledger ledger(producers, consumers, per_producer);

  RunThreads(round, producers + consumers, [&](int self) {
    Rng r(rng.Fork(self));
    if (self < producers) {
      for (int seq = 0; seq < per_producer && !round.Stopping(); ++seq) {
        SemWaitSomehow(round, r, &empty);
        SemWaitSomehow(round, r, &guard);
        ring[tail++ % capacity] = Item{self, seq, Now()};
        produced[self] = seq + 1;
        sem_post(&guard);
        sem_post(&full);
        int v;
        sem_getvalue(&empty, &v);
        if (v < 0 || v > capacity) round.Fail("free-slot semaphore at %d, capacity %d", v, capacity);
      }
      // The last producer posts one end marker per consumer (producer -1).
      if (producers_left.fetch_sub(1) == 1) {
        for (int c = 0; c < consumers; ++c) {
          SemWaitSomehow(round, r, &empty);
          SemWaitSomehow(round, r, &guard);
          ring[tail++ % capacity] = Item{-1, 0, 0};
          sem_post(&guard);
          sem_post(&full);
        }
      }
    } else {
      for (;;) {
        SemWaitSomehow(round, r, &full);
        SemWaitSomehow(round, r, &guard);
        Item item = ring[head++ % capacity];
        sem_post(&guard);
        sem_post(&empty);
        if (item.producer < 0) break;
        ledger.Take(round, self - producers, item);
      }
    }
  });
  ledger.Check(round, produced);
  for (sem_t* s : {&empty, &full, &guard}) sem_destroy(s);
}

Register sem_scenario({"sem",
                       "bounded ring buffer on semaphores (wait/trywait/timedwait/clockwait): every "
                       "item once, per-producer FIFO, the free count within [0, capacity]",
                       "item time in the buffer", "", SemRound});

}  // namespace
}  // namespace stress
