#include "sched/stack_overflow.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/raw_syscall.h"
#include "sched/libc.h"
#include "sched/sched.h"

namespace vthread::sched::stack_overflow {
namespace {

// A fault this far below a stack without a guard of this size (a program-supplied stack, or a
// frame that jumped over the guard) still counts as running off that stack.
constexpr uintptr_t kBelowStackSlack = 64 * 1024;

struct sigaction g_program_action;  // what the program had installed for SIGSEGV before us

// The handler runs in a dying process on a small stack: no stdio, no allocation.
class Line {
 public:
  void text(const char* s) {
    while (*s && len_ < sizeof buf_) buf_[len_++] = *s++;
  }
  void number(uintptr_t v, unsigned base) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = "0123456789abcdef"[v % base];
      v /= base;
    } while (v);
    if (base == 16) text("0x");
    while (n && len_ < sizeof buf_) buf_[len_++] = digits[--n];
  }
  void write_out() { arch::raw_syscall(SYS_write, 2, buf_, len_); }

 private:
  char buf_[320];
  size_t len_ = 0;
};

bool overflowed(const Fiber* f, uintptr_t fault) {
  if (!f || f->is_main || !f->stack.lo) return false;
  uintptr_t lo = reinterpret_cast<uintptr_t>(f->stack.lo);
  uintptr_t reach = f->stack.guard_size > kBelowStackSlack ? f->stack.guard_size : kBelowStackSlack;
  return fault < lo && fault >= lo - reach;
}

void report(const Fiber* f, uintptr_t fault) {
  Line line;
  line.text("vthread: thread ");
  line.number(f->id, 10);
  line.text(" \"");
  char name[sizeof f->name + 1];
  memcpy(name, f->name, sizeof f->name);
  name[sizeof f->name] = '\0';
  line.text(name);
  line.text("\" overflowed its stack (");
  line.number(f->stack.size() / 1024, 10);
  line.text(" KiB at ");
  line.number(reinterpret_cast<uintptr_t>(f->stack.lo), 16);
  line.text("-");
  line.number(reinterpret_cast<uintptr_t>(f->stack.hi), 16);
  line.text("): fault at ");
  line.number(fault, 16);
  line.text(", ");
  line.number(reinterpret_cast<uintptr_t>(f->stack.lo) - fault, 10);
  line.text(" bytes below it");
  if (f->in_call) {
    line.text(", inside ");
    line.text(f->in_call);
  }
  line.text("\n");
  line.write_out();
}

void on_segv(int sig, siginfo_t* info, void* context) {
  report_if_overflowed(info);
  const struct sigaction& program = g_program_action;
  if (program.sa_flags & SA_SIGINFO) {
    program.sa_sigaction(sig, info, context);
  } else if (program.sa_handler != SIG_DFL && program.sa_handler != SIG_IGN) {
    program.sa_handler(sig);
  } else {
    // Die of this fault as without us: with the default action restored, returning re-runs the
    // faulting instruction. (Ignoring a SIGSEGV the hardware raised is undefined; Linux kills.)
    struct sigaction dfl = {};
    dfl.sa_handler = SIG_DFL;
    libc::sigaction(SIGSEGV, &dfl, nullptr);
  }
}

}  // namespace

void report_if_overflowed(const siginfo_t* info) {
  if (info->si_code <= 0) return;  // sent by a process: si_addr means nothing
  int saved_errno = errno;
  uintptr_t fault = reinterpret_cast<uintptr_t>(info->si_addr);
  const Fiber* f = current();
  if (overflowed(f, fault)) report(f, fault);
  errno = saved_errno;
}

const struct sigaction& program_action() { return g_program_action; }

void install_handler() {
  struct sigaction action = {};
  action.sa_sigaction = on_segv;
  // SA_NODEFER: a fault inside a chained program handler then kills at once rather than hanging.
  action.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  libc::sigaction(SIGSEGV, &action, &g_program_action);
}

void give_carrier_signal_stack() {
  // Even on carrier 0, whose thread may have had one of the program's: that one is now the main
  // thread's alone (shim/altstack.cc keeps it, virtually), and the program may free it.
  // The program's SIGSEGV handler runs here too, after the report, whatever stack its thread set
  // aside (shim/sigaction.cc): room for more than a report. Reserved, not committed.
  long minimum = sysconf(_SC_SIGSTKSZ);
  size_t size = 256 * 1024;
  if (minimum > 0 && static_cast<size_t>(minimum) * 4 > size) size = static_cast<size_t>(minimum) * 4;
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return;  // no report then, only the plain SIGSEGV
  stack_t alt = {};
  alt.ss_sp = mem;
  alt.ss_size = size;
  arch::raw_syscall(SYS_sigaltstack, &alt, nullptr);  // not sigaltstack(): interposed
}

}  // namespace vthread::sched::stack_overflow
