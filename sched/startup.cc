// Start-up and fork: the runtime's beginning, and its new beginning in the child of a fork().
//
// The runtime starts when the program creates its first thread (or otherwise needs a fiber: the
// shim decides). The flow that starts it becomes the main fiber, on carrier 0, the kernel thread
// it already runs on; the other carriers are kernel threads made with the real pthread_create.
// Until then nothing here has run, and a program that never creates a thread pays nothing.
//
// A fork child has one kernel thread, the one that forked; after_fork_in_child() rebuilds the
// runtime around it (see there).
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>

#include "arch/raw_syscall.h"
#include "arch/thread_pointer.h"
#include "sched/carrier.h"
#include "sched/cpu_time.h"
#include "sched/handoff.h"
#include "sched/libc.h"
#include "sched/parking_lot.h"
#include "sched/preempt.h"
#include "sched/sched.h"
#include "sched/stack_overflow.h"
#include "sched/tls.h"

namespace vthread::sched {

namespace {

constexpr size_t kCarrier0LoopStack = 256 * 1024;
constexpr int kMaxCarriers = 1024;

// The fake tid of carrier 0's loop TCB; fibers' are kFakeTidBase + their table index (< 2^22).
constexpr int kCarrier0LoopTid = tls::kFakeTidBase + (1 << 28) - 1;

std::atomic<bool> g_started{false};
Spinlock g_start_lock;
Fiber* g_main_fiber = nullptr;
bool g_main_fiber_reaped = false;

}  // namespace

static void carrier0_loop_entry(void* carrier) {
  auto* c = static_cast<Carrier*>(carrier);
  if (c->loop_tp) {
    tls::enter_thread();
    carrier_local()->carrier = c;
  }
  carrier_loop(c);
}

static void* carrier_thread_main(void* carrier) {
  auto* c = static_cast<Carrier*>(carrier);
  c->tid = static_cast<pid_t>(arch::raw_syscall(SYS_gettid));
  preempt::unblock_tick_signal();
  c->applied_sigmask = kernel_signal_mask();  // inherited from the thread that started the runtime
  if (tls::per_fiber()) c->loop_tp = arch::thread_pointer();
  carrier_local()->carrier = c;
  carrier_local()->current = nullptr;
  if (!arch::context_prepare_current(&c->loop_context)) die("out of memory for a carrier context");
  stack_overflow::give_carrier_signal_stack();
  carrier_loop(c);
}

void start_carrier_thread(Carrier* c) {
  pthread_t thread;
  if (libc::pthread_create(&thread, nullptr, carrier_thread_main, c) != 0) die("cannot create a carrier thread");
  char name[32];
  snprintf(name, sizeof name, "vthread/c%d", c->index % 100000);
  name[15] = '\0';
  libc::pthread_setname_np(thread, name);
}

static void* probe_glibc_thread(void* probe) {
  tls::probe_glibc_thread(static_cast<tls::GlibcThreadProbe*>(probe));
  return nullptr;
}

static Fiber* allocate_main_fiber() {
  if (!FiberTable::init()) return nullptr;
  Fiber* f = FiberTable::allocate();
  if (!f) return nullptr;
  f->is_main = true;
  f->created_at = monotonic_now();
  return f;
}

bool started() { return g_started.load(std::memory_order_acquire); }

Fiber* main_fiber() {
  SpinlockGuard hold(g_start_lock);
  if (!g_main_fiber && !g_main_fiber_reaped) g_main_fiber = allocate_main_fiber();
  return g_main_fiber;
}

bool start(const Config& config) {
  if (started()) return true;
  Fiber* main = main_fiber();
  SpinlockGuard hold(g_start_lock);
  if (started()) return true;
  if (!main) die("cannot reserve the fiber table");
  g_config = config;
  if (g_config.carriers <= 0) g_config.carriers = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  if (g_config.carriers < 1) g_config.carriers = 1;
  if (g_config.carriers > kMaxCarriers) g_config.carriers = kMaxCarriers;
  if (g_config.default_stack_size == 0) g_config.default_stack_size = 8 << 20;
  if (g_config.default_guard_size == SIZE_MAX) g_config.default_guard_size = 0;
  arch::set_switch_backend(g_config.backend);
  StackAllocator::init(g_config.default_stack_size);
  if (g_config.default_guard_size == 0) g_config.default_guard_size = StackAllocator::page_size();

  // Room for the spares handoff.cc may start; untouched, it costs no memory.
  void* mem = mmap(nullptr, sizeof(Carrier) * (g_config.carriers + g_config.max_spare), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("cannot allocate carriers");
  g_carriers = static_cast<Carrier*>(mem);
  for (int i = 0; i < g_config.carriers; ++i) {
    new (&g_carriers[i]) Carrier();
    g_carriers[i].index = i;
    g_carriers[i].steal_seed = 0x9e3779b97f4a7c15ull * (i + 1);
  }
  g_ncarriers = g_config.carriers;

  // Per-fiber TLS, if glibc is laid out as we expect. A thread glibc creates (its TCB is what the
  // check compares with) is also what makes glibc and libstdc++ switch to their multi-threaded paths
  // (locked stdio and malloc, atomic reference counts, __libc_single_threaded cleared), which
  // nothing else would do with a single carrier.
  tls::init(g_config.per_fiber_tls);
  tls::GlibcThreadProbe probe{};
  pthread_t probe_thread;
  if (libc::pthread_create(&probe_thread, nullptr, probe_glibc_thread, &probe) != 0 ||
      libc::pthread_join(probe_thread, nullptr) != 0) {
    die("cannot create a thread to put glibc in multi-threaded mode");
  }
  tls::check_probe(probe);

  // The calling flow becomes the main fiber on carrier 0 (keeping glibc's TCB of the initial
  // thread), whose own loop needs a stack and a TCB of its own.
  Carrier* c0 = &g_carriers[0];
  c0->tid = static_cast<pid_t>(arch::raw_syscall(SYS_gettid));
  bool too_small;
  if (!StackAllocator::allocate(kCarrier0LoopStack, StackAllocator::page_size(), &c0->loop_stack) ||
      (tls::per_fiber() && !(c0->loop_tp = tls::attach(&c0->loop_stack, kCarrier0LoopTid, &too_small))) ||
      !arch::context_prepare(&c0->loop_context, c0->loop_stack.lo, tls::stack_top(c0->loop_stack),
                             carrier0_loop_entry, c0) ||
      !arch::context_prepare_current(&main->context)) {
    die("cannot set up carrier 0");
  }
  if (tls::per_fiber()) main->tp = arch::thread_pointer();
  main->carrier = c0;
  main->on_cpu.store(true, std::memory_order_relaxed);
  cpu_account::start_main(main);
  main->sched_word.store(make_sched_word(seq_of(main->sched_word.load()), FiberState::kRunning));
  c0->current = main;
  main->sigmask = c0->applied_sigmask = kernel_signal_mask();
  carrier_local()->carrier = c0;
  carrier_local()->current = main;
  g_live_fibers.store(1);
  stack_overflow::give_carrier_signal_stack();
  stack_overflow::install_handler();
  g_started.store(true, std::memory_order_release);

  for (int i = 1; i < g_ncarriers; ++i) start_carrier_thread(&g_carriers[i]);
  return true;
}

// The child of a fork() has one kernel thread: the one that forked. If a fiber forked, it becomes
// the only fiber, on carrier 0; otherwise the child has none. Every other fiber is dropped (their
// memory stays mapped, as a forked child keeps the parent's), every runtime lock and queue is reset
// (another carrier may have held one at the fork), and new carrier threads are started.
void after_fork_in_child() {
  if (!started()) return;
  Fiber* self = current();
  pid_t tid = static_cast<pid_t>(arch::raw_syscall(SYS_gettid));
  FiberTable::keep_only_after_fork(self);
  // Another thread may have held the forking fiber's own lock (joining, detaching or cancelling
  // it, or lending it a priority): in the child it would stay held for good.
  if (self) new (&self->lifecycle_lock) Spinlock();
  parking_lot::reset_after_fork();
  StackAllocator::reset_after_fork();
  tls::reset_after_fork(self ? self->tp : nullptr);
  new (&g_start_lock) Spinlock();
  reset_idle_carriers_after_fork();
  if (g_main_fiber != self) {
    g_main_fiber = nullptr;
    g_main_fiber_reaped = true;
  }
  g_ncarriers = g_config.carriers;  // spares' threads did not survive the fork either
  handoff::after_fork_in_child();
  Stack c0_loop_stack = g_carriers[0].loop_stack;
  char* c0_loop_tp = g_carriers[0].loop_tp;
  for (int i = 0; i < g_ncarriers; ++i) {
    g_carriers[i].~Carrier();
    new (&g_carriers[i]) Carrier();
    g_carriers[i].index = i;
    g_carriers[i].steal_seed = 0x9e3779b97f4a7c15ull * (i + 1);
  }
  g_live_fibers.store(self ? 1 : 0);
  int first_new_carrier = 0;
  if (self) {
    // The forking fiber goes on running on this kernel thread, which becomes carrier 0; its
    // carrier context starts afresh on carrier 0's own loop stack (this thread's glibc stack, if it
    // was another carrier, now belongs to glibc's cache of free stacks).
    Carrier* c0 = &g_carriers[0];
    c0->tid = tid;
    c0->applied_sigmask = kernel_signal_mask();
    c0->loop_stack = c0_loop_stack;
    c0->loop_tp = c0_loop_tp;
    if (!arch::context_prepare(&c0->loop_context, c0->loop_stack.lo, tls::stack_top(c0->loop_stack),
                               carrier0_loop_entry, c0)) {
      die("cannot set up carrier 0 in a fork child");
    }
    self->carrier = c0;
    self->joiner = nullptr;
    c0->current = self;
    CarrierLocal* local = self->tp ? local_at(self->tp) : carrier_local();
    local->carrier = c0;
    local->current = self;
    first_new_carrier = 1;
  }
  // Before any carrier runs: the shared queue of preempted fibers still holds the parent's.
  preempt::after_fork_in_child();
  for (int i = first_new_carrier; i < g_ncarriers; ++i) start_carrier_thread(&g_carriers[i]);
}

void forget_main_fiber() {
  SpinlockGuard hold(g_start_lock);
  g_main_fiber = nullptr;
  g_main_fiber_reaped = true;
}

}  // namespace vthread::sched
