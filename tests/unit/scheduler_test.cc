// The scheduler end to end, in-process: this test binary's main thread becomes the main fiber of a
// two-carrier runtime, and every test spawns fibers and parks/unparks them directly.
#include "sched/sched.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <vector>

#include "sched/parking_lot.h"

namespace vthread::sched {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Config config;
    config.carriers = 2;
    config.default_stack_size = 256 * 1024;
    ASSERT_TRUE(start(config));
  }
};

// Spawns fn(arg) as a joinable fiber.
template <typename Fn>
Fiber* go(Fn* fn) {
  Fiber* f = nullptr;
  EXPECT_EQ(spawn(SpawnAttributes{}, [](void* p) { exit_current((*static_cast<Fn*>(p))(), nullptr); }, fn,
                  nullptr, &f),
            0);
  return f;
}

void* join_value(Fiber* f) {
  void* result = nullptr;
  EXPECT_EQ(join(f, kNoDeadline, &result), JoinResult::kJoined);
  return result;
}

TEST_F(SchedulerTest, MainIsAFiber) {
  ASSERT_NE(current(), nullptr);
  EXPECT_TRUE(current()->is_main);
  EXPECT_EQ(current(), main_fiber());
}

TEST_F(SchedulerTest, SpawnRunsAndJoinReturnsResult) {
  int x = 41;
  auto fn = [&]() -> void* { return reinterpret_cast<void*>(static_cast<intptr_t>(x + 1)); };
  Fiber* f = go(&fn);
  EXPECT_EQ(reinterpret_cast<intptr_t>(join_value(f)), 42);
}

TEST_F(SchedulerTest, JoinSelfIsDeadlockAndTryJoinIsBusy) {
  EXPECT_EQ(join(current(), kNoDeadline, nullptr), JoinResult::kDeadlock);
  std::atomic<bool> go_on{false};
  auto fn = [&]() -> void* {
    while (!go_on.load()) yield();
    return nullptr;
  };
  Fiber* f = go(&fn);
  EXPECT_EQ(join(f, kTryJoin, nullptr), JoinResult::kBusy);
  EXPECT_EQ(join(f, monotonic_now() + 1000000, nullptr), JoinResult::kTimedOut);
  go_on = true;
  join_value(f);
}

TEST_F(SchedulerTest, DetachedFiberIsNotJoinable) {
  std::atomic<bool> ran{false};
  auto fn = [&]() -> void* {
    ran = true;
    return nullptr;
  };
  Fiber* f = go(&fn);
  EXPECT_TRUE(detach(f));
  while (!ran.load()) yield();
}

TEST_F(SchedulerTest, ParkUnparkHandsOffAndStaleTicketsFail) {
  ParkTicket ticket;
  std::atomic<bool> parked{false};
  auto fn = [&]() -> void* {
    ticket = park_ticket();
    parked = true;
    WakeReason r = park(WaitReason::kTestPark, kNoDeadline, nullptr, nullptr);
    return reinterpret_cast<void*>(static_cast<intptr_t>(r));
  };
  Fiber* f = go(&fn);
  while (!parked.load() || state_of(f->sched_word.load()) != FiberState::kParked) yield();
  EXPECT_TRUE(unpark(ticket));
  EXPECT_FALSE(unpark(ticket));  // the same park cannot be ended twice
  EXPECT_EQ(static_cast<WakeReason>(reinterpret_cast<intptr_t>(join_value(f))), WakeReason::kUnparked);
}

TEST_F(SchedulerTest, SleepNeverReturnsEarly) {
  for (Nanos delay : {Nanos{0}, Nanos{100000}, Nanos{2000000}}) {
    Nanos before = monotonic_now();
    sleep_until(before + delay);
    EXPECT_GE(monotonic_now() - before, delay);
  }
}

TEST_F(SchedulerTest, ManySleepersOverlap) {
  constexpr int kFibers = 2000;
  constexpr Nanos kDelay = 20 * 1000 * 1000;
  auto fn = []() -> void* {
    sleep_until(monotonic_now() + kDelay);
    return nullptr;
  };
  Nanos before = monotonic_now();
  std::vector<Fiber*> fibers;
  for (int i = 0; i < kFibers; ++i) fibers.push_back(go(&fn));
  for (Fiber* f : fibers) join_value(f);
  // Serialized they would take 40 s; overlapped, about 20 ms.
  EXPECT_LT(monotonic_now() - before, Nanos{2} * kNanosPerSecond);
}

TEST_F(SchedulerTest, ParkingLotUnparkOneIsFifoAndUnparkAllWakesTheRest) {
  static int word = 0;
  constexpr int kWaiters = 5;
  std::atomic<int> parked{0};
  std::vector<int> order;
  Spinlock order_lock;
  std::vector<Fiber*> fibers;
  std::vector<std::function<void*()>> bodies(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    bodies[i] = [&, i]() -> void* {
      parked++;
      parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, kNoDeadline);
      SpinlockGuard hold(order_lock);
      order.push_back(i);
      return nullptr;
    };
    fibers.push_back(go(&bodies[i]));
    // Park them one at a time so their queue order is known.
    while (parked.load() <= i || state_of(fibers.back()->sched_word.load()) != FiberState::kParked) yield();
  }
  EXPECT_EQ(parking_lot::unpark_one(&word), 1u);
  while (true) {
    SpinlockGuard hold(order_lock);
    if (!order.empty()) break;
  }
  EXPECT_EQ(order[0], 0);
  EXPECT_EQ(parking_lot::unpark_all(&word), static_cast<size_t>(kWaiters - 1));
  for (Fiber* f : fibers) join_value(f);
  EXPECT_EQ(parking_lot::unpark_all(&word), 0u);
}

TEST_F(SchedulerTest, ParkingLotValidationRefusesAndTimeoutsExpire) {
  static int word = 0;
  auto refuse = [](void*) { return false; };
  EXPECT_EQ(parking_lot::park(&word, refuse, nullptr, WaitReason::kTestPark, kNoDeadline),
            parking_lot::ParkResult::kInvalid);
  Nanos before = monotonic_now();
  EXPECT_EQ(parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, before + 3000000),
            parking_lot::ParkResult::kTimedOut);
  EXPECT_GE(monotonic_now() - before, 3000000);
  EXPECT_EQ(parking_lot::unpark_all(&word), 0u);  // the timed-out waiter left the queue
}

// Wakes racing timeouts: every waiter ends exactly once, and every successful unpark_one is
// matched by a waiter that saw kUnparked (no wake is lost on a waiter that was timing out).
TEST_F(SchedulerTest, TimeoutsRacingWakeupsLoseNothing) {
  static int word = 0;
  constexpr int kWaiters = 400;
  std::atomic<int> unparked{0}, timed_out{0}, done{0};
  auto body = [&]() -> void* {
    Nanos deadline = monotonic_now() + 200000 + (current()->id % 7) * 100000;
    auto r = parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, deadline);
    (r == parking_lot::ParkResult::kUnparked ? unparked : timed_out)++;
    done++;
    return nullptr;
  };
  std::vector<Fiber*> fibers;
  for (int i = 0; i < kWaiters; ++i) fibers.push_back(go(&body));
  size_t woken = 0;
  while (done.load() < kWaiters) {
    woken += parking_lot::unpark_one(&word);
    yield();
  }
  for (Fiber* f : fibers) join_value(f);
  EXPECT_EQ(unparked.load() + timed_out.load(), kWaiters);
  EXPECT_EQ(static_cast<size_t>(unparked.load()), woken);
}

TEST_F(SchedulerTest, RequeueMovesWaitersWhoThenWakeOrTimeOutFromTheirNewAddress) {
  static int from = 0, to = 0;
  constexpr int kWaiters = 6;
  std::atomic<int> parked{0}, unparked{0}, timed_out{0};
  auto waiter = [&]() -> void* {
    parked++;
    // Two of them give up after a while: a timeout must find the node in its new bucket.
    Nanos deadline = current()->id % 3 == 0 ? monotonic_now() + 30000000 : kNoDeadline;
    auto r = parking_lot::park(&from, nullptr, nullptr, WaitReason::kTestPark, deadline);
    (r == parking_lot::ParkResult::kUnparked ? unparked : timed_out)++;
    return nullptr;
  };
  std::vector<Fiber*> fibers;
  for (int i = 0; i < kWaiters; ++i) fibers.push_back(go(&waiter));
  for (Fiber* f : fibers) {
    while (state_of(f->sched_word.load()) != FiberState::kParked) yield();
  }
  auto refuse = [](void*) { return false; };
  EXPECT_EQ(parking_lot::requeue(&from, &to, 1, SIZE_MAX, refuse, nullptr), SIZE_MAX);
  EXPECT_EQ(parking_lot::requeue(&from, &to, 1, SIZE_MAX), static_cast<size_t>(kWaiters));
  EXPECT_EQ(parking_lot::unpark_all(&from), 0u);  // nobody is left on the old address
  sleep_until(monotonic_now() + 60000000);       // let the timed ones expire in their new bucket
  size_t woken_late = parking_lot::unpark_all(&to);
  for (Fiber* f : fibers) join_value(f);
  EXPECT_EQ(unparked.load() + timed_out.load(), kWaiters);
  EXPECT_EQ(static_cast<size_t>(unparked.load()), 1 + woken_late);
  EXPECT_EQ(parking_lot::unpark_all(&to), 0u);
}

// interrupt() ends exactly the park its ticket names: a parking-lot waiter leaves its queue (so a
// later unpark finds nobody), a stale ticket does nothing, and a fiber that is not parked yet is
// not affected.
TEST_F(SchedulerTest, InterruptEndsTheTicketsParkAndDequeuesTheWaiter) {
  static int word = 0;
  std::atomic<uint32_t> seq{0};
  std::atomic<int> result{-1};
  auto body = [&]() -> void* {
    seq = park_ticket().seq;
    result = static_cast<int>(parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, kNoDeadline));
    // A second park, with the next sequence number: the old ticket must not end it.
    parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, kNoDeadline);
    return nullptr;
  };
  Fiber* f = go(&body);
  while (state_of(f->sched_word.load()) != FiberState::kParked) yield();
  const uint32_t first = seq.load();
  EXPECT_FALSE(interrupt(ParkTicket{f, first + 1}));  // a park that has not begun
  EXPECT_TRUE(interrupt(ParkTicket{f, first}));
  EXPECT_FALSE(interrupt(ParkTicket{f, first}));      // already ended
  while (result.load() < 0) yield();
  EXPECT_EQ(result.load(), static_cast<int>(parking_lot::ParkResult::kInterrupted));
  while (seq_of(f->sched_word.load()) == first || state_of(f->sched_word.load()) != FiberState::kParked) yield();
  EXPECT_FALSE(interrupt(ParkTicket{f, first}));      // stale: the second park goes on
  EXPECT_EQ(parking_lot::unpark_all(&word), 1u);      // only the second park was still queued
  join_value(f);
}

TEST_F(SchedulerTest, UnparkFiltersOnTags) {
  static int word = 0;
  std::atomic<int> woken_mask{0};
  std::vector<std::function<void*()>> bodies;
  std::vector<Fiber*> fibers;
  for (uint32_t tag : {1u, 2u, 4u}) {
    bodies.push_back([&, tag]() -> void* {
      parking_lot::park(&word, nullptr, nullptr, WaitReason::kTestPark, kNoDeadline, tag);
      woken_mask |= static_cast<int>(tag);
      return nullptr;
    });
  }
  for (auto& body : bodies) fibers.push_back(go(&body));
  for (Fiber* f : fibers) {
    while (state_of(f->sched_word.load()) != FiberState::kParked) yield();
  }
  EXPECT_EQ(parking_lot::unpark(&word, SIZE_MAX, 2u | 4u), 2u);
  while (woken_mask.load() != 6) yield();
  EXPECT_EQ(parking_lot::unpark(&word, SIZE_MAX, 1u), 1u);
  for (Fiber* f : fibers) join_value(f);
  EXPECT_EQ(woken_mask.load(), 7);
}

TEST_F(SchedulerTest, IdleCarrierStealsWork) {
  uint64_t steals_before = stats().steals;
  std::atomic<int> on_other{0};
  pid_t main_tid = gettid();
  // Each fiber yields at least 100 times, and until some fiber has run on another carrier (10 s
  // at most): on a loaded machine the idle carrier may not get a CPU before a fixed amount of work
  // is done.
  Nanos give_up = monotonic_now() + 10 * kNanosPerSecond;
  auto fn = [&]() -> void* {
    for (int i = 0; i < 100 || (on_other.load() == 0 && monotonic_now() < give_up); ++i) {
      if (gettid() != main_tid) on_other++;
      yield();
    }
    return nullptr;
  };
  std::vector<Fiber*> fibers;
  for (int i = 0; i < 64; ++i) fibers.push_back(go(&fn));
  for (Fiber* f : fibers) join_value(f);
  EXPECT_GT(stats().steals, steals_before);
  EXPECT_GT(on_other.load(), 0);
}

TEST_F(SchedulerTest, FiberTableRejectsForeignAddresses) {
  int local;
  EXPECT_EQ(FiberTable::lookup(0), nullptr);
  EXPECT_EQ(FiberTable::lookup(reinterpret_cast<uintptr_t>(&local)), nullptr);
  EXPECT_EQ(FiberTable::lookup(reinterpret_cast<uintptr_t>(current()) + 8), nullptr);
  EXPECT_EQ(FiberTable::lookup(reinterpret_cast<uintptr_t>(current())), current());
}

TEST_F(SchedulerTest, ErrnoFollowsTheFiberAcrossSwitches) {
  auto fn = []() -> void* {
    errno = 1234;
    for (int i = 0; i < 50; ++i) {
      yield();
      if (errno != 1234) return reinterpret_cast<void*>(1);
    }
    return nullptr;
  };
  auto other = []() -> void* {
    for (int i = 0; i < 50; ++i) {
      errno = 99;
      yield();
    }
    return nullptr;
  };
  Fiber* a = go(&fn);
  Fiber* b = go(&other);
  EXPECT_EQ(join_value(a), nullptr);
  join_value(b);
}

}  // namespace
}  // namespace vthread::sched
