// pthread_getschedparam / pthread_setschedparam / pthread_setschedprio for fibers (glibc's would
// read a fiber's handle as its own thread descriptor). The policy and priority are validated as
// glibc does and kept per thread, so programs read back what they set; the priority does not yet
// move the fiber between run-queue levels. Handles that are not fibers go to glibc.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "sched/libc.h"
#include "shim/entry.h"
#include "shim/thread_state.h"

namespace shim = vthread::shim;
namespace libc = vthread::libc;
using vthread::shim::ShimEntry;

namespace {

bool valid(int policy, int priority) {
  if (policy != SCHED_OTHER && policy != SCHED_FIFO && policy != SCHED_RR && policy != SCHED_BATCH &&
      policy != SCHED_IDLE) {
    return false;
  }
  return priority >= sched_get_priority_min(policy) && priority <= sched_get_priority_max(policy);
}

shim::ThreadState* state_of(pthread_t thread) {
  vthread::sched::Fiber* fiber = shim::fiber_of(thread);
  if (!fiber) return nullptr;
  if (!fiber->user_data) fiber->user_data = calloc(1, sizeof(shim::ThreadState));
  return static_cast<shim::ThreadState*>(fiber->user_data);
}

}  // namespace

extern "C" {

int pthread_getschedparam(pthread_t thread, int* policy, struct sched_param* param) {
  ShimEntry entry("pthread_getschedparam");
  if (!shim::fiber_of(thread)) return libc::pthread_getschedparam(thread, policy, param);
  shim::ThreadState* state = state_of(thread);
  if (!state) return ENOMEM;
  *policy = state->sched_policy;
  param->sched_priority = state->sched_priority;
  return 0;
}

int pthread_setschedparam(pthread_t thread, int policy, const struct sched_param* param) {
  ShimEntry entry("pthread_setschedparam");
  if (!shim::fiber_of(thread)) return libc::pthread_setschedparam(thread, policy, param);
  if (!valid(policy, param->sched_priority)) return EINVAL;
  shim::ThreadState* state = state_of(thread);
  if (!state) return ENOMEM;
  state->sched_policy = policy;
  state->sched_priority = param->sched_priority;
  return 0;
}

int pthread_setschedprio(pthread_t thread, int priority) {
  ShimEntry entry("pthread_setschedprio");
  if (!shim::fiber_of(thread)) return libc::pthread_setschedprio(thread, priority);
  shim::ThreadState* state = state_of(thread);
  if (!state) return ENOMEM;
  if (!valid(state->sched_policy, priority)) return EINVAL;
  state->sched_priority = priority;
  return 0;
}

}  // extern "C"
