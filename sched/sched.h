// The vthread runtime: fibers multiplexed over carrier kernel threads. This is the whole interface
// the shim (and tests) use; it knows nothing of the pthread ABI. See scheduler.cc for the design.
//
// Contexts: "fiber context" means code running on a fiber; "carrier context" means a carrier's own
// scheduler loop. Functions that may switch away (yield, park, sleep_until, join) must be called in
// fiber context. Threads that are neither (a thread glibc started behind our back, or any thread
// before start()) see current() == nullptr and must not call them.
#ifndef VTHREAD_SCHED_SCHED_H_
#define VTHREAD_SCHED_SCHED_H_

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sched/clock.h"
#include "sched/fiber.h"

namespace vthread::sched {

struct Config {
  int carriers = 0;                 // 0: one per online CPU
  size_t default_stack_size = 0;    // 0: 8 MiB
  size_t default_guard_size = 0;    // 0: one page
  arch::SwitchBackend backend = arch::SwitchBackend::kAssembly;
  bool per_fiber_tls = true;        // false: fibers share their carrier's TLS (see sched/tls.h)
  Nanos quantum = 10 * 1000 * 1000; // preemption after this much running; 0: never (sched/preempt.h)
  int preempt_signal = SIGALRM;     // the tick signal
  int max_spare = 64;               // extra kernel threads for carriers blocked in the kernel
};

// Starts the runtime: turns the calling flow of control into the main fiber (it keeps its stack) and
// makes the calling kernel thread carrier 0, then starts the other carriers. Idempotent and
// thread-safe; returns false (after printing why) if the runtime cannot start.
bool start(const Config& config);
bool started();

// The fiber running on this kernel thread, or nullptr in carrier context and on foreign threads.
Fiber* current();

// The record of the program's initial thread, created on first use (before start() too, so the
// shim can keep its name and thread-specific data, and start() adopts it). nullptr once the main
// fiber has exited and been reaped.
Fiber* main_fiber();

struct SpawnAttributes {
  size_t stack_size = 0;           // 0: the configured default
  size_t guard_size = SIZE_MAX;    // SIZE_MAX: the configured default
  void* stack_addr = nullptr;      // program-supplied stack [stack_addr, stack_addr + stack_size)
  int priority = kDefaultPriority;
  bool detached = false;
  const char* name = nullptr;      // initial name; nullptr: inherit the creator's
};

// Creates a runnable fiber that calls entry(arg) and must end with exit_current(). Returns 0 or an
// errno value: EAGAIN when there are no resources for another fiber.
int spawn(const SpawnAttributes& attributes, void (*entry)(void*), void* arg, void* user_data, Fiber** out);

// Lets other runnable fibers of this carrier run; now and then also lets the kernel run another
// thread on this CPU (sched_yield).
void yield();

// The ticket of the park the current fiber is about to make. Wakers store it (under whatever lock
// guards their wait queue) before the fiber parks.
ParkTicket park_ticket();

// Suspends the current fiber until unpark() with its ticket, or until `deadline` (monotonic ns;
// kNoDeadline for none). `commit(arg)`, if given, runs after the fiber's context is saved and before
// any other fiber runs on this carrier: use it to release the lock that guards the queue the fiber
// was put on, so that no waker can see the fiber half-parked. Returns why it woke.
WakeReason park(WaitReason reason, Nanos deadline, void (*commit)(void*), void* arg);

// Makes the fiber of `ticket` runnable if that park is still in progress. Returns false if it ended
// already (woken by someone else, or timed out). Callable from any context.
bool unpark(ParkTicket ticket);

// Ends the park of `ticket` with WakeReason::kInterrupted if it is still in progress, exactly as
// unpark() would (the same compare-and-swap, so it races cleanly with a wake or a timeout). Returns
// false if that park already ended or has not begun. Callable from any context.
//
// It takes a ticket rather than a bare fiber on purpose: the caller (pthread_cancel) must end only a
// park it knows is interruptible (one made at a cancellation point), never a later park of the
// same fiber (a mutex wait in a cleanup handler). The sequence number in the ticket pins the park.
// Nothing else is done: the parker sees kInterrupted and decides what it means.
bool interrupt(ParkTicket ticket);

// Parks until `deadline` (monotonic ns) has passed.
void sleep_until(Nanos deadline);

// kInterrupted: the joiner's park was ended by interrupt(); `target` is left joinable, as after a
// timeout.
enum class JoinResult { kJoined, kDetached, kDeadlock, kAlreadyJoined, kTimedOut, kBusy, kInterrupted };

// A join deadline meaning "do not wait at all" (pthread_tryjoin_np).
constexpr Nanos kTryJoin = INT64_MIN;

// Waits for `target` to exit, until `deadline` (kNoDeadline: no limit; kTryJoin: kBusy at once if it
// has not exited), and reaps it. On kJoined, *result holds its exit value. Must be called in fiber
// context, except with kTryJoin.
JoinResult join(Fiber* target, Nanos deadline, void** result);

// Marks `target` detached: its resources go back when it exits. Returns false if it was already
// detached. Detaching a fiber someone is joining has no effect (as in glibc).
bool detach(Fiber* target);

// Ends the current fiber with `result` for its joiner. If it is the last fiber alive, if_last() is
// called first, in the fiber's context (the shim ends the process there, as glibc does).
[[noreturn]] void exit_current(void* result, void (*if_last)());

// A fiber's thread id as glibc sees it in its TCB: unique among live fibers, above any kernel
// thread id. And back: the live fiber with that id, or nullptr.
int fake_tid(const Fiber* fiber);
Fiber* fiber_of_fake_tid(int tid);

// Renames a fiber (15 bytes at most are kept).
void set_name(Fiber* fiber, const char* name);

// Sets the run-queue level of `fiber` (0 lowest .. kPriorityLevels - 1 highest). A fiber waiting
// on a run queue is moved to its new level at once; otherwise (running, parked, or caught in the
// middle of being stolen) the level applies when it is next queued. Only the order in which a
// carrier picks runnable fibers changes: nothing is preempted, and yield() still lets a fiber of
// any level run. Callable from any context.
void set_priority(Fiber* fiber, int level);

// Starts measuring fibers' CPU time: from now on each switch reads the cycle counter (see
// sched/cpu_time.h for why not before, and what it counts). Idempotent; any context.
void measure_cpu_time();

// How long carriers have run `fiber` since measuring began (for the main fiber, plus the CPU time
// its kernel thread had used when the runtime started): its CPU time. Starts measuring if that had
// not begun. Callable from any thread, for any live fiber, including one running on another
// carrier; never decreases.
Nanos cpu_time(const Fiber* fiber);

// Signals (signals.cc). Each fiber has its own signal mask (Fiber::sigmask), which is what the
// kernel applies on the carrier while that fiber runs: a switch between fibers with different masks
// changes the carrier's (one system call; fibers with the same mask switch without any). Functions
// marked async-signal-safe use atomics and system calls only.
//
// Makes signal `sig` (1..64) pending for `target`, with `info` as the siginfo it is raised with
// (nullptr: as by tgkill). It is raised on the carrier that runs the target when the target next
// returns from a switch or enters the shim and does not block it, so its handler runs on the
// target's stack as a thread-directed signal would. The target's park is not ended by it.
// Async-signal-safe.
void post_signal(Fiber* target, int sig, const siginfo_t* info = nullptr);
// Raises the calling fiber's pending signals that it does not block, on its carrier.
void deliver_pending_signals(Fiber* self, uint64_t held = 0);  // (`held`: leave these pending)
// Raises `sig` on the calling fiber's carrier, with `info` if its si_signo is set, else as by
// tgkill (sigwait: the fiber blocks it, so it stays pending on the carrier for sigtimedwait).
void raise_signal(Fiber* self, int sig, const siginfo_t* info);
// Sets the calling fiber's signal mask (bit sig-1) as the program sees it, applies it to its
// carrier (all but the tick signal: Fiber::app_blocks_tick), and raises the pending signals it
// unblocks, its own and the process's, before returning, as sigprocmask does.
void set_signal_mask(Fiber* self, uint64_t mask);
// The same at the end of a handler of the program: the kernel keeps `held` (what the handler's
// call blocked) blocked until rt_sigreturn pops the handler's frame and installs `mask` from the
// ucontext, as natively; pending signals of `held` are raised after that, the others now.
void set_signal_mask_at_return(Fiber* self, uint64_t mask, uint64_t held);
// The runtime's handler was entered in `self`, the kernel blocking `signals` (at most: the mask
// is read back) on the carrier until it returns; and it is left: rt_sigreturn will install
// `*installed`, made the fiber's mask, on the carrier the fiber is on now. Async-signal-safe.
void enter_signal_handler(Fiber* self, uint64_t signals);
// The fiber longjmp'd, perhaps out of handlers: none of the runtime's is left to finish.
void left_signal_handlers(Fiber* self);
// `entered_on`: the carrier the handler was entered on; if the fiber moved since, the ucontext's
// alternate stack becomes the new carrier's (rt_sigreturn would install the old one's).
void leave_signal_handler(Fiber* self, ucontext_t* uc, const void* entered_on);
// Around the program's handler, which the runtime's handler calls in `self`: it is program code,
// even when it runs from inside an interposed call (raise, a wait a signal ended, a blocking call a
// kick interrupted), so for its time the fiber is in no call (preemptible, reachable by kicks, and
// left for good if the handler longjmps out, where the call's end would never run), in no kick's
// raising (another instance may nest in it, as natively with SA_NODEFER), and its carrier is not
// marked as blocked (sched/handoff.h). leave_program_handler puts back what enter took.
struct ProgramHandlerScope {
  const char* in_call;
  uint64_t kicks_raising;
  Nanos blocking_since;
};
ProgramHandlerScope enter_program_handler(Fiber* self);
void leave_program_handler(Fiber* self, const ProgramHandlerScope& outer);
// Sets the signals the calling fiber waits for in sigwait (Fiber::sigwait_set).
void set_sigwait_set(Fiber* self, uint64_t wanted);
// Counts the mask of a fiber the runtime did not spawn (the main fiber, when the shim takes over
// signals) among those that decide which signals the monitor takes (signals.cc).
void count_signal_mask(Fiber* fiber);
// The signals `fiber` blocks: its mask, and the tick signal if the program blocked it
// (Fiber::app_blocks_tick). Any thread may ask about any fiber. Async-signal-safe.
uint64_t blocked_signals(const Fiber* fiber);
// The calling kernel thread's signal mask, from the kernel.
uint64_t kernel_signal_mask();
// Takes the lowest-numbered signal of `wanted` pending for `self`, or for the process; 0 if none.
// *info gets the siginfo its sender gave, or si_signo 0 if none was kept.
int take_pending_signal(Fiber* self, uint64_t wanted, siginfo_t* info);

// Process-directed signals. The runtime's handler (the shim's) gives one to the fiber it
// interrupted when that is where it belongs; otherwise it holds it for the process here, and a
// router the shim registers gives it to a fiber, on the monitor thread, outside any handler.
//
// Holds `sig` with `info` pending for the process and asks for routing; an instance pending for
// the process already, or given to a fiber that has not taken it yet, absorbs it (standard signals
// do not queue). Async-signal-safe.
void hold_signal_for_process(int sig, const siginfo_t* info);
uint64_t process_pending_signals();
// Makes the process's pending `sig` `target`'s (post_signal, with its siginfo). False if no
// longer pending (a fiber took it meanwhile) or `target` is exiting (the process has it again).
bool give_process_signal(int sig, Fiber* target);
// Takes the process's pending `sig` for the caller to act on itself; false if no longer pending.
bool take_process_signal(int sig);
// True if `sig` is the signal the runtime is raising on `self`'s carrier for `self` (the note is
// consumed). Async-signal-safe.
bool take_delivering_mark(Fiber* self, int sig);
// True if `fiber` is running program code, is in a blocking system call the shim wraps, or is
// changing its mask (set_signal_mask): a handler may run there at once (not inside the runtime,
// nor on the way to a park, which a handler would not end). Async-signal-safe.
bool takes_signals_now(const Fiber* fiber);
// If `target`, which has `sig` pending, takes signals now on a carrier, sends that carrier's thread
// a kick (see signals.cc), which makes the target raise its pending signals there at once,
// interrupting a system call as for a thread. Returns false if it did not: the signal stays
// pending until the target's next switch or shim entry.
bool hurry_signal(Fiber* target, int sig);
// For the runtime's handler: true if `info` is a kick (`self`, the fiber running here or nullptr,
// then raised its pending signals if it takes signals now). Async-signal-safe.
bool take_kick(Fiber* self, const siginfo_t* info);
// True if `info` is a kick (sigwait must not report one).
bool is_kick(const siginfo_t* info);
// True on a carrier thread (in any context) or the monitor: threads that are not the program's.
// Async-signal-safe.
bool on_runtime_thread();
// The router: called on the monitor thread after request_signal_routing(), and every monitor
// period while it returns true. Set once.
void set_signal_router(bool (*route)());
// Asks for the router to run soon. Async-signal-safe.
void request_signal_routing();
// The signals the runtime's handler is installed for. The monitor takes one that every running
// fiber blocks from the kernel for a parked fiber that accepts it (signals.cc).
void set_routed_signals(uint64_t mask);
// In a fork child: no signal is pending for the child or its one fiber (POSIX).
void reset_signals_after_fork();

// In the child of a fork(), before anything else runs there: the runtime keeps only the thread
// that forked (if it is a fiber, it goes on as the only fiber, on carrier 0), drops every other
// fiber, resets its locks and queues, and starts fresh carrier threads. No-op if not started.
void after_fork_in_child();

// True if each fiber has its own TCB and TLS (sched/tls.h); false if fibers share the carrier's.
bool per_fiber_tls();

// Runs the calling fiber's C++ thread_local destructors, as glibc does when a thread exits. No-op
// when fibers share their carrier's TLS (the destructors would be other fibers' too).
void run_thread_local_destructors();

// Initialises, in every fiber, the static TLS of libraries the program loaded since (sched/tls.h).
void after_dlopen();

struct Stats {
  size_t carriers;
  size_t live_fibers;
  uint64_t switches;
  uint64_t steals;
  uint64_t idle_sleeps;
  uint64_t preemptions;
  uint64_t ticks_deferred;
};
Stats stats();

}  // namespace vthread::sched

#endif  // VTHREAD_SCHED_SCHED_H_
