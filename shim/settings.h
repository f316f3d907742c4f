// Settings from the environment (VTHREAD_*), read once when the runtime starts.
#ifndef VTHREAD_SHIM_SETTINGS_H_
#define VTHREAD_SHIM_SETTINGS_H_

#include <stddef.h>

#include "sched/sched.h"

namespace vthread::shim {

// Parses the VTHREAD_* variables. A bad value is reported with one line on stderr that says what
// is used instead. `default_stack_size` is what glibc would use (RLIMIT_STACK based).
sched::Config read_settings(size_t default_stack_size);

// Starts gperftools' CPU profiler if VTHREAD_PROFILE names an output file (profiler.cc). Called
// once the runtime has started.
void start_profiler_if_asked();

// Parses a size such as "65536", "64k", "64KiB", "8M", "1g". Returns false if malformed.
bool parse_size(const char* text, size_t* out);

}  // namespace vthread::shim

#endif  // VTHREAD_SHIM_SETTINGS_H_
