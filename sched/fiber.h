// The fiber record: everything the runtime, and any tool that inspects it (dumps, a debugger
// extension, deadlock detection), knows about one thread of the program.
//
// Records live in one table reserved at a fixed virtual range (FiberTable) and are never unmapped, so
// a handle the program holds can always be checked without faulting, and a debugger can enumerate
// every fiber by walking the table.
#ifndef VTHREAD_SCHED_FIBER_H_
#define VTHREAD_SCHED_FIBER_H_

#include <atomic>

#include <stddef.h>
#include <stdint.h>

#include "arch/context.h"
#include "sched/clock.h"
#include "sched/spinlock.h"
#include "sched/stack.h"
#include "sched/timer_heap.h"

namespace vthread::sched {

struct Carrier;
class RunQueue;

// 32 run-queue levels as in LK: 0 is the lowest, 31 the highest, kDefaultPriority for ordinary threads.
constexpr int kPriorityLevels = 32;
constexpr int kDefaultPriority = 16;

constexpr uint32_t kFiberMagic = 0x76746872;  // "vthr"

enum class FiberState : uint8_t {
  kFree,      // table slot not in use
  kRunnable,  // on a run queue, or being put on one
  kRunning,   // a carrier is executing it
  kParked,    // waiting; wait_reason says for what
  kExited,    // finished, not yet reaped (joined, or detached and released)
};

// Why a fiber is parked. Every park site has its own reason, so an all-thread dump says what each
// thread is waiting for (as Go's waitReason does). Names are in fiber.cc.
enum class WaitReason : uint8_t {
  kNone,
  kSleep,       // nanosleep / clock_nanosleep / sleep / usleep
  kJoin,        // pthread_join and its timed and try variants
  kOnce,        // pthread_once while another thread runs the initializer
  kMutex,       // pthread_mutex_lock and its timed variants
  kCondition,   // pthread_cond_wait and its timed variants
  kRwlockRead,  // pthread_rwlock_rdlock and its timed variants
  kRwlockWrite, // pthread_rwlock_wrlock and its timed variants
  kBarrier,     // pthread_barrier_wait
  kSemaphore,   // sem_wait and its timed variants
  kFutex,       // syscall(SYS_futex, FUTEX_WAIT...) from the program
  kSignal,      // sigwait / sigwaitinfo / sigtimedwait / sigsuspend / pause
  kTestPark,    // unit tests of the parking primitive
};
const char* wait_reason_name(WaitReason reason);

// How the last park ended. kInterrupted: interrupt() ended it (pthread_cancel of a thread parked at
// a cancellation point).
enum class WakeReason : uint8_t { kNone, kUnparked, kTimeout, kInterrupted };

// Identifies one park of one fiber. A waker holding a ticket from an earlier park cannot wake a
// later one: the sequence number in the fiber's state word has moved on.
struct ParkTicket {
  Fiber* fiber = nullptr;
  uint32_t seq = 0;
};

struct Fiber {
  uint32_t magic;
  uint64_t id;                          // unique for the life of the process; 1 is the main fiber
  char name[16];                        // NUL-terminated, as pthread_setname_np allows

  // Scheduling state: (park sequence << 8) | FiberState, changed by compare-and-swap so that a wake
  // and a timeout racing for the same park resolve to exactly one winner.
  std::atomic<uint64_t> sched_word;
  // True from the moment a carrier dispatches the fiber until its context is completely saved after
  // it switches out. A carrier that picks the fiber spins on this before switching to it; it is what
  // lets a fiber be made runnable while it is still on its way to parking.
  std::atomic<bool> on_cpu;
  WaitReason wait_reason;
  // While parked in the parking lot: the address it waits on (a mutex's lock word, a condition
  // variable's sequence...), moved along when a requeue moves it. For dumps, debuggers and the
  // wait-for graph; written under the parking lot's bucket lock.
  const void* wait_address;
  WakeReason wake_reason;
  uint8_t priority;                     // the run-queue level it was queued at (RunQueue's)
  // The level it is to be queued at (set_priority()); RunQueue::push_back takes it from here.
  std::atomic<uint8_t> next_priority;
  bool is_main;                         // the program's initial thread, running on the process stack

  Carrier* carrier;                     // the carrier running it, or the last one that did
  arch::Context context;
  Stack stack;
  char* tp;                             // its thread pointer (TCB); null when fibers share the carrier's
  TimerNode timer;                      // deadline of the current park, if any
  Carrier* timer_carrier;               // whose heap holds `timer` while it is armed

  Fiber* rq_next;                       // run-queue links, owned by the queue's lock
  Fiber* rq_prev;
  // The queue holding it, or null; written under that queue's lock, so set_priority() can tell
  // whether the queue it locked still holds the fiber.
  std::atomic<RunQueue*> rq_owner;

  // Lifecycle, guarded by lifecycle_lock. Joiners park on &exited (a parking-lot address) and
  // validate it without the lock, hence atomic.
  Spinlock lifecycle_lock;
  bool detached;
  std::atomic<bool> exited;
  Fiber* joiner;
  void* result;

  void (*entry)(void*);
  void* entry_arg;
  void* user_data;                      // owned by the layer above (the shim's per-thread state)
  const char* in_call;                  // the interposed function the fiber is inside, for dumps
  // Signals sent to this fiber (pthread_kill, or given to it for the process), bit sig-1, raised
  // on its carrier when it next runs and does not block them (sched/signals.cc).
  std::atomic<uint64_t> pending_signals;
  // The thread's signal mask (bit sig-1): the kernel mask of whichever carrier runs it. Only the
  // fiber itself changes it.
  uint64_t sigmask;
  // While it waits in sigwait and friends: the signals it waits for, which are taken, not raised.
  std::atomic<uint64_t> sigwait_set;
  // Set as it exits: signals given to it for the process after this go back to the process.
  std::atomic<bool> signals_closed;
  // Of its pending signals, those it was given for the process (they go back if it exits).
  std::atomic<uint64_t> process_given;
  // The signals whose kicks' handlers are raising its pending signals (signals.cc, take_kick).
  uint64_t kicks_raising;
  // While set_signal_mask() changes its carrier's mask: a process-directed signal the kernel
  // delivers as the call returns is the fiber's to handle there (sched/signals.cc).
  bool unmasking;

  // Time on a carrier, in TSC ticks (cpu_time.h): (total << 1) while it is not running, and
  // ((dispatch tick - total) << 1) | 1 while it is, so any thread can read it with one load.
  std::atomic<uint64_t> cpu_clock;
  Nanos cpu_base;                       // CPU time it had before it became a fiber (main only)

  // Preemption (preempt.cc). preempt_pending: a tick found the fiber at an unsafe point; it yields
  // at its next shim entry. app_handler_sp: the frame of the runtime's signal handler while it runs
  // the program's handler for the tick signal on this fiber (0: none). app_blocks_tick: the program
  // believes this thread blocks the tick signal (the kernel mask never does; shim/sigaction.cc).
  std::atomic<bool> preempt_pending;
  bool app_blocks_tick;
  uintptr_t app_handler_sp;
  uint64_t preemptions;                 // statistics: times switched out by a tick
  bool cpu_bound;                       // its last dispatch ended by preemption (not a park)
  bool quantum_cut;                     // preempted before its quantum was over: requeued first
  // CPU time its dispatches ran past the quantum before a tick stopped them (the monitor's lag),
  // repaid by skipping turns in the queue of preempted fibers (deficit round robin, preempt.cc).
  std::atomic<Nanos> cpu_debt;

  uint64_t switches_in;                 // statistics: times dispatched
  Nanos created_at;

  Fiber* free_next;                     // FiberTable free list
};

inline FiberState state_of(uint64_t word) { return static_cast<FiberState>(word & 0xff); }
inline uint32_t seq_of(uint64_t word) { return static_cast<uint32_t>(word >> 8); }
inline uint64_t make_sched_word(uint32_t seq, FiberState state) {
  return (uint64_t{seq} << 8) | static_cast<uint8_t>(state);
}

// The table of fiber records.
class FiberTable {
 public:
  // Reserves the address range. Returns false if the kernel refuses.
  static bool init();
  // A zeroed record with magic, id and a fresh state word, or nullptr when the table is full.
  static Fiber* allocate();
  // Returns the record to the table. The fiber must not be running or queued anywhere.
  static void release(Fiber* fiber);
  // In a fork child: frees every record but `keep` (may be null) and rebuilds the free list.
  static void keep_only_after_fork(Fiber* keep);
  // The live fiber at `address`, or nullptr if `address` is not the start of an allocated record.
  // Never faults, whatever the address.
  static Fiber* lookup(uintptr_t address);
  // True if `address` is inside the table (a live or a dead fiber's handle). Never faults.
  static bool in_range(uintptr_t address) {
    auto base = reinterpret_cast<uintptr_t>(base_);
    return base_ && address >= base && address < base + capacity_ * sizeof(Fiber);
  }
  // Calls visit(fiber) for every allocated record (for dumps and debuggers). Records may change
  // state while being visited.
  template <typename Visit>
  static void for_each(Visit visit);

  static Fiber* base() { return base_; }
  static size_t high_water() { return high_water_.load(std::memory_order_acquire); }

 private:
  static Fiber* base_;
  static size_t capacity_;
  static std::atomic<size_t> high_water_;
};

template <typename Visit>
void FiberTable::for_each(Visit visit) {
  size_t n = high_water();
  for (size_t i = 0; i < n; ++i) {
    Fiber* f = &base_[i];
    if (f->magic == kFiberMagic && state_of(f->sched_word.load(std::memory_order_acquire)) != FiberState::kFree) {
      visit(f);
    }
  }
}

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_FIBER_H_
