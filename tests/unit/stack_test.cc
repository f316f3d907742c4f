#include "sched/stack.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

namespace vthread::sched {
namespace {

// What the scheduler does with a stack whose fiber was reaped.
void release(Stack* s) {
  if (!StackAllocator::pool(s)) StackAllocator::unmap(s);
}

class StackTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { StackAllocator::init(256 * 1024); }
};

TEST_F(StackTest, AllocatesWritableRoundedStack) {
  Stack s;
  ASSERT_TRUE(StackAllocator::allocate(100000, 4096, &s));
  EXPECT_TRUE(s.owned);
  EXPECT_GE(s.size(), 100000u);
  EXPECT_EQ(s.size() % StackAllocator::page_size(), 0u);
  EXPECT_EQ(s.guard_size, 4096u);
  s.lo[0] = 1;
  s.hi[-1] = 2;
  EXPECT_TRUE(s.contains(s.lo));
  EXPECT_FALSE(s.contains(s.hi));
  EXPECT_TRUE(s.in_guard(s.lo - 1));
  release(&s);
  EXPECT_EQ(s.lo, nullptr);
}

TEST_F(StackTest, TouchingTheGuardFaults) {
  Stack s;
  ASSERT_TRUE(StackAllocator::allocate(64 * 1024, 4096, &s));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGSEGV, SIG_DFL);
    *(volatile char*)(s.lo - 1) = 1;
    _exit(0);  // not reached if the guard works
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  release(&s);
}

TEST_F(StackTest, DefaultSizedStacksAreReusedFromThePool) {
  Stack a;
  ASSERT_TRUE(StackAllocator::allocate(256 * 1024, StackAllocator::page_size(), &a));
  char* lo = a.lo;
  release(&a);
  Stack b;
  ASSERT_TRUE(StackAllocator::allocate(256 * 1024, StackAllocator::page_size(), &b));
  EXPECT_EQ(b.lo, lo);
  release(&b);
}

TEST_F(StackTest, PooledStackKeepsItsGuard) {
  Stack a;
  ASSERT_TRUE(StackAllocator::allocate(256 * 1024, StackAllocator::page_size(), &a));
  release(&a);
  Stack b;
  ASSERT_TRUE(StackAllocator::allocate(256 * 1024, StackAllocator::page_size(), &b));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    signal(SIGSEGV, SIG_DFL);
    *(volatile char*)(b.lo - 1) = 1;
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
  release(&b);
}

TEST_F(StackTest, WrappedUserStackIsNotOwned) {
  static char memory[32 * 1024];
  Stack s = StackAllocator::wrap(memory, sizeof memory);
  EXPECT_FALSE(s.owned);
  EXPECT_EQ(s.size(), sizeof memory);
  release(&s);  // must not unmap the program's memory
  memory[0] = 1;
}

TEST_F(StackTest, ManyStacksStayWithinTheMapCountWithGuardMarkers) {
  if (!StackAllocator::guards_are_markers()) GTEST_SKIP() << "kernel lacks MADV_GUARD_INSTALL";
  constexpr int kStacks = 40000;  // with PROT_NONE guards this needs 80k VMAs > vm.max_map_count
  std::vector<Stack> stacks(kStacks);
  for (auto& s : stacks) ASSERT_TRUE(StackAllocator::allocate(64 * 1024, 4096, &s));
  for (auto& s : stacks) release(&s);
}

}  // namespace
}  // namespace vthread::sched
