// VTHREAD_PROFILE=FILE: gperftools' CPU profiler over the program and the runtime, from the moment
// the runtime starts (the program's first pthread_create) until the process exits. Read the
// result with `google-pprof --text PROGRAM FILE` (Debian's google-perftools).
//
// libprofiler is dlopen()ed only when asked for: linking it would load it, and run its start-up
// code, in every process the library is preloaded into, most of which never profile. Its SIGPROF
// ticks interrupt whichever fiber a carrier is running, and its unwinder walks that fiber's stack,
// so samples are attributed to the program's threads as they would be natively.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "shim/settings.h"

namespace vthread::shim {
namespace {

void (*g_profiler_stop)();

void stop_profiler_at_exit() { g_profiler_stop(); }

}  // namespace

void start_profiler_if_asked() {
  const char* path = getenv("VTHREAD_PROFILE");
  if (!path || !*path) return;
  void* lib = dlopen("libprofiler.so.0", RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    fprintf(stderr, "vthread: VTHREAD_PROFILE is set but gperftools' libprofiler.so.0 cannot be loaded (%s); not profiling\n",
            dlerror());
    return;
  }
  auto start = reinterpret_cast<int (*)(const char*)>(dlsym(lib, "ProfilerStart"));
  g_profiler_stop = reinterpret_cast<void (*)()>(dlsym(lib, "ProfilerStop"));
  if (!start || !g_profiler_stop || !start(path)) {
    fprintf(stderr, "vthread: VTHREAD_PROFILE='%s': the CPU profiler could not start writing there; not profiling\n", path);
    return;
  }
  atexit(stop_profiler_at_exit);
}

}  // namespace vthread::shim
