// pthread_getschedparam / pthread_setschedparam / pthread_setschedprio for fibers (glibc's would
// read a fiber's handle as its own thread descriptor), and the policy a new thread starts with.
//
// Validation is the kernel's sched_setscheduler/sched_setparam, which glibc passes on: EINVAL for
// an unknown policy (SCHED_RESET_ON_FORK may be or'ed in), or a priority outside the policy's
// sched_get_priority_min..max (0 for the non-real-time ones, 1..99 for SCHED_FIFO and SCHED_RR).
// The kernel's EPERM for real-time policies is deliberately not mirrored (see sched_attrs.h). A
// change moves a fiber that waits on a run queue to its new level; a running or parked one takes it
// when it is next queued. Handles that are not fibers go to glibc.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/sched_attrs.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

bool valid(int policy, int priority) {
  policy &= ~SCHED_RESET_ON_FORK;
  if (policy != SCHED_OTHER && policy != SCHED_FIFO && policy != SCHED_RR && policy != SCHED_BATCH &&
      policy != SCHED_IDLE) {
    return false;
  }
  return priority >= sched_get_priority_min(policy) && priority <= sched_get_priority_max(policy);
}

// The policy and priority of the calling thread, for a thread it creates to inherit.
void creator_sched(int* policy, int* priority) {
  sched::Fiber* self = sched::current();
  if (!self) {
    struct sched_param param = {0};
    if (libc::pthread_getschedparam(libc::pthread_self(), policy, &param) != 0) *policy = SCHED_OTHER;
    *priority = param.sched_priority;
    return;
  }
  with_live_state(self, [&](ThreadState* state) {
    *policy = state->sched_policy;
    *priority = state->sched_priority;
    return 0;
  });
}

}  // namespace

int run_queue_level(int policy, int priority) {
  switch (policy & ~SCHED_RESET_ON_FORK) {
    case SCHED_IDLE:
      return 0;
    case SCHED_FIFO:
    case SCHED_RR: {
      constexpr int kRealTimeLevels = sched::kPriorityLevels - sched::kDefaultPriority - 1;
      return sched::kDefaultPriority + 1 + (priority - 1) * kRealTimeLevels / 99;
    }
    default:
      return sched::kDefaultPriority;
  }
}

void adopt_main_sched(sched::Fiber* main, ThreadState* state) {
  struct sched_param param;
  if (libc::pthread_getschedparam(libc::pthread_self(), &state->sched_policy, &param) != 0) return;
  state->sched_priority = param.sched_priority;
  sched::set_priority(main, run_queue_level(state->sched_policy, state->sched_priority));
}

int init_sched_attrs(const pthread_attr_t* attr, ThreadState* child, int* level) {
  int inherit = PTHREAD_INHERIT_SCHED;
  pthread_attr_getinheritsched(attr, &inherit);
  if (inherit == PTHREAD_EXPLICIT_SCHED) {
    struct sched_param param;
    pthread_attr_getschedpolicy(attr, &child->sched_policy);
    pthread_attr_getschedparam(attr, &param);
    // glibc's pthread_create checks this itself: the attribute setters check each value alone.
    if (!valid(child->sched_policy, param.sched_priority)) return EINVAL;
    child->sched_priority = param.sched_priority;
  } else {
    creator_sched(&child->sched_policy, &child->sched_priority);
  }
  *level = run_queue_level(child->sched_policy, child->sched_priority);
  return init_affinity(attr, child);
}

}  // namespace vthread::shim

namespace shim = vthread::shim;
namespace sched = vthread::sched;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_getschedparam(pthread_t thread, int* policy, struct sched_param* param) {
  ShimEntry entry("pthread_getschedparam");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_getschedparam(thread, policy, param);
  return shim::with_live_state(fiber, [&](shim::ThreadState* state) {
    *policy = state->sched_policy;
    param->sched_priority = state->sched_priority;
    return 0;
  });
}

int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param* param) {
  ShimEntry entry("pthread_setschedparam");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_setschedparam(thread, policy, param);
  return shim::with_live_state(fiber, [&](shim::ThreadState* state) {
    if (!param || !shim::valid(policy, param->sched_priority)) return EINVAL;
    state->sched_policy = policy;
    state->sched_priority = param->sched_priority;
    sched::set_priority(fiber, shim::run_queue_level(policy, param->sched_priority));
    return 0;
  });
}

int pthread_setschedprio(pthread_t thread, int priority) {
  ShimEntry entry("pthread_setschedprio");
  sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return shim::reaped_fiber(thread) ? ESRCH : libc::pthread_setschedprio(thread, priority);
  return shim::with_live_state(fiber, [&](shim::ThreadState* state) {
    if (!shim::valid(state->sched_policy, priority)) return EINVAL;
    state->sched_priority = priority;
    sched::set_priority(fiber, shim::run_queue_level(state->sched_policy, priority));
    return 0;
  });
}

}  // extern "C"
