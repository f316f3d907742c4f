// Built with -fexceptions (see unwind_guard.h). The landing pad the compiler makes for the cleanup
// calls __gcc_personality_v0 and _Unwind_Resume, which unwind_link.cc forwards to libgcc_s.
#include "shim/unwind_guard.h"

struct guard {
  void (*on_unwind)(void*);
  void* arg;
  int armed;
};

static void run_guard(struct guard* g) {
  if (g->armed) g->on_unwind(g->arg);
}

void vthread_call_with_unwind_cleanup(void (*fn)(void), void (*on_unwind)(void*), void* arg) {
  struct guard g __attribute__((cleanup(run_guard))) = {on_unwind, arg, 1};
  fn();
  g.armed = 0;
}
