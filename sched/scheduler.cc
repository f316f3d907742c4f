// The vthread scheduler.
//
// Concepts
//   Fiber    a thread of the program: a saved context, a stack and a record in the FiberTable.
//   Carrier  a kernel thread that runs fibers. Carrier 0 is the kernel thread that started the
//            runtime (normally the program's main thread); the others are created with the real
//            pthread_create, which is also what makes glibc switch itself into multi-threaded mode.
//            Each carrier owns a run queue (32 priority levels), a timer heap, and its own
//            scheduler loop running on a separate context (Go's g0): the "carrier context".
//
// Switching
//   A fiber that blocks, yields or exits calls switch_out(). It picks the next fiber from its own
//   carrier's queue and switches to it directly (one switch, not two through the scheduler loop);
//   only when the queue is empty does it switch to the carrier context, which steals or sleeps.
//   Whatever must happen to the outgoing fiber after its registers are saved (put it back on the run
//   queue, release the lock of the wait queue it joined, free it) is recorded on the carrier and done
//   by finish_switch() as the first thing the incoming context runs, as in Linux's
//   finish_task_switch(). Until then the fiber's `on_cpu` flag stays set, and any carrier about to
//   run it waits for the flag to clear. That makes it safe to wake a fiber that is still on its way
//   to parking (a timer firing on another carrier, a waker that found it some other way).
//
// Parking
//   park()/unpark() is the single blocking mechanism; parking_lot.cc builds address-keyed wait
//   queues on it, and every blocking primitive of the shim is built on those. The fiber's state
//   word carries a park sequence number beside the state, and unpark() is a compare-and-swap
//   from (seq, Parked) to (seq, Runnable), so a wake and a timeout for the same park resolve to
//   exactly one winner, and a stale ticket can never wake a later park.
//
// Idle carriers and stealing
//   A carrier with nothing to run steals half of another carrier's queue; failing that it polls
//   for work for up to 50 us, then sleeps on a futex until the earliest timer of any carrier.
//   Waking follows Go's "spinning M" rule: a carrier that makes work runnable wakes an idle carrier
//   only if none is already looking for work, and the woken one, once it finds work, wakes the
//   next. So an idle process costs no CPU and a burst of wake-ups does not wake every carrier. As
//   with Go's runnext, a fiber just woken on a carrier is not stolen for 5 us: its waker usually
//   blocks next (unlock then wait, signal then wait), and the pair then hands off on one carrier
//   instead of through a futex wake-up on another (threadring on two carriers: 1.4 -> 0.37 us/hop).
//
// Timers
//   Each carrier has a 4-ary heap of the deadlines of fibers that parked on it. The owner fires
//   due timers at every scheduling decision; idle carriers bound their sleep by, and fire, the
//   timers of every carrier, so a carrier stuck in a long-running fiber does not hold up others'
//   wake-ups.
//
// Preemption and the monitor
//   A fiber that runs for a quantum without entering the shim while others wait is switched out
//   from a signal handler (preempt.cc); a monitor thread decides which carriers to tick
//   (monitor.cc). Here that costs nothing: the monitor reads the `switches` counter dispatch already
//   keeps, make_runnable() tells preempt.cc when a woken fiber should not wait for the running one's
//   quantum to end, finish_switch
//   puts a preempted fiber on a queue shared by all carriers, and pick_local() takes from it when
//   the carrier's own queue is empty.
//
// Rejected alternatives
//   - Always switching through the scheduler loop: simpler, but doubles the cost of every switch.
//   - One global run queue: a single lock every carrier contends on for every switch.
//   - Holding the wait-queue lock across the switch by hand in each primitive (instead of a commit
//     callback run by finish_switch): every primitive would repeat the protocol.
//
// Thread-local state
//   Each fiber has its own glibc TCB and TLS (tls.cc), and dispatching a fiber loads its thread
//   pointer; the carrier context runs on a TCB of its own (carrier 0's is made like a fiber's, the
//   others are the carrier threads' glibc TCBs). The runtime's own slot (CarrierLocal: the current
//   fiber, its carrier) is thread-local too, so dispatch writes it into the incoming TCB, and it is
//   always read through the thread pointer, never through an address the compiler may have kept
//   from before a switch. In the fallback mode fibers share their carrier's TCB: the slot is then
//   per carrier, and errno is saved and restored across each switch.
//
// Start-up and fork
//   startup.cc: the first thread the program creates starts the runtime, and the child of a fork()
//   rebuilds it around the one kernel thread it has.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <new>

#include "arch/raw_syscall.h"
#include "arch/thread_pointer.h"
#include "sched/carrier.h"
#include "sched/cpu_time.h"
#include "sched/futex.h"
#include "sched/handoff.h"
#include "sched/libc.h"
#include "sched/monitor.h"
#include "sched/parking_lot.h"
#include "sched/preempt.h"
#include "sched/run_queue.h"
#include "sched/sched.h"
#include "sched/stack_overflow.h"
#include "sched/tls.h"

namespace vthread::sched {

namespace {

// How long a fiber just woken by a carrier is not stolen from it (Go's runnext rule): its waker
// usually blocks right after (signal then wait, unlock then lock), and the wakee then runs on the
// same carrier instead of migrating through a futex wake-up.
constexpr Nanos kFreshWindow = 5 * 1000;

// Before sleeping, an idle carrier watches for work for a short while as the spinning carrier, so
// that bursts of wake-ups are picked up without a futex round trip on either side. Bounded, so an
// idle process still goes quiet at once.
constexpr Nanos kSpinBeforeSleep = 50 * 1000;

// See yield().
constexpr uint32_t kYieldsPerKernelYield = 64;

Spinlock g_idle_lock;
Carrier* g_idle_list = nullptr;
std::atomic<int> g_idle_count{0};
std::atomic<int> g_spinning_count{0};

__thread CarrierLocal tls_carrier_local __attribute__((tls_model("initial-exec")));

}  // namespace

ptrdiff_t g_carrier_local_offset;
ptrdiff_t g_errno_offset;

// A constructor, and on first use: ld.so runs the constructors of the program's own libraries
// before ours, and those may already lock mutexes (GLib's type system does), reaching current().
// Until computed the offsets are 0, which no static TLS variable has (they lie below the TCB).
__attribute__((constructor)) void compute_tls_offsets() {
  g_errno_offset = reinterpret_cast<char*>(&errno) - arch::thread_pointer();
  g_carrier_local_offset = reinterpret_cast<char*>(&tls_carrier_local) - arch::thread_pointer();
}

Config g_config;
std::atomic<int64_t> g_live_fibers{0};
Carrier* g_carriers = nullptr;
int g_ncarriers = 0;

void die(const char* what) {
  char line[256];
  int n = snprintf(line, sizeof line, "vthread: fatal: %s\n", what);
  arch::raw_syscall(SYS_write, 2, line, n);
  abort();
}

// ---- run queues --------------------------------------------------------------------------------

// Returns the carrier `f` was queued on: `c`, unless `c` is a dormant spare, which would never run
// it (handoff.cc's go_dormant() sets `dormant` under the queue lock, then empties the queue).
static Carrier* enqueue(Carrier* c, Fiber* f) {
  for (;;) {
    SpinlockGuard hold(c->queue_lock);
    if (c->dormant.load(std::memory_order_relaxed)) {
      c = &g_carriers[0];  // never a spare
      continue;
    }
    c->queue.push_back(f);
    c->queued.store(c->queue.size(), std::memory_order_relaxed);
    break;
  }
  // Pairs with the fence in idle_sleep(): either we see the idle carrier, or it sees our work.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (g_idle_count.load(std::memory_order_relaxed) > 0) wake_idle_carrier();
  return c;
}

static Fiber* dequeue(Carrier* c) {
  if (c->queued.load(std::memory_order_relaxed) == 0) return nullptr;
  SpinlockGuard hold(c->queue_lock);
  Fiber* f = c->queue.pop_highest();
  c->queued.store(c->queue.size(), std::memory_order_relaxed);
  return f;
}

// Wakes a fiber whose park ended: onto the queue of the carrier we run on, which keeps a waker and
// its wakee together; a foreign thread uses the wakee's last carrier.
void make_runnable(Fiber* f) {
  Carrier* c = carrier_local()->carrier;
  if (c) {
    // (A clock read is a fifth of a one-carrier hand-off, and with one carrier nothing steals.)
    if (g_ncarriers > 1) c->fresh_until.store(monotonic_now() + kFreshWindow, std::memory_order_relaxed);
  } else {
    c = f->carrier ? f->carrier : &g_carriers[0];
  }
  c = enqueue(c, f);
  preempt::on_runnable(c, f);
}

bool wake(ParkTicket ticket, WakeReason why) {
  Fiber* f = ticket.fiber;
  uint64_t expected = make_sched_word(ticket.seq, FiberState::kParked);
  if (!f->sched_word.compare_exchange_strong(expected, make_sched_word(ticket.seq, FiberState::kRunnable),
                                             std::memory_order_acq_rel)) {
    return false;
  }
  f->wake_reason = why;
  make_runnable(f);
  return true;
}

// ---- switching ---------------------------------------------------------------------------------

// The next fiber of this carrier's own queue, after firing its due timers; failing that, the
// oldest preempted fiber (preempt.cc).
Fiber* pick_local(Carrier* c) {
  if (c->spare && handoff::should_retire(c)) return nullptr;  // to its loop, which retires it
  Nanos now;
  if (timers_due(c, &now)) fire_due_timers(c, now);
  // Every 61st pick serves the shared queue first (Go's rule for its global queue): fibers woken
  // over and over on this carrier would otherwise starve the preempted ones.
  if (--c->picks_until_shared == 0) {
    c->picks_until_shared = 61;
    if (Fiber* f = take_preempted(0)) return f;
  }
  // A preempted fiber that outranks everything queued here goes first: preemption must not cost a
  // fiber its priority.
  if (preempted_queued() && preempted_top_priority() > c->queue.highest_level()) {
    if (Fiber* f = take_preempted(0)) return f;
  }
  Fiber* f = dequeue(c);
  return f ? f : take_preempted(0);
}

// `c->current` is the fiber switching out, or null when the carrier context dispatches.
static void dispatch(Carrier* c, Fiber* next) {
  while (next->on_cpu.load(std::memory_order_acquire)) cpu_relax();
  next->on_cpu.store(true, std::memory_order_relaxed);
  cpu_account::account_switch(c->current, next);
  next->carrier = c;
  ++next->switches_in;
  c->current = next;
  c->switches.fetch_add(1, std::memory_order_relaxed);
  if (next->tp) {
    // From here until the switch, nothing may touch thread-local data: it is already next's.
    CarrierLocal* local = local_at(next->tp);
    local->current = next;
    local->carrier = c;
    arch::set_thread_pointer(next->tp);
  } else {
    carrier_local()->current = next;
  }
}

void apply_signal_mask(Carrier* c, uint64_t mask) {
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &mask, nullptr, sizeof mask);
  c->applied_sigmask = mask;
}

// The signal state a fiber takes back onto the carrier it resumes on: its mask, kicks sent to this
// carrier for a fiber before it that the mask would leave stuck here (signals.cc), then whatever
// was sent to it meanwhile.
static inline void resume_signals(Fiber* self) {
  Carrier* c = self->carrier;
  if (__builtin_expect(self->sigmask != c->applied_sigmask, 0)) {
    if (uint64_t opened = c->applied_sigmask & ~self->sigmask) reclaim_carrier_signals(c, self, opened);
    apply_signal_mask(c, self->sigmask);
  }
  c->last_fiber = self;
  if (__builtin_expect(c->kicked_signals.load(std::memory_order_relaxed) != 0, 0)) drain_kicks(c, self);
  if (self->pending_signals.load(std::memory_order_relaxed)) deliver_pending_signals(self);
}

// Held while TCBs are freed and while after_dlopen() visits them all.
static Spinlock g_tcb_free_lock;

// Returns an exited fiber's stack (with its TCB) to the pool, or frees both.
static void release_stack(Stack* stack) {
  if (StackAllocator::pool(stack)) return;
  SpinlockGuard hold(g_tcb_free_lock);
  if (stack->tcb) tls::destroy(stack->tcb);
  StackAllocator::unmap(stack);
}

void reap(Fiber* f) {
  if (f->is_main) forget_main_fiber();
  release_stack(&f->stack);
  arch::context_release(&f->context);
  FiberTable::release(f);
}

static void finish_switch(Carrier* c) {
  Fiber* prev = c->prev;
  if (!prev) return;
  c->prev = nullptr;
  switch (c->prev_action) {
    case PostSwitch::kNothing:
      prev->on_cpu.store(false, std::memory_order_release);
      break;
    case PostSwitch::kRequeue:
      prev->on_cpu.store(false, std::memory_order_release);
      enqueue(c, prev);
      break;
    case PostSwitch::kPark:
      // Release the wait-queue lock before letting anyone run the fiber again.
      if (c->commit) c->commit(c->commit_arg);
      prev->on_cpu.store(false, std::memory_order_release);
      break;
    case PostSwitch::kExit:
      prev->on_cpu.store(false, std::memory_order_release);
      finish_exit(prev);
      break;
    case PostSwitch::kPreempted:
      prev->on_cpu.store(false, std::memory_order_release);
      requeue_preempted(prev);
      break;
  }
}

// Switches from the running fiber to `next` (or, if null, to the carrier context) and does
// `action` to the outgoing fiber once it is saved. Returns when the fiber runs again.
void switch_out(Fiber* self, Fiber* next, PostSwitch action, void (*commit)(void*), void* arg) {
  Carrier* c = self->carrier;
  if (next == self) {
    // Our own park ended while we were choosing what to run next (a timer fired): keep running.
    if (commit) commit(arg);
    return;
  }
  c->prev = self;
  c->prev_action = action;
  c->commit = commit;
  c->commit_arg = arg;
  int saved_errno = self->tp ? 0 : *errno_slot();
  if (next) {
    dispatch(c, next);
    arch::context_switch(&self->context, &next->context);
  } else {
    cpu_account::account_switch(self, nullptr);
    c->current = nullptr;
    if (c->loop_tp) {
      arch::set_thread_pointer(c->loop_tp);
    } else {
      carrier_local()->current = nullptr;
    }
    arch::context_switch(&self->context, &c->loop_context);
  }
  // Running again, on whichever carrier dispatched us.
  finish_switch(self->carrier);
  if (!self->tp) *errno_slot() = saved_errno;
  resume_signals(self);
}

// ---- carriers ----------------------------------------------------------------------------------

void wake_idle_carrier() {
  // Only one carrier looks for work at a time (Go's nmspinning rule).
  int expected = 0;
  if (!g_spinning_count.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  Carrier* idle;
  {
    SpinlockGuard hold(g_idle_lock);
    idle = g_idle_list;
    if (idle) {
      g_idle_list = idle->idle_next;
      idle->in_idle_list = false;
      g_idle_count.fetch_sub(1, std::memory_order_relaxed);
      idle->spinning = true;
    }
  }
  if (!idle) {
    g_spinning_count.fetch_sub(1, std::memory_order_seq_cst);
    // Another waker may have skipped its wake because we held the spinning slot; a carrier may
    // have gone idle since we looked. Look again rather than leave its work stranded.
    if (g_idle_count.load(std::memory_order_seq_cst) > 0 && any_work_queued()) wake_idle_carrier();
    return;
  }
  idle->wake_word.store(1, std::memory_order_release);
  futex_wake(&idle->wake_word, 1);
}

bool any_carrier_idle() { return g_idle_count.load(std::memory_order_relaxed) > 0; }

bool all_carriers_idle(int blocked) {
  return g_idle_count.load(std::memory_order_seq_cst) == g_ncarriers - handoff::dormant_spares() - blocked;
}

bool any_work_queued() {
  if (preempted_queued() > 0) return true;
  for (int i = 0; i < g_ncarriers; ++i) {
    if (g_carriers[i].queued.load(std::memory_order_relaxed) > 0) return true;
  }
  return false;
}

// The carrier stops spinning; if it was the last spinner and work remains, another one looks.
static void stop_spinning(Carrier* c) {
  if (!c->spinning) return;
  c->spinning = false;
  if (g_spinning_count.fetch_sub(1, std::memory_order_seq_cst) == 1 && any_work_queued()) {
    wake_idle_carrier();
  }
}

static Fiber* steal(Carrier* thief) {
  if (g_ncarriers < 2) return nullptr;
  thief->steal_seed = thief->steal_seed * 6364136223846793005ull + 1442695040888963407ull;
  int start = static_cast<int>((thief->steal_seed >> 33) % g_ncarriers);
  Nanos now = 0;
  for (int k = 0; k < g_ncarriers; ++k) {
    Carrier* victim = &g_carriers[(start + k) % g_ncarriers];
    size_t queued = victim->queued.load(std::memory_order_relaxed);
    if (victim == thief || queued == 0) continue;
    if (queued == 1) {
      if (!now) now = monotonic_now();
      if (now < victim->fresh_until.load(std::memory_order_relaxed)) continue;
    }
    RunQueue loot;
    {
      SpinlockGuard hold(victim->queue_lock);
      victim->queue.steal_half_into(&loot);
      victim->queued.store(victim->queue.size(), std::memory_order_relaxed);
    }
    Fiber* first = loot.pop_highest();
    if (!first) continue;
    thief->steals.fetch_add(1, std::memory_order_relaxed);
    if (!loot.empty()) {
      SpinlockGuard hold(thief->queue_lock);
      while (Fiber* f = loot.pop_highest()) thief->queue.push_back(f);
      thief->queued.store(thief->queue.size(), std::memory_order_relaxed);
    }
    return first;
  }
  return nullptr;
}

static void leave_idle_list(Carrier* c) {
  SpinlockGuard hold(g_idle_lock);
  if (!c->in_idle_list) return;
  for (Carrier** link = &g_idle_list; *link; link = &(*link)->idle_next) {
    if (*link == c) {
      *link = c->idle_next;
      break;
    }
  }
  c->in_idle_list = false;
  g_idle_count.fetch_sub(1, std::memory_order_relaxed);
}

static void idle_sleep(Carrier* c) {
  c->wake_word.store(0, std::memory_order_relaxed);
  {
    SpinlockGuard hold(g_idle_lock);
    c->idle_next = g_idle_list;
    g_idle_list = c;
    c->in_idle_list = true;
    g_idle_count.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  Nanos deadline = earliest_timer_anywhere();
  Nanos now = monotonic_now();
  if (!any_work_queued() && deadline > now) {
    c->idle_sleeps.fetch_add(1, std::memory_order_relaxed);
    struct timespec timeout = nanos_to_timespec(deadline == kNoDeadline ? 0 : deadline - now);
    futex_wait(&c->wake_word, 0, deadline == kNoDeadline ? nullptr : &timeout);
  }
  leave_idle_list(c);
  monitor::notify_busy();
}

static Fiber* find_work(Carrier* c) {
  Fiber* f = pick_local(c);
  if (!f) f = steal(c);
  if (!f && fire_all_due_timers()) f = pick_local(c);
  return f;
}

// Polls for work for kSpinBeforeSleep as the one spinning carrier (no-op if another is spinning).
static Fiber* spin_for_work(Carrier* c) {
  if (!c->spinning) {
    int expected = 0;
    if (!g_spinning_count.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return nullptr;
    c->spinning = true;
  }
  Nanos until = monotonic_now() + kSpinBeforeSleep;
  for (int polls = 1;; ++polls) {
    if (any_work_queued()) {
      if (Fiber* f = find_work(c)) return f;
    }
    if (polls % 64 == 0 && monotonic_now() >= until) return find_work(c);
    cpu_relax();
  }
}

static Fiber* find_runnable(Carrier* c) {
  for (;;) {
    if (handoff::should_retire(c)) {
      stop_spinning(c);
      handoff::go_dormant(c);
    }
    Fiber* f = find_work(c);
    if (!f) f = spin_for_work(c);
    stop_spinning(c);
    if (f) return f;
    idle_sleep(c);
  }
}

[[noreturn]] void carrier_loop(Carrier* c) {
  for (;;) {
    finish_switch(c);
    Fiber* next = find_runnable(c);
    dispatch(c, next);
    arch::context_switch(&c->loop_context, &next->context);
  }
}

void fiber_main(void* fiber) {
  auto* self = static_cast<Fiber*>(fiber);
  finish_switch(self->carrier);
  if (self->tp) tls::enter_thread();
  resume_signals(self);
  self->sched_word.store(make_sched_word(seq_of(self->sched_word.load()), FiberState::kRunning));
  self->entry(self->entry_arg);
  die("a fiber's entry function returned instead of calling exit_current()");
}

// ---- public interface --------------------------------------------------------------------------

Fiber* current() { return carrier_local()->current; }

// Every kYieldsPerKernelYield-th yield on a carrier also offers the CPU to the rest of the system,
// as sched_yield does natively, so that a carrier whose fibers yield does not look to the kernel
// like one thread that never does: a fork child of such a program waited tens of milliseconds for
// its first timeslice, and a thread spinning on sched_yield for another process held its CPU.
// Not every yield: a yield among fibers is a switch (tens of ns), the system call hundreds.
void yield() {
  Fiber* self = current();
  Carrier* c = self->carrier;
  if (--c->yields_until_kernel == 0) {
    c->yields_until_kernel = kYieldsPerKernelYield;
    libc::sched_yield();
  }
  Fiber* next = pick_local(c);
  if (next) switch_out(self, next, PostSwitch::kRequeue, nullptr, nullptr);
}

ParkTicket park_ticket() {
  Fiber* self = current();
  return ParkTicket{self, seq_of(self->sched_word.load(std::memory_order_relaxed))};
}

WakeReason park(WaitReason reason, Nanos deadline, void (*commit)(void*), void* arg) {
  Fiber* self = current();
  uint32_t seq = seq_of(self->sched_word.load(std::memory_order_relaxed));
  self->wait_reason = reason;
  self->wake_reason = WakeReason::kNone;
  // From this store on, unpark() with our ticket may succeed, even before we have switched out.
  self->sched_word.store(make_sched_word(seq, FiberState::kParked), std::memory_order_seq_cst);
  if (deadline != kNoDeadline) arm_timer(self, seq, deadline);
  switch_out(self, pick_local(self->carrier), PostSwitch::kPark, commit, arg);
  if (deadline != kNoDeadline) disarm_timer(self);
  self->wait_reason = WaitReason::kNone;
  self->sched_word.store(make_sched_word(seq + 1, FiberState::kRunning), std::memory_order_release);
  return self->wake_reason;
}

bool unpark(ParkTicket ticket) { return wake(ticket, WakeReason::kUnparked); }

void sleep_until(Nanos deadline) {
  while (monotonic_now() < deadline) park(WaitReason::kSleep, deadline, nullptr, nullptr);
}

bool per_fiber_tls() { return tls::per_fiber(); }

void run_thread_local_destructors() { tls::run_thread_local_destructors(); }

void reset_idle_carriers_after_fork() {
  new (&g_idle_lock) Spinlock();
  new (&g_tcb_free_lock) Spinlock();
  g_idle_list = nullptr;
  g_idle_count.store(0);
  g_spinning_count.store(0);
}

static void visit_every_tcb(void (*fn)(char* tp, void* arg), void* arg) {
  SpinlockGuard hold(g_tcb_free_lock);
  FiberTable::for_each([&](Fiber* f) {
    if (f->stack.tcb) fn(f->stack.tcb, arg);
  });
  StackAllocator::for_each_pooled_tcb(fn, arg);
  if (g_ncarriers > 0 && g_carriers[0].loop_stack.tcb) fn(g_carriers[0].loop_stack.tcb, arg);
}

void after_dlopen() { tls::after_dlopen(visit_every_tcb); }

Stats stats() {
  Stats s{};
  s.carriers = static_cast<size_t>(g_ncarriers);
  s.live_fibers = static_cast<size_t>(g_live_fibers.load());
  for (int i = 0; i < g_ncarriers; ++i) {
    s.switches += g_carriers[i].switches.load(std::memory_order_relaxed);
    s.steals += g_carriers[i].steals.load(std::memory_order_relaxed);
    s.idle_sleeps += g_carriers[i].idle_sleeps.load(std::memory_order_relaxed);
    s.preemptions += g_carriers[i].preemptions.load(std::memory_order_relaxed);
    s.ticks_deferred += g_carriers[i].ticks_deferred.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace vthread::sched
