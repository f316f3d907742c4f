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

// Signals. Each fiber has its own signal mask (Fiber::sigmask), which is what the kernel applies
// on the carrier while that fiber runs: a switch between fibers with different masks changes the
// carrier's (one system call; fibers with the same mask switch without any).
//
// Makes signal `sig` (1..64) pending for `target`. It is raised on the carrier that runs the
// target when the target next returns from a switch or enters the shim and does not block it, so
// its handler runs on the target's stack as a thread-directed signal would. The target's park is
// not ended by it.
void post_signal(Fiber* target, int sig);
// Raises the calling fiber's pending signals that it does not block, on its carrier.
void deliver_pending_signals(Fiber* self);
// Sets the calling fiber's signal mask (bit sig-1), applies it to its carrier, and raises the
// pending signals it unblocks before returning, as sigprocmask does.
void set_signal_mask(Fiber* self, uint64_t mask);
// The calling kernel thread's signal mask, from the kernel.
uint64_t kernel_signal_mask();
// Takes the lowest-numbered signal of `wanted` pending for `self`; 0 if none is.
int take_pending_signal(Fiber* self, uint64_t wanted);

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
