#include "sched/run_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace vthread::sched {
namespace {

std::vector<Fiber> make_fibers(size_t n) {
  std::vector<Fiber> fibers(n);
  for (size_t i = 0; i < n; ++i) {
    fibers[i].id = i;
    fibers[i].next_priority = kDefaultPriority;
  }
  return fibers;
}

TEST(RunQueueTest, EmptyQueuePopsNothing) {
  RunQueue q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.pop_highest(), nullptr);
  EXPECT_EQ(q.highest_level(), -1);
}

TEST(RunQueueTest, FifoWithinALevel) {
  auto f = make_fibers(5);
  RunQueue q;
  for (auto& fiber : f) q.push_back(&fiber);
  EXPECT_EQ(q.size(), 5u);
  for (auto& fiber : f) EXPECT_EQ(q.pop_highest(), &fiber);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueueTest, HighestPriorityFirstAcrossAllLevels) {
  auto f = make_fibers(kPriorityLevels);
  RunQueue q;
  // Push in a scrambled order; expect strictly descending priority out.
  for (int i = 0; i < kPriorityLevels; ++i) {
    int level = (i * 7) % kPriorityLevels;
    f[i].next_priority = static_cast<uint8_t>(level);
    q.push_back(&f[i]);
  }
  for (int expected = kPriorityLevels - 1; expected >= 0; --expected) {
    ASSERT_EQ(q.highest_level(), expected);
    Fiber* got = q.pop_highest();
    ASSERT_NE(got, nullptr);
    EXPECT_EQ(got->priority, expected);
  }
  EXPECT_TRUE(q.empty());
}

TEST(RunQueueTest, PushFrontRunsNextAmongPeers) {
  auto f = make_fibers(3);
  RunQueue q;
  q.push_back(&f[0]);
  q.push_back(&f[1]);
  q.push_front(&f[2]);
  EXPECT_EQ(q.pop_highest(), &f[2]);
  EXPECT_EQ(q.pop_highest(), &f[0]);
  EXPECT_EQ(q.pop_highest(), &f[1]);
}

TEST(RunQueueTest, RemoveFromMiddleHeadAndTail) {
  auto f = make_fibers(5);
  RunQueue q;
  for (auto& fiber : f) q.push_back(&fiber);
  q.remove(&f[2]);
  q.remove(&f[0]);
  q.remove(&f[4]);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.pop_highest(), &f[1]);
  EXPECT_EQ(q.pop_highest(), &f[3]);
  EXPECT_TRUE(q.empty());
}

TEST(RunQueueTest, RemovingTheLastFiberOfALevelClearsItsBit) {
  auto f = make_fibers(2);
  f[0].next_priority = 30;
  f[1].next_priority = 3;
  RunQueue q;
  q.push_back(&f[0]);
  q.push_back(&f[1]);
  q.remove(&f[0]);
  EXPECT_EQ(q.highest_level(), 3);
}

TEST(RunQueueTest, StealHalfTakesHighestFirstAndRoundsUp) {
  auto f = make_fibers(7);
  for (int i = 0; i < 7; ++i) f[i].next_priority = static_cast<uint8_t>(i);
  RunQueue victim, thief;
  for (auto& fiber : f) victim.push_back(&fiber);
  EXPECT_EQ(victim.steal_half_into(&thief), 4u);
  EXPECT_EQ(victim.size(), 3u);
  EXPECT_EQ(thief.size(), 4u);
  EXPECT_EQ(thief.highest_level(), 6);
  EXPECT_EQ(victim.highest_level(), 2);
}

// A fiber is queued at the level it asks for when it is pushed, and records which queue holds it,
// which is what set_priority() relies on to move a queued fiber.
TEST(RunQueueTest, PushTakesTheRequestedLevelAndRecordsTheQueue) {
  auto f = make_fibers(2);
  RunQueue q;
  q.push_back(&f[0]);
  q.push_back(&f[1]);
  EXPECT_EQ(f[0].rq_owner.load(), &q);
  f[1].next_priority = 25;
  EXPECT_EQ(q.highest_level(), kDefaultPriority);  // queued fibers keep their level until re-pushed
  q.remove(&f[1]);
  EXPECT_EQ(f[1].rq_owner.load(), nullptr);
  q.push_back(&f[1]);
  EXPECT_EQ(f[1].priority, 25);
  EXPECT_EQ(q.pop_highest(), &f[1]);
  EXPECT_EQ(f[1].rq_owner.load(), nullptr);
  EXPECT_EQ(q.pop_highest(), &f[0]);
}

TEST(RunQueueTest, StealFromSingleFiberQueueTakesIt) {
  auto f = make_fibers(1);
  RunQueue victim, thief;
  victim.push_back(&f[0]);
  EXPECT_EQ(victim.steal_half_into(&thief), 1u);
  EXPECT_TRUE(victim.empty());
  EXPECT_EQ(thief.pop_highest(), &f[0]);
}

}  // namespace
}  // namespace vthread::sched
