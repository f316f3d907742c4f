#include "sched/timer_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <vector>

namespace vthread::sched {
namespace {

TEST(TimerHeapTest, PopsInDeadlineOrder) {
  std::vector<TimerNode> nodes(1000);
  std::mt19937_64 rng(42);
  TimerHeap heap;
  for (auto& n : nodes) {
    n.deadline = static_cast<Nanos>(rng() % 100000);
    ASSERT_TRUE(heap.reserve_one());
    heap.push(&n);
  }
  Nanos last = -1;
  size_t popped = 0;
  while (TimerNode* n = heap.pop()) {
    EXPECT_GE(n->deadline, last);
    EXPECT_EQ(n->heap, nullptr);
    last = n->deadline;
    ++popped;
  }
  EXPECT_EQ(popped, nodes.size());
}

TEST(TimerHeapTest, RandomInsertRemoveMatchesReference) {
  std::mt19937_64 rng(7);
  std::vector<TimerNode> nodes(500);
  std::multiset<Nanos> reference;
  TimerHeap heap;
  for (int step = 0; step < 20000; ++step) {
    TimerNode& n = nodes[rng() % nodes.size()];
    if (n.heap) {
      reference.erase(reference.find(n.deadline));
      heap.remove(&n);
      EXPECT_EQ(n.heap, nullptr);
    } else {
      n.deadline = static_cast<Nanos>(rng() % 1000);
      ASSERT_TRUE(heap.reserve_one());
      heap.push(&n);
      reference.insert(n.deadline);
    }
    ASSERT_EQ(heap.size(), reference.size());
    ASSERT_EQ(heap.earliest(), reference.empty() ? kNoDeadline : *reference.begin());
  }
}

TEST(TimerHeapTest, EmptyHeapHasNoDeadline) {
  TimerHeap heap;
  EXPECT_EQ(heap.top(), nullptr);
  EXPECT_EQ(heap.earliest(), kNoDeadline);
  EXPECT_EQ(heap.pop(), nullptr);
}

TEST(TimerHeapTest, RemovingTheLastSlotAndTheTop) {
  TimerNode a, b, c;
  a.deadline = 1;
  b.deadline = 2;
  c.deadline = 3;
  TimerHeap heap;
  for (TimerNode* n : {&a, &b, &c}) {
    ASSERT_TRUE(heap.reserve_one());
    heap.push(n);
  }
  heap.remove(&c);
  heap.remove(&a);
  EXPECT_EQ(heap.top(), &b);
  heap.remove(&b);
  EXPECT_EQ(heap.size(), 0u);
}

}  // namespace
}  // namespace vthread::sched
