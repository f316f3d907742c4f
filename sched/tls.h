// Per-fiber thread-local storage: every fiber gets its own glibc thread control block (TCB) and
// static TLS block, placed at the top of its stack, and the switch loads it into the thread
// pointer. To the program and to glibc each fiber is then a thread of its own: __thread and
// thread_local variables, errno, C++ exception state, stdio lock ownership, locale and resolver
// state all follow the fiber from carrier to carrier. See tls.cc for the layout and why.
//
// If the C library's layout is not one this file knows (or VTHREAD_TLS=carrier), fibers share
// their carrier's TLS instead: the runtime then saves and restores errno across switches, and the
// program's own thread-local variables are per carrier, not per thread.
#ifndef VTHREAD_SCHED_TLS_H_
#define VTHREAD_SCHED_TLS_H_

#include <stddef.h>
#include <stdint.h>

#include "sched/stack.h"

namespace vthread::sched::tls {

// Decides the mode. `want_per_fiber` false forces carrier-shared TLS. Otherwise checks the glibc
// version and resolves ld.so's TLS allocator; check_probe() then checks the TCB offsets this file
// relies on against a thread glibc created. Prints one line saying what is used if per-fiber TLS
// cannot be.
void init(bool want_per_fiber);

// Run on a thread glibc created, after init(): checks its TCB against the known layout.
struct GlibcThreadProbe {
  bool layout_ok;
};
void probe_glibc_thread(GlibcThreadProbe* out);
// Falls back to carrier-shared TLS if the probe failed.
void check_probe(const GlibcThreadProbe& probe);

bool per_fiber();

// Places a TCB and static TLS block at the top of `stack` (or re-initialises the one a pooled stack
// still carries), for a thread whose fake kernel tid is `fake_tid`. Returns the thread pointer, or
// nullptr if memory ran out or the stack is too small (`*too_small` then tells which). The usable
// stack then ends at stack_top(*stack).
char* attach(Stack* stack, int fake_tid, bool* too_small);
char* stack_top(const Stack& stack);

// Frees the TCB at `tp` (its DTV and dynamically allocated TLS) before its memory goes away. The C
// library's own per-thread caches (malloc's tcache and arena) are kept for the next new TCB, since
// glibc offers no way to release them from outside the thread.
void destroy(char* tp);

// Per-thread set-up glibc's start_thread does, run by a fiber on its own TCB before anything else:
// ctype tables, resolver state, locale, errno.
void enter_thread();

// Runs the thread's C++ thread_local destructors (glibc's __call_tls_dtors), in glibc's place in
// the exit sequence. Per-fiber mode only.
void run_thread_local_destructors();

// Fake kernel tids: unique per TCB, above any real tid (PID_MAX_LIMIT is 2^22) and below
// FUTEX_OWNER_DIED. ld.so's recursive locks compare them to tell owners apart.
constexpr int kFakeTidBase = 0x20000000;

// After the program dlopen()ed a library: copies the initial image of each newly loaded module
// that uses static TLS (initial-exec) into every TCB made here, since ld.so initialises it only in
// threads glibc created. `visit_tcbs(fn, arg)` must call fn(tp, arg) for every TCB made here.
void after_dlopen(void (*visit_tcbs)(void (*fn)(char* tp, void* arg), void* arg));

// In a fork child: resets the locks here, and takes the forking fiber's TCB (`self_tp`, may be
// null) back off glibc's thread list, where glibc's fork put it as the child's only thread; it
// stays ours to recycle.
void reset_after_fork(char* self_tp);

}  // namespace vthread::sched::tls

#endif  // VTHREAD_SCHED_TLS_H_
