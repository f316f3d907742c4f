#include "shim/sync.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>

#include "arch/raw_syscall.h"
#include "shim/cancel.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

struct WordAndValue {
  int* word;
  int expected;
};

bool word_still_expected(void* arg) {
  auto* w = static_cast<WordAndValue*>(arg);
  return __atomic_load_n(w->word, __ATOMIC_SEQ_CST) == w->expected;
}

}  // namespace

WaitResult wait_on_word(int* word, int expected, unsigned* foreign_waiters, sched::WaitReason reason,
                        sched::Nanos deadline, uint32_t tag) {
  if (sched::current()) {
    WordAndValue arg{word, expected};
    switch (sched::parking_lot::park(word, word_still_expected, &arg, reason, deadline, tag)) {
      case sched::parking_lot::ParkResult::kUnparked: return WaitResult::kWoken;
      case sched::parking_lot::ParkResult::kTimedOut: return WaitResult::kTimedOut;
      case sched::parking_lot::ParkResult::kInvalid: return WaitResult::kValueChanged;
      case sched::parking_lot::ParkResult::kInterrupted: return WaitResult::kInterrupted;
    }
  }
  // Not a fiber: sleep in the kernel on the same word.
  __atomic_fetch_add(foreign_waiters, 1, __ATOMIC_SEQ_CST);
  struct timespec timeout;
  const struct timespec* timeout_ptr = nullptr;
  if (deadline != sched::kNoDeadline) {
    sched::Nanos left = deadline - sched::monotonic_now();
    timeout = sched::nanos_to_timespec(left > 0 ? left : 0);
    timeout_ptr = &timeout;
  }
  long r = arch::raw_syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout_ptr);
  __atomic_fetch_sub(foreign_waiters, 1, __ATOMIC_SEQ_CST);
  if (r == -ETIMEDOUT) return WaitResult::kTimedOut;
  return r == -EAGAIN ? WaitResult::kValueChanged : WaitResult::kWoken;
}

WaitResult wait_on_word_or_signal(int* word, int expected, unsigned* foreign_waiters, sched::WaitReason reason,
                                  sched::Nanos deadline, uint32_t tag) {
  sched::Fiber* self = sched::current();
  if (!self) return wait_on_word(word, expected, foreign_waiters, reason, deadline, tag);
  WaitResult result = WaitResult::kInterrupted;  // if a signal was pending before the park
  park_interruptibly(
      self,
      [&] {
        result = wait_on_word(word, expected, foreign_waiters, reason, deadline, tag);
        return result == WaitResult::kInterrupted;
      },
      /*cancellable=*/false);
  return result;
}

bool wake_word_one(int* word, const unsigned* foreign_waiters) {
  if (sched::parking_lot::unpark_one(word)) return true;
  if (__atomic_load_n(foreign_waiters, __ATOMIC_SEQ_CST)) arch::raw_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1);
  return false;
}

void wake_word_all(int* word, const unsigned* foreign_waiters) {
  sched::parking_lot::unpark_all(word);
  if (__atomic_load_n(foreign_waiters, __ATOMIC_SEQ_CST)) {
    arch::raw_syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX);
  }
}

int owner_id() {
  if (sched::Fiber* self = sched::current()) {
    if (self->is_main) return main_fiber_tid();
    return sched::fake_tid(self);
  }
  return static_cast<int>(arch::raw_syscall(SYS_gettid));
}

sched::Fiber* fiber_of_owner_id(int id) {
  if (id == main_fiber_tid()) return sched::main_fiber();
  return sched::fiber_of_fake_tid(id);
}

}  // namespace vthread::shim
