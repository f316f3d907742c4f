// Thread-specific data: pthread_key_create/delete/getspecific/setspecific and the destructor
// protocol run at thread exit. Expected values are glibc 2.36's (checked natively).
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

void* Ptr(intptr_t v) { return reinterpret_cast<void*>(v); }

// RAII key so a failing test does not leak keys into the key-limit test.
class Key {
 public:
  explicit Key(void (*destructor)(void*) = nullptr) { rc_ = pthread_key_create(&key_, destructor); }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key() {
    if (rc_ == 0 && !deleted_) pthread_key_delete(key_);
  }
  int rc() const { return rc_; }
  pthread_key_t get() const { return key_; }
  int Delete() {
    deleted_ = true;
    return pthread_key_delete(key_);
  }

 private:
  pthread_key_t key_{};
  int rc_;
  bool deleted_ = false;
};

TEST(Keys, NewKeysAreDistinctAndStartNullInEveryThread) {
  Key a, b;
  ASSERT_EQ(0, a.rc());
  ASSERT_EQ(0, b.rc());
  EXPECT_NE(a.get(), b.get());
  RunHereAndInThread([&] {
    EXPECT_EQ(nullptr, pthread_getspecific(a.get()));
    EXPECT_EQ(nullptr, pthread_getspecific(b.get()));
  });
}

TEST(Keys, SetThenGetRoundTripsIncludingNull) {
  Key k;
  ASSERT_EQ(0, k.rc());
  RunHereAndInThread([&] {
    for (void* v : {Ptr(1), Ptr(-1), Ptr(0x1234), static_cast<void*>(&k), static_cast<void*>(nullptr)}) {
      EXPECT_EQ(0, pthread_setspecific(k.get(), v));
      EXPECT_EQ(v, pthread_getspecific(k.get()));
    }
  });
}

// A value set by one thread is invisible to the others, including the main thread.
TEST(Keys, ValuesAreIndependentAcross100ThreadsThatSleepAndYield) {
  constexpr int kThreads = 100, kKeys = 4;
  std::vector<Key> keys(kKeys);
  for (auto& k : keys) ASSERT_EQ(0, k.rc());
  ASSERT_EQ(0, pthread_setspecific(keys[0].get(), Ptr(-5)));
  struct Arg { const std::vector<Key>* keys; int index; std::atomic<int>* bad; std::atomic<int>* alive; const Gate* gate; };
  std::atomic<int> bad{0}, alive{0};
  Gate gate;
  std::vector<Arg> args(kThreads);
  std::vector<pthread_t> tids(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    args[i] = Arg{&keys, i, &bad, &alive, &gate};
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<Arg*>(p);
      const auto& ks = *a->keys;
      for (int k = 0; k < kKeys; ++k) {
        if (pthread_getspecific(ks[k].get()) != nullptr) a->bad->fetch_add(1);
        pthread_setspecific(ks[k].get(), Ptr(a->index * 100 + k + 1));
      }
      a->alive->fetch_add(1);
      a->gate->Wait(4000);  // everyone has set its values before anyone re-reads
      for (int round = 0; round < 20; ++round) {
        if (round % 2) sched_yield(); else usleep(100);
        for (int k = 0; k < kKeys; ++k) {
          if (pthread_getspecific(ks[k].get()) != Ptr(a->index * 100 + k + 1)) a->bad->fetch_add(1);
        }
      }
      return nullptr;
    }, &args[i]));
  }
  EXPECT_TRUE(PollUntil([&] { return alive.load() == kThreads; }));
  gate.Open();
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(0, bad.load());
  EXPECT_EQ(Ptr(-5), pthread_getspecific(keys[0].get()));
  EXPECT_EQ(nullptr, pthread_getspecific(keys[1].get()));
  pthread_setspecific(keys[0].get(), nullptr);
}

// The destructor runs in the exiting thread, once per non-NULL value, receives the value, and
// sees the key's value already reset to NULL. Threads that leave NULL get no call.
struct DtorRecord {
  std::atomic<int> calls{0};
  std::atomic<intptr_t> value_sum{0};
  std::atomic<int> saw_non_null{0};
  std::atomic<int> wrong_thread{0};
};
DtorRecord g_rec;
pthread_key_t g_rec_key;
pthread_t g_rec_selves[100];  // thread i's pthread_self(); its value is i + 1000

void RecordingDtor(void* v) {
  const intptr_t value = reinterpret_cast<intptr_t>(v);
  g_rec.calls++;
  g_rec.value_sum += value;
  if (pthread_getspecific(g_rec_key) != nullptr) g_rec.saw_non_null++;
  if (value < 1000 || value >= 1100 || !pthread_equal(pthread_self(), g_rec_selves[value - 1000])) {
    g_rec.wrong_thread++;
  }
}

TEST(KeyDestructors, RunOnceInTheExitingThreadWithTheValueAfterItWasReset) {
  Key k(RecordingDtor);
  ASSERT_EQ(0, k.rc());
  g_rec_key = k.get();
  constexpr int kThreads = 100;
  std::vector<pthread_t> tids(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    // Odd threads leave the value NULL: no destructor call for them. Threads divisible by 4 end
    // through pthread_exit, the others by returning.
    ASSERT_EQ(0, pthread_create(&tids[i], nullptr, [](void* p) -> void* {
      const intptr_t i = reinterpret_cast<intptr_t>(p);
      g_rec_selves[i] = pthread_self();
      if (i % 2 == 0) pthread_setspecific(g_rec_key, Ptr(i + 1000));
      usleep(1000);
      if (i % 4 == 0) pthread_exit(nullptr);
      return nullptr;
    }, Ptr(i)));
  }
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  // Destructors run before the thread is joinable-finished, so the counts are final here.
  EXPECT_EQ(kThreads / 2, g_rec.calls.load());
  intptr_t expected = 0;
  for (int i = 0; i < kThreads; i += 2) expected += i + 1000;
  EXPECT_EQ(expected, g_rec.value_sum.load());
  EXPECT_EQ(0, g_rec.saw_non_null.load());
  EXPECT_EQ(0, g_rec.wrong_thread.load());
}

// A destructor that sets the value again is called again, for at most
// PTHREAD_DESTRUCTOR_ITERATIONS rounds (glibc: exactly 4 calls if it always re-sets).
pthread_key_t g_again_key;
std::atomic<int> g_again_calls{0};
std::atomic<int> g_again_limit{0};  // re-set while calls < limit

void ResettingDtor(void* v) {
  if (++g_again_calls < g_again_limit.load()) pthread_setspecific(g_again_key, v);
}

int CountResettingDtorCalls(int limit) {
  g_again_calls = 0;
  g_again_limit = limit;
  pthread_t t;
  pthread_create(&t, nullptr, [](void*) -> void* {
    pthread_setspecific(g_again_key, Ptr(1));
    return nullptr;
  }, nullptr);
  pthread_join(t, nullptr);
  return g_again_calls.load();
}

TEST(KeyDestructors, ResettingTheValueRunsTheDestructorAgainUpToTheIterationLimit) {
  Key k(ResettingDtor);
  ASSERT_EQ(0, k.rc());
  g_again_key = k.get();
  EXPECT_EQ(4, PTHREAD_DESTRUCTOR_ITERATIONS);  // glibc's value; the counts below use it
  EXPECT_EQ(1, CountResettingDtorCalls(1));  // never re-sets
  EXPECT_EQ(2, CountResettingDtorCalls(2));  // re-sets once
  EXPECT_EQ(PTHREAD_DESTRUCTOR_ITERATIONS, CountResettingDtorCalls(1000));  // always re-sets
}

// A destructor that sets a value for another key (even one already handled this round) makes
// that key's destructor run in a later round.
pthread_key_t g_first_key, g_second_key;
std::atomic<int> g_first_calls{0}, g_second_calls{0};

TEST(KeyDestructors, ADestructorSettingAnotherKeyTriggersThatKeysDestructor) {
  Key first([](void*) {
    g_first_calls++;
    pthread_setspecific(g_second_key, Ptr(2));
  });
  Key second([](void* v) {
    if (v == Ptr(2)) g_second_calls++;
  });
  ASSERT_EQ(0, first.rc());
  ASSERT_EQ(0, second.rc());
  g_first_key = first.get();
  g_second_key = second.get();
  RunInThread([] { pthread_setspecific(g_first_key, Ptr(1)); });
  EXPECT_EQ(1, g_first_calls.load());
  EXPECT_EQ(1, g_second_calls.load());
}

// pthread_key_delete does not call destructors, and a deleted key's destructor is not run when
// threads that had a value for it exit later.
std::atomic<int> g_deleted_calls{0};

TEST(KeyDestructors, DeletedKeysDestructorIsNotRunAtThreadExit) {
  Key k([](void*) { g_deleted_calls++; });
  ASSERT_EQ(0, k.rc());
  struct Arg { pthread_key_t key; std::atomic<bool> set{false}; Gate gate; } arg;
  arg.key = k.get();
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
    auto* a = static_cast<Arg*>(p);
    pthread_setspecific(a->key, Ptr(1));
    a->set = true;
    a->gate.Wait(2000);
    return nullptr;
  }, &arg));
  ASSERT_TRUE(PollUntil([&] { return arg.set.load(); }));
  ASSERT_EQ(0, k.Delete());
  arg.gate.Open();
  ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(0, g_deleted_calls.load());
}

// POSIX: a newly created key has the value NULL in all active threads, even if its slot held a
// value for a key deleted earlier. Its destructor sees only values set for the new key.
std::atomic<int> g_old_calls{0}, g_new_calls{0};
std::atomic<intptr_t> g_new_value{0};

TEST(Keys, AKeyCreatedAfterADeleteStartsNullInThreadsThatHadValues) {
  constexpr int kThreads = 20;
  struct Shared {
    std::atomic<pthread_key_t> key{};
    std::atomic<int> set{0};
    std::atomic<int> bad{0};
    Gate recreated;
  } shared;
  Key old_key([](void*) { g_old_calls++; });
  ASSERT_EQ(0, old_key.rc());
  shared.key = old_key.get();
  std::vector<pthread_t> tids(kThreads);
  for (auto& t : tids) {
    ASSERT_EQ(0, pthread_create(&t, nullptr, [](void* p) -> void* {
      auto* s = static_cast<Shared*>(p);
      pthread_setspecific(s->key.load(), Ptr(7));
      s->set++;
      s->recreated.Wait(2000);
      const pthread_key_t fresh = s->key.load();
      if (pthread_getspecific(fresh) != nullptr) s->bad++;
      pthread_setspecific(fresh, Ptr(9));
      return nullptr;
    }, &shared));
  }
  ASSERT_TRUE(PollUntil([&] { return shared.set.load() == kThreads; }));
  ASSERT_EQ(0, old_key.Delete());
  // glibc hands out the lowest free slot, so this reuses the deleted key's slot.
  Key new_key([](void* v) { g_new_calls++; g_new_value += reinterpret_cast<intptr_t>(v); });
  ASSERT_EQ(0, new_key.rc());
  shared.key = new_key.get();
  shared.recreated.Open();
  for (auto& t : tids) ASSERT_EQ(0, pthread_join(t, nullptr));
  EXPECT_EQ(0, shared.bad.load());
  EXPECT_EQ(0, g_old_calls.load());
  EXPECT_EQ(kThreads, g_new_calls.load());
  EXPECT_EQ(9 * kThreads, g_new_value.load());
}

// Deleting a key and creating keys again works indefinitely (the slots are recycled).
TEST(Keys, CreateDeleteCyclesDoNotRunOutOfKeys) {
  for (int i = 0; i < 5000; ++i) {
    pthread_key_t k;
    ASSERT_EQ(0, pthread_key_create(&k, nullptr)) << i;
    ASSERT_EQ(nullptr, pthread_getspecific(k));
    ASSERT_EQ(0, pthread_setspecific(k, Ptr(i + 1)));
    ASSERT_EQ(0, pthread_key_delete(k)) << i;
  }
}

// glibc: a key number >= PTHREAD_KEYS_MAX is rejected with EINVAL.
TEST(Keys, OutOfRangeKeyIsEinval) {
  EXPECT_EQ(EINVAL, pthread_key_delete(static_cast<pthread_key_t>(PTHREAD_KEYS_MAX + 5)));
  EXPECT_EQ(EINVAL, pthread_setspecific(static_cast<pthread_key_t>(PTHREAD_KEYS_MAX + 5), Ptr(1)));
}

// Keys are a finite resource: PTHREAD_KEYS_MAX (1024 in glibc) minus the ones already in use
// by the runtime, libraries and gtest. Creating beyond that is EAGAIN. All the keys obtained work
// in a new thread, and deleting them gives back exactly as many.
TEST(Keys, CreatingMoreThanPthreadKeysMaxIsEagain) {
  EXPECT_EQ(1024, PTHREAD_KEYS_MAX);
  std::vector<pthread_key_t> keys;
  int rc;
  for (;;) {
    pthread_key_t k;
    rc = pthread_key_create(&k, nullptr);
    if (rc != 0) break;
    keys.push_back(k);
    ASSERT_LE(keys.size(), size_t{PTHREAD_KEYS_MAX});
  }
  EXPECT_EQ(EAGAIN, rc);
  const size_t available = keys.size();
  RecordProperty("available_keys", static_cast<int>(available));
  // A process that has only started a test framework has used few keys.
  EXPECT_GE(available, size_t{PTHREAD_KEYS_MAX} - 32);
  RunInThread([&] {
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_EQ(nullptr, pthread_getspecific(keys[i]));
      ASSERT_EQ(0, pthread_setspecific(keys[i], Ptr(static_cast<intptr_t>(i) + 1)));
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSERT_EQ(Ptr(static_cast<intptr_t>(i) + 1), pthread_getspecific(keys[i]));
    }
  });
  for (pthread_key_t k : keys) ASSERT_EQ(0, pthread_key_delete(k));
  keys.clear();
  for (;;) {
    pthread_key_t k;
    if (pthread_key_create(&k, nullptr) != 0) break;
    keys.push_back(k);
    ASSERT_LE(keys.size(), size_t{PTHREAD_KEYS_MAX});
  }
  EXPECT_EQ(available, keys.size());
  for (pthread_key_t k : keys) EXPECT_EQ(0, pthread_key_delete(k));
}

}  // namespace
}  // namespace vthread_test
