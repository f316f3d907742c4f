// syscall(SYS_futex, ...) from the program (GLib, abseil, libstdc++'s atomic waits and static-local
// guards, LLVM's OpenMP runtime): futex operations of fibers are emulated on the parking lot, so a
// waiting fiber parks instead of blocking its carrier. Priority-inheritance futexes, other system
// calls, and waits by threads that are not fibers go to the kernel (those waiters are counted, so
// that a fiber's wake also reaches them there).
//
// Futexes without FUTEX_PRIVATE_FLAG may live in memory shared with another process, whose wakes
// only the kernel sees. Debian's libstdc++ uses them even for std::atomic::wait, so they are
// emulated too, with two precautions: their wakes also go to the kernel, and a fiber waiting on one
// re-checks the word every kSharedRecheck (a spurious wake-up, which futex(2) allows).
//
// A waker that bypasses syscall() (an inline `syscall` instruction) cannot wake an emulated waiter;
// such code (libgomp, glibc-internal locks) does not share futex words with program code here.
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>

#include <algorithm>
#include <atomic>

#include "arch/raw_syscall.h"
#include "sched/handoff.h"
#include "sched/parking_lot.h"
#include "shim/entry.h"
#include "shim/sync.h"
#include "shim/thread_state.h"
#include "shim/time_convert.h"

namespace vthread::shim {
namespace {

namespace parking_lot = sched::parking_lot;

std::atomic<int> g_kernel_waiters{0};

struct FutexCall {
  int* uaddr;
  int op;
  int val;
  const struct timespec* timeout;  // also val2, for requeue and wake-op
  int* uaddr2;
  uint32_t val3;

  int command() const { return op & FUTEX_CMD_MASK; }
  bool is_private() const { return op & FUTEX_PRIVATE_FLAG; }
  long val2() const { return static_cast<long>(reinterpret_cast<uintptr_t>(timeout)); }
};

// Wakes kernel waiters the parking lot did not cover: in-process ones if any may exist, and, for a
// shared futex, waiters in other processes.
long kernel_wake(const FutexCall& c, int* uaddr, long count) {
  if (count <= 0) return 0;
  if (c.is_private() && g_kernel_waiters.load(std::memory_order_seq_cst) == 0) return 0;
  long r = arch::raw_syscall(SYS_futex, uaddr, c.is_private() ? FUTEX_WAKE_PRIVATE : FUTEX_WAKE,
                             count > INT_MAX ? INT_MAX : count);
  return r > 0 ? r : 0;
}

size_t limit_of(long n) { return n < 0 ? 0 : static_cast<size_t>(n); }

// Returns the result of the operation as the kernel would (>= 0, or -errno).
long emulated_wait(const FutexCall& c, uint32_t bitset, bool absolute) {
  if (bitset == 0) return -EINVAL;
  sched::Nanos deadline = sched::kNoDeadline;
  if (c.timeout) {
    if (!valid_timespec(*c.timeout) || c.timeout->tv_sec < 0) return -EINVAL;
    if (absolute) {
      deadline = monotonic_deadline((c.op & FUTEX_CLOCK_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC, *c.timeout);
    } else {
      deadline = sched::deadline_after(sched::monotonic_now(), sched::timespec_to_nanos(*c.timeout));
    }
  }
  sched::Nanos park_until = deadline;
  if (!c.is_private()) {
    park_until = std::min(deadline, sched::deadline_after(sched::monotonic_now(), kSharedRecheck));
  }
  // Only fibers get here, so there is no kernel sleeper to count.
  unsigned no_foreign_waiters = 0;
  for (;;) {
    switch (wait_on_word_or_signal(c.uaddr, c.val, &no_foreign_waiters, sched::WaitReason::kFutex, park_until, bitset)) {
      case WaitResult::kWoken: return 0;
      case WaitResult::kTimedOut: return park_until < deadline ? 0 : -ETIMEDOUT;
      case WaitResult::kValueChanged: return -EAGAIN;
      case WaitResult::kInterrupted: break;
    }
    // A signal's handler ran (glibc's syscall() is no cancellation point): the kernel restarts an
    // untimed wait (-ERESTARTSYS) if the handler asked for SA_RESTART, and fails it with EINTR
    // otherwise, and a timed one (-ERESTART_RESTARTBLOCK) always.
    auto* state = static_cast<ThreadState*>(sched::current()->user_data);
    if (c.timeout || !state || !state->handler_restarts) return -EINTR;
  }
}

// FUTEX_WAKE_OP's update of *uaddr2; returns the old value, or sets *bad for an unknown operation.
int apply_wake_op(int* word, uint32_t encoded, bool* bad) {
  int op = (encoded >> 28) & 0xf;
  int oparg = (encoded >> 12) & 0xfff;
  if (oparg & 0x800) oparg |= ~0xfff;  // sign-extend the 12-bit argument
  if (op & FUTEX_OP_OPARG_SHIFT) {
    op &= ~FUTEX_OP_OPARG_SHIFT;
    oparg = 1 << (oparg & 31);
  }
  int old = __atomic_load_n(word, __ATOMIC_RELAXED);
  for (;;) {
    int desired;
    switch (op) {
      case FUTEX_OP_SET: desired = oparg; break;
      case FUTEX_OP_ADD: desired = old + oparg; break;
      case FUTEX_OP_OR: desired = old | oparg; break;
      case FUTEX_OP_ANDN: desired = old & ~oparg; break;
      case FUTEX_OP_XOR: desired = old ^ oparg; break;
      default: *bad = true; return 0;
    }
    if (__atomic_compare_exchange_n(word, &old, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return old;
  }
}

bool wake_op_condition(int old, uint32_t encoded, bool* bad) {
  int cmparg = encoded & 0xfff;
  if (cmparg & 0x800) cmparg |= ~0xfff;
  switch ((encoded >> 24) & 0xf) {
    case FUTEX_OP_CMP_EQ: return old == cmparg;
    case FUTEX_OP_CMP_NE: return old != cmparg;
    case FUTEX_OP_CMP_LT: return old < cmparg;
    case FUTEX_OP_CMP_LE: return old <= cmparg;
    case FUTEX_OP_CMP_GT: return old > cmparg;
    case FUTEX_OP_CMP_GE: return old >= cmparg;
  }
  *bad = true;
  return false;
}

bool requeue_precondition(void* call) {
  auto* c = static_cast<const FutexCall*>(call);
  return static_cast<uint32_t>(__atomic_load_n(c->uaddr, __ATOMIC_SEQ_CST)) == c->val3;
}

// Emulates `c` for a fiber. Returns false if the operation must go to the kernel.
bool emulate(const FutexCall& c, long* result) {
  bool wake_family = c.command() == FUTEX_WAKE || c.command() == FUTEX_WAKE_BITSET || c.command() == FUTEX_REQUEUE ||
                     c.command() == FUTEX_CMP_REQUEUE || c.command() == FUTEX_WAKE_OP;
  if ((c.op & FUTEX_CLOCK_REALTIME) && wake_family) {
    *result = -ENOSYS;  // as the kernel: the clock flag only means something to the waits
    return true;
  }
  switch (c.command()) {
    case FUTEX_WAIT:
      *result = emulated_wait(c, FUTEX_BITSET_MATCH_ANY, false);
      return true;
    case FUTEX_WAIT_BITSET:
      *result = emulated_wait(c, c.val3, true);
      return true;
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET: {
      uint32_t bitset = c.command() == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : c.val3;
      if (bitset == 0) {
        *result = -EINVAL;
        return true;
      }
      long woken = static_cast<long>(parking_lot::unpark(c.uaddr, limit_of(c.val), bitset));
      *result = woken + kernel_wake(c, c.uaddr, c.val - woken);
      return true;
    }
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE: {
      if (!c.is_private()) return false;  // waiters in other processes must move too: the kernel's
      bool compare = c.command() == FUTEX_CMP_REQUEUE;
      size_t moved = parking_lot::requeue(c.uaddr, c.uaddr2, limit_of(c.val), limit_of(c.val2()),
                                          compare ? requeue_precondition : nullptr,
                                          const_cast<FutexCall*>(&c));
      *result = moved == SIZE_MAX ? -EAGAIN : static_cast<long>(moved) + kernel_wake(c, c.uaddr, c.val);
      return true;
    }
    case FUTEX_WAKE_OP: {
      if (!c.is_private()) return false;
      bool bad = false;
      int old = apply_wake_op(c.uaddr2, c.val3, &bad);
      bool wake_second = !bad && wake_op_condition(old, c.val3, &bad);
      if (bad) {
        *result = -ENOSYS;
        return true;
      }
      long woken = static_cast<long>(parking_lot::unpark(c.uaddr, limit_of(c.val)));
      woken += kernel_wake(c, c.uaddr, c.val);
      if (wake_second) {
        woken += static_cast<long>(parking_lot::unpark(c.uaddr2, limit_of(c.val2())));
        woken += kernel_wake(c, c.uaddr2, c.val2());
      }
      *result = woken;
      return true;
    }
  }
  return false;  // PI futexes, FUTEX_WAIT_REQUEUE_PI, ...: the kernel's
}

bool is_wait(int command) {
  return command == FUTEX_WAIT || command == FUTEX_WAIT_BITSET || command == FUTEX_LOCK_PI ||
         command == FUTEX_LOCK_PI2 || command == FUTEX_WAIT_REQUEUE_PI;
}

long to_libc_result(long r) {
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

}  // namespace
}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;

extern "C" long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& arg : a) arg = va_arg(ap, long);  // as glibc's syscall(): always six arguments
  va_end(ap);
  if (number != SYS_futex) {
    return shim::to_libc_result(vthread::arch::raw_syscall6(number, a[0], a[1], a[2], a[3], a[4], a[5]));
  }
  shim::ShimEntry entry("syscall(SYS_futex)");
  shim::FutexCall call{reinterpret_cast<int*>(a[0]), static_cast<int>(a[1]), static_cast<int>(a[2]),
                       reinterpret_cast<const struct timespec*>(a[3]), reinterpret_cast<int*>(a[4]),
                       static_cast<uint32_t>(a[5])};
  long result;
  bool waits = shim::is_wait(call.command());
  if ((entry.fiber() || !waits) && shim::emulate(call, &result)) return shim::to_libc_result(result);
  // To the kernel. A thread that is not a fiber waiting here is counted so fibers' wakes reach it;
  // one that wakes here also wakes fibers parked on the same words (spurious wakes are allowed).
  if (waits) shim::g_kernel_waiters.fetch_add(1, std::memory_order_seq_cst);
  // A fiber's futex call that reaches the kernel (priority inheritance) may block its carrier.
  if (entry.fiber()) sched::enter_blocking();
  result = vthread::arch::raw_syscall6(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (entry.fiber()) sched::exit_blocking();
  if (waits) {
    shim::g_kernel_waiters.fetch_sub(1, std::memory_order_seq_cst);
  } else if (result >= 0) {
    // A shared requeue or wake-op done by the kernel: fibers parked on either word re-check.
    sched::parking_lot::unpark_all(call.uaddr);
    if (call.uaddr2) sched::parking_lot::unpark_all(call.uaddr2);
  }
  return shim::to_libc_result(result);
}
