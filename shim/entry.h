// The single place where calls from the program enter the runtime. Every interposed function
// begins with
//
//     ShimEntry entry("pthread_join");
//
// which finds the calling fiber once (nullptr: the caller is not a fiber — the runtime has not
// started, or the thread is one glibc made behind our back) and records, for the duration of the
// call, which interposed function the fiber is in, so that dumps and debuggers can show it.
// Tracing and call statistics belong here too; a preemption deferred by a tick is taken here. Signals pthread_kill
// sent to the fiber while it ran are raised here, and a due asynchronous cancel is acted on here
// (see cancel.h).
#ifndef VTHREAD_SHIM_ENTRY_H_
#define VTHREAD_SHIM_ENTRY_H_

#include "sched/preempt.h"
#include "sched/sched.h"
#include "shim/cancel.h"

namespace vthread::shim {

class ShimEntry {
 public:
  explicit ShimEntry(const char* function) : fiber_(sched::current()) {
    if (fiber_) {
      outer_call_ = fiber_->in_call;
      // A tick that found the fiber at an unsafe point is taken here, at the outermost entry only: an
      // inner one may be app code the shim runs with glibc or ld.so state held (dlopen constructors).
      if (!outer_call_ && fiber_->preempt_pending.load(std::memory_order_relaxed)) {
        sched::preempt::take_pending(fiber_);
      }
      fiber_->in_call = function;
      // Pending signals too, at the outermost entry only, for the same reason: their handlers run
      // as program code, preemptible.
      if (!outer_call_ && fiber_->pending_signals.load(std::memory_order_relaxed)) {
        sched::deliver_pending_signals(fiber_);
      }
      async_cancellation_point(fiber_);
    }
  }
  ~ShimEntry() {
    if (fiber_) fiber_->in_call = outer_call_;
  }
  ShimEntry(const ShimEntry&) = delete;
  ShimEntry& operator=(const ShimEntry&) = delete;

  // The calling fiber, or nullptr if the caller is not one.
  sched::Fiber* fiber() const { return fiber_; }
  // What the fiber was in before this call (for restoring it when the call is left by unwinding).
  const char* outer_call() const { return outer_call_; }

 private:
  sched::Fiber* fiber_;
  const char* outer_call_ = nullptr;
};

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_ENTRY_H_
