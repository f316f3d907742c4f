// Signals in the runtime: each fiber's mask and pending set, the raising of a fiber's pending
// signals on its carrier, and the process's own pending set, where process-directed signals wait
// for a fiber. Which fiber gets a process-directed signal, and what its handler does, is the
// shim's business (shim/signal_route.cc); this file keeps the state both work on, and everything
// here that a signal handler calls uses atomics and system calls only: no lock, no allocation.
//
// Raising. A fiber's pending signal is raised on its carrier with tgkill, or with rt_tgsigqueueinfo
// and the siginfo its sender gave (the kernel lets a thread queue any si_code to itself), so
// si_code, si_pid, si_uid and si_value survive. Just before, the carrier notes the signal as
// the one it is delivering to its fiber (Carrier::delivering): delivery to oneself is synchronous,
// and the runtime's handler tells such a raise from a process-directed instance by the note.
//
// The process's pending set. A process-directed signal the runtime's handler could not give to the
// fiber it interrupted waits here, with its siginfo, until the shim's router (run by the monitor
// thread, outside any signal handler, so it may take locks to wake a fiber) gives it to a fiber
// that accepts it, or a fiber takes it by unblocking it (set_signal_mask) or waiting for it
// (take_pending_signal). The handler publishes the bit before the router looks at masks, and a
// fiber publishes its mask before it looks at the bits, so one of the two always sees the other.
// A fiber that exits gives the process back what it was given and had not taken.
//
// The monitor's part. A process-directed signal that every running fiber blocks stays pending in
// the kernel, though a parked fiber may accept it. The monitor, which blocks every signal, looks at
// the kernel's pending set every period (rt_sigpending, one system call) and takes such a signal
// (sigtimedwait) if some fiber accepts it, for the router. A signal no fiber accepts it leaves
// there: the first thread to unblock it gets it from the kernel before its sigprocmask returns,
// as natively (had the monitor taken it, it would be in transit for a moment, unseen). While it
// sleeps (the process is quiet, so no mask changes), the monitor leaves the signals some fiber
// accepts unblocked, so that one arriving wakes it, through the runtime's handler. For "some fiber
// accepts", it counts per signal the live fibers that refuse it (block it and do not wait for it
// in sigwait): refusers rather than accepters, so that creating a thread stays cheap, a mask having
// few bits set.
//
// Siginfo slots: one per signal number, holding one instance's siginfo and whom it is for (a fiber,
// or the process). Standard signals do not queue, so one is all a thread or the process can have
// pending; an instance that comes while the slot is taken for another fiber is raised without its
// own siginfo (as by tgkill), and real-time signals are coalesced like standard ones.
//
// Kicks. A signal pending for a fiber that runs on another carrier, in program code or in a blocking
// system call, would wait for its next switch or shim entry. hurry_signal sends that carrier's
// thread a kick instead: an instance of the same signal with a private si_code and marker (the
// kernel lets a thread queue only negative codes other than SI_TKILL to another thread, so the
// real instance cannot be moved there; it stays pending on the fiber, siginfo and all). The kernel
// delivers the kick at once, interrupting a system call under the signal's own SA_RESTART, and the
// runtime's handler, seeing a kick (take_kick), raises the fiber's pending signals right there. A
// kick that finds another fiber running, or this one inside the runtime, is dropped; the router
// tries again. One that a fiber blocking the signal finds pending is drained at the switch to it.
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

#include <atomic>

#include "arch/raw_syscall.h"
#include "sched/carrier.h"
#include "sched/handoff.h"
#include "sched/monitor.h"
#include "sched/preempt.h"
#include "sched/sched.h"

namespace vthread::sched {
namespace {

constexpr uint64_t bit_of(int sig) { return uint64_t{1} << (sig - 1); }
constexpr int kMaxSignal = 64;

// The owner a slot names for an instance pending for the process.
const char g_process_marker = 0;
const void* const kForProcess = &g_process_marker;

constexpr uint32_t kEmpty = 0, kBusy = 1, kFull = 2;
struct InfoSlot {
  std::atomic<uint32_t> state;
  const void* owner;
  siginfo_t info;
};
InfoSlot g_slots[kMaxSignal + 1];  // by signal number

std::atomic<uint64_t> g_process_pending{0};
std::atomic<int64_t> g_refusers[kMaxSignal + 1];  // by signal number

// A kick's si_code (negative: queueable to another thread; -6 and above are the kernel's and
// glibc's; the tick's is -0x7674) and marker (si_value: an address in this library).
constexpr int kKickCode = -0x766b;
const char g_kick_marker = 0;

std::atomic<bool (*)()> g_router{nullptr};
std::atomic<bool> g_route_requested{false};
bool g_route_again = false;              // the monitor's: the router asked to be called again
std::atomic<uint64_t> g_routed{0};       // signals with the runtime's handler
std::atomic<long> g_monitor_tid{0};

long pid() { return arch::raw_syscall(SYS_getpid); }

bool still_pending(const void* owner, uint64_t bit) {
  if (owner == kForProcess) return g_process_pending.load(std::memory_order_acquire) & bit;
  return static_cast<const Fiber*>(owner)->pending_signals.load(std::memory_order_acquire) & bit;
}

// What keep_info did: kept the siginfo; found an instance still pending for the process or for a
// fiber that accepts it, which a process-directed one joins (standard signals do not queue); or
// could not keep it (the slot holds another instance, or another thread is working on it: no
// waiting in a signal handler).
enum class Kept { kKept, kJoined, kLost };

Kept keep_info(int sig, const siginfo_t* info, const void* owner) {
  InfoSlot& slot = g_slots[sig];
  uint32_t state = slot.state.load(std::memory_order_acquire);
  do {
    if (state == kBusy) return Kept::kLost;
  } while (!slot.state.compare_exchange_weak(state, kBusy, std::memory_order_acquire));
  if (state == kFull && still_pending(slot.owner, bit_of(sig))) {
    bool accepted = slot.owner == kForProcess || !(blocked_signals(static_cast<const Fiber*>(slot.owner)) & bit_of(sig));
    slot.state.store(kFull, std::memory_order_release);
    return accepted ? Kept::kJoined : Kept::kLost;
  }
  slot.owner = owner;
  memcpy(&slot.info, info, sizeof slot.info);
  slot.state.store(kFull, std::memory_order_release);
  return Kept::kKept;
}

// Takes the siginfo kept for `owner`'s instance of `sig`; false if there is none.
bool take_info(int sig, const void* owner, siginfo_t* out) {
  InfoSlot& slot = g_slots[sig];
  uint32_t expected = kFull;
  if (!slot.state.compare_exchange_strong(expected, kBusy, std::memory_order_acquire)) return false;
  bool mine = slot.owner == owner;
  if (mine) memcpy(out, &slot.info, sizeof *out);
  slot.state.store(mine ? kEmpty : kFull, std::memory_order_release);
  return mine;
}

// The instance kept for `from` is now `to`'s.
void hand_info(int sig, const void* from, const void* to) {
  InfoSlot& slot = g_slots[sig];
  uint32_t expected = kFull;
  if (!slot.state.compare_exchange_strong(expected, kBusy, std::memory_order_acquire)) return;
  if (slot.owner == from) slot.owner = to;
  slot.state.store(kFull, std::memory_order_release);
}

// Moves the process-pending signals of `wanted` to `self`, with their siginfo.
void take_process_signals(Fiber* self, uint64_t wanted) {
  uint64_t mine = g_process_pending.load(std::memory_order_seq_cst) & wanted;
  for (int sig = 1; mine; ++sig, mine >>= 1) {
    uint64_t bit = bit_of(sig);
    if (!(mine & 1) || !(g_process_pending.fetch_and(~bit, std::memory_order_acq_rel) & bit)) continue;
    hand_info(sig, kForProcess, self);
    self->process_given.fetch_or(bit, std::memory_order_relaxed);
    self->pending_signals.fetch_or(bit, std::memory_order_release);
  }
}

// Takes `self`'s pending `sig` (returns false if it is not pending) and its kept siginfo, if any
// (info->si_signo is 0 if none). The siginfo first: while the bit is set, keep_info leaves the
// slot alone. Only the fiber takes its bits, but a handler that interrupted it here may have taken
// this one in between (and raised it without the siginfo): the siginfo then goes back.
bool take_pending(Fiber* self, int sig, siginfo_t* info) {
  uint64_t bit = bit_of(sig);
  if (!take_info(sig, self, info)) info->si_signo = 0;
  if (self->pending_signals.fetch_and(~bit, std::memory_order_acq_rel) & bit) {
    self->process_given.fetch_and(~bit, std::memory_order_relaxed);
    return true;
  }
  if (info->si_signo) keep_info(sig, info, self);
  return false;
}

// Raises `sig` on the carrier running `self` (which is the caller), with `info` if it has one.
// When the fiber does not block it (`delivered`) and the runtime's handler is installed for it, that
// handler runs before this returns and consumes the note. A note left means the kernel dropped the
// raise: a standard signal already pending for the thread (a kick, or a tick of the same signal,
// queued as we entered the kernel and handled as we left) is not queued twice. So it is raised
// again.
void raise_here(Fiber* self, int sig, const siginfo_t* info, bool delivered) {
  delivered = delivered && (g_routed.load(std::memory_order_relaxed) & bit_of(sig));
  constexpr int kMaxRaises = 8;  // each retry needs another instance queued in the same instant
  for (int raises = 0; raises < kMaxRaises; ++raises) {
    Carrier* c = self->carrier;
    c->delivering.store(sig, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (info && info->si_signo) {
      arch::raw_syscall(SYS_rt_tgsigqueueinfo, pid(), c->tid, sig, info);
    } else {
      arch::raw_syscall(SYS_tgkill, pid(), c->tid, sig);
    }
    // A handler that parked may have moved us: this carrier's note is ours, or 0.
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (self->carrier->delivering.exchange(0, std::memory_order_relaxed) != sig || !delivered) return;
  }
}

// The signals `fiber` refuses (see the top).
uint64_t refused(const Fiber* fiber) { return blocked_signals(fiber) & ~fiber->sigwait_set.load(std::memory_order_relaxed); }

void count_refusers(uint64_t signals, int delta) {
  for (int sig = 1; signals; ++sig, signals >>= 1) {
    if (signals & 1) g_refusers[sig].fetch_add(delta, std::memory_order_relaxed);
  }
}

void recount_refusers(uint64_t before, uint64_t after) {
  count_refusers(before & ~after, -1);
  count_refusers(after & ~before, +1);
}

// The signals with the runtime's handler that some fiber accepts.
uint64_t accepted_routed_signals() {
  uint64_t open = g_routed.load(std::memory_order_acquire);
  int64_t live = g_live_fibers.load(std::memory_order_relaxed);
  for (int sig = 1; sig <= kMaxSignal; ++sig) {
    if ((open & bit_of(sig)) && g_refusers[sig].load(std::memory_order_relaxed) >= live) open &= ~bit_of(sig);
  }
  return open;
}

}  // namespace

uint64_t blocked_signals(const Fiber* fiber) {
  uint64_t mask = __atomic_load_n(&fiber->sigmask, __ATOMIC_RELAXED);
  int tick = preempt::configured_signal();
  if (tick && __atomic_load_n(&fiber->app_blocks_tick, __ATOMIC_RELAXED)) mask |= bit_of(tick);
  return mask;
}

void count_signal_mask(Fiber* fiber) { count_refusers(refused(fiber), +1); }

// A signal `fiber` was given for the process, and will not take, goes back to the process.
void give_back_to_process(int sig, Fiber* fiber) {
  siginfo_t info;
  if (!take_info(sig, fiber, &info)) {
    memset(&info, 0, sizeof info);
    info.si_signo = sig;
    info.si_code = SI_USER;
  }
  hold_signal_for_process(sig, &info);
}

void exit_signals(Fiber* self) {
  count_refusers(refused(self), -1);
  // The router may still choose this fiber: either it sees the flag (give_process_signal), or the
  // exchange below sees what it gave.
  self->signals_closed.store(true, std::memory_order_seq_cst);
  // Those sent to the thread die with it, as natively.
  uint64_t pending = self->pending_signals.exchange(0, std::memory_order_seq_cst) &
                     self->process_given.load(std::memory_order_relaxed);
  for (int sig = 1; pending; ++sig, pending >>= 1) {
    if (pending & 1) give_back_to_process(sig, self);
  }
}

void set_sigwait_set(Fiber* self, uint64_t wanted) {
  uint64_t before = refused(self);
  self->sigwait_set.store(wanted, std::memory_order_seq_cst);
  recount_refusers(before, refused(self));
}

void post_signal(Fiber* target, int sig, const siginfo_t* info) {
  if (info) keep_info(sig, info, target);
  target->pending_signals.fetch_or(bit_of(sig), std::memory_order_seq_cst);
}

void deliver_pending_signals(Fiber* self, uint64_t held) {
  int saved_errno = errno;
  for (;;) {
    // Blocked ones, and those a sigwait is waiting for, stay pending. One at a time, lowest first:
    // a handler may change what is pending and blocked.
    // Those the kernel keeps blocked until a handler frame of the runtime's returns (the carrier's
    // recorded mask beyond the fiber's: its own signal, what a program handler's call blocked)
    // are raised after it returns, by a kick to ourselves: the kernel delivers it then.
    uint64_t waiting = self->sigwait_set.load(std::memory_order_relaxed);
    uint64_t frame_held = held | (self->carrier->applied_sigmask & ~self->sigmask);
    uint64_t pending = self->pending_signals.load(std::memory_order_acquire) & ~blocked_signals(self) & ~waiting;
    uint64_t ready = pending & ~frame_held;
    if (!ready) {
      if (pending) send_kick(self->carrier, __builtin_ctzll(pending) + 1);
      break;
    }
    int sig = __builtin_ctzll(ready) + 1;
    siginfo_t info;
    // Directed at this kernel thread, which runs us and does not block it: the kernel runs the
    // handler on our stack before the system call returns.
    if (take_pending(self, sig, &info)) raise_here(self, sig, &info, /*delivered=*/true);
  }
  errno = saved_errno;
}

void raise_signal(Fiber* self, int sig, const siginfo_t* info) {
  int saved_errno = errno;
  raise_here(self, sig, info, /*delivered=*/false);
  errno = saved_errno;
}

uint64_t kernel_signal_mask() {
  uint64_t mask = 0;
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &mask, sizeof mask);
  return mask;
}

// set_signal_mask's part before raising: records `mask` as the fiber's and gives the carrier's
// thread `mask | held`.
void record_signal_mask(Fiber* self, uint64_t mask, uint64_t held) {
  uint64_t before = refused(self);
  // The tick signal is never blocked on a carrier (preemption needs it): the program's wish to
  // block it is kept aside (Fiber::app_blocks_tick).
  int tick = preempt::configured_signal();
  if (tick) {
    self->app_blocks_tick = mask & bit_of(tick);
    mask &= ~bit_of(tick);
  }
  self->sigmask = mask;
  recount_refusers(before, refused(self));
  Carrier* c = self->carrier;
  uint64_t kernel = mask | held;
  if (kernel != c->applied_sigmask) {
    if (uint64_t opened = c->applied_sigmask & ~kernel) reclaim_carrier_signals(c, self, opened);
    self->unmasking = true;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    apply_signal_mask(c, kernel);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    self->unmasking = false;
  }
  // Published before looking at the process's set (see the top).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  take_process_signals(self, ~blocked_signals(self));
}

void set_signal_mask(Fiber* self, uint64_t mask) {
  record_signal_mask(self, mask, 0);
  if (self->pending_signals.load(std::memory_order_relaxed)) deliver_pending_signals(self);
}

void left_signal_handlers(Fiber* self) { self->kicks_raising = 0; }

void enter_signal_handler(Fiber* self, uint64_t signals) {
  Carrier* c = self->carrier;
  if (signals == ~uint64_t{0}) {  // sa_mask full: what the kernel really blocks (one system call)
    arch::raw_syscall(SYS_rt_sigprocmask, SIG_BLOCK, nullptr, &c->applied_sigmask, sizeof c->applied_sigmask);
  } else {
    c->applied_sigmask |= signals;
  }
}

void leave_signal_handler(Fiber* self, ucontext_t* uc, const void* entered_on) {
  memcpy(&uc->uc_sigmask, &self->sigmask, sizeof self->sigmask);
  self->carrier->applied_sigmask = self->sigmask;
  if (self->carrier != entered_on) {
    stack_t altstack;
    if (arch::raw_syscall(SYS_sigaltstack, nullptr, &altstack) == 0) uc->uc_stack = altstack;
  }
}

ProgramHandlerScope enter_program_handler(Fiber* self) {
  ProgramHandlerScope outer{self->in_call, self->kicks_raising, suspend_blocking()};
  self->in_call = nullptr;
  self->kicks_raising = 0;
  return outer;
}

void leave_program_handler(Fiber* self, const ProgramHandlerScope& outer) {
  resume_blocking(outer.blocking_since);
  self->kicks_raising = outer.kicks_raising;
  self->in_call = outer.in_call;
}

void set_signal_mask_at_return(Fiber* self, uint64_t mask, uint64_t held) {
  if (int tick = preempt::configured_signal()) held &= ~bit_of(tick);
  record_signal_mask(self, mask, held);
  // What rt_sigreturn installs, and so what the carrier has once this handler is left.
  self->carrier->applied_sigmask = self->sigmask;
  if (self->pending_signals.load(std::memory_order_relaxed)) deliver_pending_signals(self, held);
}

int take_pending_signal(Fiber* self, uint64_t wanted, siginfo_t* info) {
  take_process_signals(self, wanted);
  for (;;) {
    uint64_t pending = self->pending_signals.load(std::memory_order_acquire) & wanted;
    if (!pending) return 0;
    int sig = __builtin_ctzll(pending) + 1;
    if (take_pending(self, sig, info)) return sig;
  }
}

void hold_signal_for_process(int sig, const siginfo_t* info) {
  if (keep_info(sig, info, kForProcess) == Kept::kJoined) return;
  g_process_pending.fetch_or(bit_of(sig), std::memory_order_seq_cst);
  request_signal_routing();
}

uint64_t process_pending_signals() { return g_process_pending.load(std::memory_order_seq_cst); }

bool give_process_signal(int sig, Fiber* target) {
  uint64_t bit = bit_of(sig);
  if (!(g_process_pending.fetch_and(~bit, std::memory_order_acq_rel) & bit)) return false;
  hand_info(sig, kForProcess, target);
  target->process_given.fetch_or(bit, std::memory_order_relaxed);
  target->pending_signals.fetch_or(bit, std::memory_order_seq_cst);
  if (target->signals_closed.load(std::memory_order_seq_cst) &&
      (target->pending_signals.fetch_and(~bit, std::memory_order_seq_cst) & bit)) {
    give_back_to_process(sig, target);  // it is exiting: for another fiber
    return false;
  }
  return true;
}

bool take_process_signal(int sig) {
  uint64_t bit = bit_of(sig);
  if (!(g_process_pending.fetch_and(~bit, std::memory_order_acq_rel) & bit)) return false;
  siginfo_t dropped;
  take_info(sig, kForProcess, &dropped);
  return true;
}

bool take_delivering_mark(Fiber* self, int sig) {
  int expected = sig;
  return self->carrier->delivering.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
}

bool takes_signals_now(const Fiber* fiber) {
  if (state_of(fiber->sched_word.load(std::memory_order_acquire)) != FiberState::kRunning) return false;
  if (!__atomic_load_n(&fiber->in_call, __ATOMIC_RELAXED) || __atomic_load_n(&fiber->unmasking, __ATOMIC_RELAXED)) {
    return true;
  }
  Carrier* c = __atomic_load_n(&fiber->carrier, __ATOMIC_RELAXED);
  return c && c->blocking_since.load(std::memory_order_relaxed);
}

bool is_kick(const siginfo_t* info) {
  return info->si_code == kKickCode && info->si_pid == static_cast<pid_t>(pid()) &&
         info->si_value.sival_ptr == &g_kick_marker;
}

bool hurry_signal(Fiber* target, int sig) {
  Carrier* c = __atomic_load_n(&target->carrier, __ATOMIC_RELAXED);
  if (!c || __atomic_load_n(&c->current, __ATOMIC_RELAXED) != target || !takes_signals_now(target)) return false;
  send_kick(c, sig);
  return true;
}

void send_kick(Carrier* c, int sig) {
  siginfo_t kick;
  memset(&kick, 0, sizeof kick);
  kick.si_signo = sig;
  kick.si_code = kKickCode;
  kick.si_pid = static_cast<pid_t>(pid());
  kick.si_uid = static_cast<uid_t>(arch::raw_syscall(SYS_getuid));
  kick.si_value.sival_ptr = const_cast<char*>(&g_kick_marker);
  arch::raw_syscall(SYS_rt_tgsigqueueinfo, kick.si_pid, c->tid, sig, &kick);
  // After the send: a carrier that sees the bit finds the kick queued (or already delivered).
  c->kicked_signals.fetch_or(bit_of(sig), std::memory_order_release);
}

bool take_kick(Fiber* self, const siginfo_t* info) {
  if (!is_kick(info)) return false;
  // A kick of a signal inside the raising of another kick of it: that one's loop raises what this
  // one is for (else a stream of them would nest).
  uint64_t bit = bit_of(info->si_signo);
  if (self && !(self->kicks_raising & bit) && takes_signals_now(self)) {
    self->kicks_raising |= bit;
    // The kernel blocked the kick's signal for this handler, but it is the fiber's pending signal
    // of that number the kick is for: open it again, so that it is raised here and now. (Each
    // instance it raises blocks the signal again for its own handler, so they do not nest.)
    if (self->carrier->applied_sigmask != self->sigmask) apply_signal_mask(self->carrier, self->sigmask);
    deliver_pending_signals(self);
    self->kicks_raising &= ~bit;
  }
  return true;
}

void drain_kicks(Carrier* c, Fiber* self) {
  uint64_t stuck = c->kicked_signals.exchange(0, std::memory_order_acquire) & self->sigmask;
  for (int sig = 1; stuck; ++sig, stuck >>= 1) {
    if (!(stuck & 1)) continue;
    uint64_t only = bit_of(sig);
    struct timespec no_wait = {0, 0};
    siginfo_t info;
    // The instance taken may be a real one, pending for the process: that one is held for it.
    if (arch::raw_syscall(SYS_rt_sigtimedwait, &only, &info, &no_wait, sizeof only) == sig && !is_kick(&info) &&
        !preempt::is_tick(&info)) {
      hold_signal_for_process(sig, &info);
    }
  }
}

// A signal the kernel queued on a carrier's own thread: sent by the process to the thread that ran
// (raise, tgkill) or by the kernel to the writer (SIGPIPE, SIGXFSZ).
bool sent_to_carrier_thread(int sig, const siginfo_t* info) {
  if (info->si_pid != pid()) return false;
  return info->si_code == SI_TKILL || ((sig == SIGPIPE || sig == SIGXFSZ) && info->si_code == SI_USER);
}

bool alive(const Fiber* f) {
  FiberState state = state_of(f->sched_word.load(std::memory_order_acquire));
  return f->magic == kFiberMagic && state != FiberState::kFree && state != FiberState::kExited;
}

void reclaim_carrier_signals(Carrier* c, Fiber* self, uint64_t opened) {
  uint64_t pending = 0;
  if (arch::raw_syscall(SYS_rt_sigpending, &pending, sizeof pending) != 0) return;
  pending &= opened;
  // Queued on this thread while a fiber that blocked it ran here; the last one is the best guess
  // (the fiber that raised it or wrote to the closed pipe, unless another with the same mask ran
  // after it). One sent to the process goes back to the process, for the router.
  Fiber* owner = c->last_fiber;
  for (int sig = 1; pending; ++sig, pending >>= 1) {
    if (!(pending & 1)) continue;
    uint64_t only = bit_of(sig);
    struct timespec no_wait = {0, 0};
    siginfo_t info;
    if (arch::raw_syscall(SYS_rt_sigtimedwait, &only, &info, &no_wait, sizeof only) != sig || is_kick(&info) ||
        preempt::is_tick(&info)) {
      continue;  // a kick's work is done at the switch; a tick is only for the fiber that ran
    }
    if (!sent_to_carrier_thread(sig, &info)) {
      hold_signal_for_process(sig, &info);
    } else if (owner && alive(owner)) {
      post_signal(owner, sig, &info);  // self, if it is the one unblocking: delivered as it goes on
    }  // else the thread it was for is gone, and so is the signal, as natively
  }
}

bool on_runtime_thread() {
  long tid = arch::raw_syscall(SYS_gettid);
  if (tid == g_monitor_tid.load(std::memory_order_relaxed)) return true;
  int n = __atomic_load_n(&g_ncarriers, __ATOMIC_ACQUIRE);
  for (int i = 0; i < n; ++i) {
    if (__atomic_load_n(&g_carriers[i].tid, __ATOMIC_RELAXED) == tid) return true;
  }
  return false;
}

void set_signal_router(bool (*route)()) { g_router.store(route, std::memory_order_release); }

void request_signal_routing() {
  g_route_requested.store(true, std::memory_order_seq_cst);
  monitor::notify_busy();
}

void set_routed_signals(uint64_t mask) { g_routed.store(mask, std::memory_order_release); }

void enter_monitor_signals() {
  g_monitor_tid.store(arch::raw_syscall(SYS_gettid), std::memory_order_relaxed);
  block_monitor_signals();
}

void open_monitor_signals() {
  uint64_t blocked = ~accepted_routed_signals();
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &blocked, nullptr, sizeof blocked);
}

void block_monitor_signals() {
  uint64_t all = ~uint64_t{0};
  arch::raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, sizeof all);
}

void monitor_signal_period() {
  // The kernel's pending set for the process (the monitor blocks everything, and nothing is sent
  // to it alone).
  uint64_t pending = 0;
  arch::raw_syscall(SYS_rt_sigpending, &pending, sizeof pending);
  pending &= accepted_routed_signals();
  for (int sig = 1; pending; ++sig, pending >>= 1) {
    if (!(pending & 1)) continue;
    uint64_t only = bit_of(sig);
    struct timespec no_wait = {0, 0};
    siginfo_t info;
    if (arch::raw_syscall(SYS_rt_sigtimedwait, &only, &info, &no_wait, sizeof only) == sig) {
      hold_signal_for_process(sig, &info);
    }
  }
  bool (*route)() = g_router.load(std::memory_order_acquire);
  if (route && (g_route_requested.exchange(false, std::memory_order_seq_cst) || g_route_again)) g_route_again = route();
}

bool signal_routing_wanted() { return g_route_requested.load(std::memory_order_seq_cst) || g_route_again; }

void reset_signals_after_fork() {
  // The child starts with no pending signals (POSIX), and another thread may have held a slot.
  g_process_pending.store(0, std::memory_order_relaxed);
  for (InfoSlot& slot : g_slots) slot.state.store(kEmpty, std::memory_order_relaxed);
  for (auto& refusers : g_refusers) refusers.store(0, std::memory_order_relaxed);
  g_route_requested.store(false, std::memory_order_relaxed);
  g_route_again = false;
  g_monitor_tid.store(0, std::memory_order_relaxed);
  if (Fiber* self = current()) {
    self->pending_signals.store(0, std::memory_order_relaxed);
    self->process_given.store(0, std::memory_order_relaxed);
    count_signal_mask(self);  // the only fiber left
  }
}

}  // namespace vthread::sched
