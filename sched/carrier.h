// Internal to sched/: the carrier record and the functions the scheduler's files share
// (scheduler.cc: switching, idling, stealing; startup.cc: start-up and fork; timers.cc: deadlines;
// lifecycle.cc: spawn, exit, join, detach). Nothing outside sched/ includes this.
#ifndef VTHREAD_SCHED_CARRIER_H_
#define VTHREAD_SCHED_CARRIER_H_

#include <sys/types.h>

#include <atomic>

#include "arch/context.h"
#include "arch/thread_pointer.h"
#include "sched/fiber.h"
#include "sched/run_queue.h"
#include "sched/sched.h"
#include "sched/spinlock.h"
#include "sched/stack.h"
#include "sched/timer_heap.h"

namespace vthread::sched {

// What finish_switch() does with the fiber that switched out.
// kPreempted: put it on the shared queue of preempted fibers (preempt.cc).
enum class PostSwitch : uint8_t { kNothing, kRequeue, kPark, kExit, kPreempted };

struct alignas(64) Carrier {
  int index = 0;
  pid_t tid = 0;

  Spinlock queue_lock;
  RunQueue queue;
  std::atomic<size_t> queued{0};            // queue.size(), readable without the lock

  Spinlock timer_lock;
  TimerHeap timers;
  std::atomic<Nanos> earliest_timer{kNoDeadline};

  arch::Context loop_context;               // the carrier context
  Stack loop_stack;                         // carrier 0 only; the others use their kernel stack
  char* loop_tp = nullptr;                  // the carrier context's TCB (per-fiber TLS only)
  Fiber* current = nullptr;
  uint64_t applied_sigmask = 0;             // this thread's kernel signal mask, as last set
  Fiber* last_fiber = nullptr;              // the fiber that last ran here (signals.cc)
  // Signals (signals.cc): the signal being raised here for the running fiber (0: none), and those
  // this thread was sent kicks of, drained if a fiber that blocks them runs here next.
  std::atomic<int> delivering{0};
  std::atomic<uint64_t> kicked_signals{0};
  // A fiber woken here by this carrier is left to it until then (see steal()).
  std::atomic<Nanos> fresh_until{0};

  // The pending finish_switch() work for the fiber that just switched out.
  Fiber* prev = nullptr;
  PostSwitch prev_action = PostSwitch::kNothing;
  void (*commit)(void*) = nullptr;
  void* commit_arg = nullptr;

  std::atomic<uint32_t> wake_word{0};       // futex an idle carrier sleeps on
  bool in_idle_list = false;                // guarded by g_idle_lock
  bool spinning = false;                    // owner only: woken to look for work
  Carrier* idle_next = nullptr;
  uint64_t steal_seed = 0;

  std::atomic<uint64_t> switches{0};
  // Hand-off (handoff.cc). blocking_since: when the running fiber entered a blocking call the shim
  // wraps (0: it is not in one). spare: an extra carrier started for blocked ones; dormant: a spare
  // asleep until needed again.
  std::atomic<Nanos> blocking_since{0};
  bool spare = false;
  std::atomic<bool> dormant{false};

  std::atomic<uint64_t> steals{0};
  std::atomic<uint64_t> idle_sleeps{0};
  // Set by the monitor before it ticks the carrier because the running dispatch used its quantum;
  // cleared by the tick handler. A tick without it (a woken fiber's) cut the quantum short.
  std::atomic<bool> quantum_over{false};
  // The dispatch (`switches`) a woken fiber last cut short (preempt.cc, on_runnable): once each.
  std::atomic<uint64_t> boosted_dispatch{~uint64_t{0}};
  uint32_t picks_until_shared = 61;         // owner only: pick_local()'s countdown to its 61 rule
  uint32_t yields_until_kernel = 64;        // owner only: yield()'s countdown to a kernel yield
  std::atomic<uint64_t> preemptions{0};     // ticks that switched the running fiber out
  std::atomic<uint64_t> ticks_deferred{0};  // ticks that found it at an unsafe point
};

extern Config g_config;
extern Carrier* g_carriers;
extern int g_ncarriers;
extern std::atomic<int64_t> g_live_fibers;  // fibers created and not yet exited, main included

// The runtime's thread-local slot, read through the thread pointer (see scheduler.cc's "Thread-local
// state"): always through arch::thread_pointer(), never through an address the compiler may have
// kept from before a switch.
struct CarrierLocal {
  Fiber* current;
  Carrier* carrier;
};
extern ptrdiff_t g_carrier_local_offset;  // of the slot from the thread pointer
extern ptrdiff_t g_errno_offset;
void compute_tls_offsets();
inline CarrierLocal* local_at(char* tp) {
  if (__builtin_expect(g_carrier_local_offset == 0, 0)) compute_tls_offsets();
  return reinterpret_cast<CarrierLocal*>(tp + g_carrier_local_offset);
}
inline CarrierLocal* carrier_local() { return local_at(arch::thread_pointer()); }
inline int* errno_slot() { return reinterpret_cast<int*>(arch::thread_pointer() + g_errno_offset); }

// Prints "vthread: fatal: <what>" and aborts.
[[noreturn]] void die(const char* what);

// scheduler.cc
// Makes a fiber whose park ended runnable, on the queue of the carrier we run on.
void make_runnable(Fiber* fiber);
// Ends the park of `ticket` with `why` if it is still in progress.
bool wake(ParkTicket ticket, WakeReason why);
// The next fiber of this carrier's own queue, after firing its due timers.
Fiber* pick_local(Carrier* c);
// Switches from `self` to `next` (null: the carrier context); does `action` to self once saved.
void switch_out(Fiber* self, Fiber* next, PostSwitch action, void (*commit)(void*), void* arg);
void wake_idle_carrier();
bool any_work_queued();
bool any_carrier_idle();
// True if every carrier but `blocked` ones (in blocking calls) and dormant spares is asleep in its
// idle list (the monitor's test before it sleeps).
bool all_carriers_idle(int blocked);
// The carrier context's loop: finish the last switch, find a fiber, run it; forever.
[[noreturn]] void carrier_loop(Carrier* c);
// In a fork child: empties the idle list and resets the locks scheduler.cc owns.
void reset_idle_carriers_after_fork();
// Every new fiber starts here (spawn() prepares its context with it).
void fiber_main(void* fiber);
// Returns a finished fiber's stack, context and record.
void reap(Fiber* fiber);

// timers.cc
void arm_timer(Fiber* self, uint32_t seq, Nanos deadline);
void disarm_timer(Fiber* self);
size_t fire_due_timers(Carrier* c, Nanos now);
bool timers_due(Carrier* c, Nanos* now);
Nanos earliest_timer_anywhere();
// Fires any carrier's due timers (for carriers busy in a long-running fiber).
bool fire_all_due_timers();

// preempt.cc
// The shared FIFO of preempted fibers: put one on its tail; take its head if of at least
// `priority` (pick_local() does when the carrier's own queue is empty); its length; the priority
// of its best fiber, or -1 (also when its lock is busy).
void requeue_preempted(Fiber* fiber);
Fiber* take_preempted(int priority);
size_t preempted_queued();
int preempted_top_priority();
// The next fiber of `c`'s queue if one of at least `priority` is waiting (after firing due timers).
Fiber* pick_peer_or_better(Carrier* c, int priority);

// startup.cc
// Starts the kernel thread of carrier `c` (spares too: handoff.cc).
void start_carrier_thread(Carrier* c);
// Records that the main fiber was reaped: main_fiber() will not make another.
void forget_main_fiber();

// Gives carrier `c`'s thread (the calling one) the kernel signal mask `mask` (one system call).
void apply_signal_mask(Carrier* c, uint64_t mask);

// signals.cc
// On a switch to `self` when kicks were sent to carrier `c`: takes back those `self` blocks, which
// would otherwise stay pending on the thread.
void drain_kicks(Carrier* c, Fiber* self);
// Sends carrier `c`'s thread a kick of `sig` (see signals.cc).
void send_kick(Carrier* c, int sig);
// Before fiber `self` unblocks on carrier `c` the signals `opened` that the mask applied there
// blocks: takes those pending on the carrier's kernel thread, which the kernel would otherwise give
// `self`, and gives them to whom they are for.
void reclaim_carrier_signals(Carrier* c, Fiber* self, uint64_t opened);
// The monitor thread's part (signals.cc): at its start, blocks every signal; every period, takes
// from the kernel the process's pending signals that some fiber accepts and runs the router when
// asked. It leaves those signals unblocked while it sleeps, and does not sleep while
// signal_routing_wanted().
void enter_monitor_signals();
void monitor_signal_period();
void open_monitor_signals();
void block_monitor_signals();
bool signal_routing_wanted();
// A fiber exits: its mask no longer counts, and what it was given for the process and had not
// taken goes back to the process.
void exit_signals(Fiber* self);

// lifecycle.cc
// Publishes that `fiber` switched out for good; runs in finish_switch().
void finish_exit(Fiber* fiber);

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_CARRIER_H_
