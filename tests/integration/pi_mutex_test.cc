// Priority-inheritance mutexes: they work (contended counting, trylock, errorcheck) with 1 and 2
// carriers, where glibc's would hand the kernel a fiber's made-up thread id and hang; and, with one
// carrier under vthread, a high-priority waiter lends its level to the low-priority holder, which
// then runs before a medium-priority thread (no priority inversion).
#include <errno.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::ExpectFibers;

pthread_mutex_t MakeInheriting(int type = PTHREAD_MUTEX_DEFAULT) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
  pthread_mutexattr_settype(&attr, type);
  pthread_mutex_t m;
  pthread_mutex_init(&m, &attr);
  pthread_mutexattr_destroy(&attr);
  return m;
}

TEST(PriorityInheritance, ContendedCountingIsExact) {
  pthread_mutex_t m = MakeInheriting();
  long counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        ASSERT_EQ(pthread_mutex_lock(&m), 0);
        ++counter;
        if (i % 500 == 0) usleep(10);  // be preempted holding it now and then
        ASSERT_EQ(pthread_mutex_unlock(&m), 0);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 4 * 20000);
  EXPECT_EQ(pthread_mutex_destroy(&m), 0);
}

TEST(PriorityInheritance, ErrorCodesAreGlibcs) {
  pthread_mutex_t m = MakeInheriting(PTHREAD_MUTEX_ERRORCHECK);
  ASSERT_EQ(pthread_mutex_lock(&m), 0);
  EXPECT_EQ(pthread_mutex_lock(&m), EDEADLK);
  int from_other = -1;
  std::thread([&] { from_other = pthread_mutex_trylock(&m); }).join();
  EXPECT_EQ(from_other, EBUSY);
  std::thread([&] { from_other = pthread_mutex_unlock(&m); }).join();
  EXPECT_EQ(from_other, EPERM);
  EXPECT_EQ(pthread_mutex_unlock(&m), 0);
  int protocol = -1;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
  pthread_mutexattr_getprotocol(&attr, &protocol);
  EXPECT_EQ(protocol, PTHREAD_PRIO_INHERIT);
  pthread_mutexattr_destroy(&attr);
}

// Low (FIFO 10) holds the mutex and becomes runnable; Medium (FIFO 20) and High (FIFO 30) are
// queued; High blocks on the mutex. With inheritance Low runs next, at High's level, and the
// order is Low, High, Medium; without it Medium would run first.
TEST(PriorityInheritance, TheHolderRunsAtTheWaitersLevel) {
  if (!ExpectFibers() || vthread_test::Carriers() != 1) GTEST_SKIP() << "needs vthread with one carrier";
  pthread_mutex_t m = MakeInheriting();
  pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
  std::mutex log_lock;
  std::string order;
  auto log = [&](char c) {
    std::lock_guard<std::mutex> hold(log_lock);
    order += c;
  };
  auto create = [](int priority, void* (*fn)(void*), void* arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
    sched_param param = {priority};
    pthread_attr_setschedparam(&attr, &param);
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, &attr, fn, arg), 0);
    pthread_attr_destroy(&attr);
    return t;
  };
  struct Shared {
    pthread_mutex_t* m;
    pthread_mutex_t* gate;
    std::function<void(char)> log;
    std::atomic<bool> low_holds{false};
  } shared{&m, &gate, log};

  // The creator runs at SCHED_FIFO 99 meanwhile, so that no thread it creates preempts it.
  sched_param top = {99}, normal = {0};
  ASSERT_EQ(pthread_setschedparam(pthread_self(), SCHED_FIFO, &top), 0);
  pthread_mutex_lock(&gate);
  pthread_t low = create(10, [](void* p) -> void* {
    auto* s = static_cast<Shared*>(p);
    pthread_mutex_lock(s->m);
    s->low_holds = true;
    pthread_mutex_lock(s->gate);  // parks until the main thread opens the gate
    s->log('L');
    pthread_mutex_unlock(s->gate);
    pthread_mutex_unlock(s->m);
    return nullptr;
  }, &shared);
  while (!shared.low_holds) usleep(1000);  // (a sleep lets Low, below us, run)
  pthread_t medium = create(20, [](void* p) -> void* {
    static_cast<Shared*>(p)->log('M');
    return nullptr;
  }, &shared);
  pthread_t high = create(30, [](void* p) -> void* {
    auto* s = static_cast<Shared*>(p);
    pthread_mutex_lock(s->m);
    s->log('H');
    pthread_mutex_unlock(s->m);
    return nullptr;
  }, &shared);
  pthread_mutex_unlock(&gate);  // Low is runnable again, at its own level, behind Medium
  pthread_join(high, nullptr);
  pthread_join(medium, nullptr);
  pthread_join(low, nullptr);
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
  EXPECT_EQ(order, "LHM");
}

}  // namespace
