// Scheduling attributes: policy and priority (get/set, setschedprio, explicit and inherited at
// create, their error codes), run order by priority on one carrier, CPU affinity (round trips,
// inheritance, attributes, errors) and per-thread CPU-time clocks.
//
// Every check that runs natively holds for Linux pthreads too. Natively, real-time policies may be
// refused with EPERM (no CAP_SYS_NICE), and nothing orders threads by priority on a multi-core
// machine, so those checks run only where they are meaningful. Threads whose affinity or policy
// changes are helpers, never the gtest main thread.
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <vector>

#include "tests/integration/util.h"

namespace {

using vthread_test::ExpectFibers;
using vthread_test::Gate;
using vthread_test::kNsPerMs;
using vthread_test::PollUntil;
using vthread_test::RunInThread;

// A thread running `fn`, joined on destruction.
class Thread {
 public:
  explicit Thread(std::function<void()> fn, const pthread_attr_t* attr = nullptr) : fn_(std::move(fn)) {
    create_error_ = pthread_create(&thread_, attr, Trampoline, this);
  }
  ~Thread() {
    if (create_error_ == 0) pthread_join(thread_, nullptr);
  }
  int create_error() const { return create_error_; }
  pthread_t handle() const { return thread_; }

 private:
  static void* Trampoline(void* self) {
    static_cast<Thread*>(self)->fn_();
    return nullptr;
  }
  std::function<void()> fn_;
  pthread_t thread_{};
  int create_error_;
};

struct Sched {
  int policy;
  int priority;
};

Sched SchedOf(pthread_t thread) {
  Sched s{-1, -1};
  sched_param param{};
  EXPECT_EQ(0, pthread_getschedparam(thread, &s.policy, &param));
  s.priority = param.sched_priority;
  return s;
}

int SetSched(pthread_t thread, int policy, int priority) {
  sched_param param{};
  param.sched_priority = priority;
  return pthread_setschedparam(thread, policy, &param);
}

int64_t CpuNs(clockid_t clock) {
  timespec ts{};
  EXPECT_EQ(0, clock_gettime(clock, &ts));
  return int64_t{ts.tv_sec} * vthread_test::kNsPerSec + ts.tv_nsec;
}

// Real-time policies: always granted under vthread; natively only with CAP_SYS_NICE or an
// RLIMIT_RTPRIO. Returns false (and checks nothing) if the kernel refused.
bool RealTimeGranted(int err) {
  if (ExpectFibers()) {
    EXPECT_EQ(0, err);
    return true;
  }
  EXPECT_TRUE(err == 0 || err == EPERM) << err;
  return err == 0;
}

TEST(SchedParamTest, RoundTripsAndErrorCodes) {
  Gate done;
  Thread helper([&] { done.Wait(1000); });
  pthread_t h = helper.handle();

  Sched s = SchedOf(h);
  EXPECT_EQ(SCHED_OTHER, s.policy);
  EXPECT_EQ(0, s.priority);

  EXPECT_EQ(0, SetSched(h, SCHED_BATCH, 0));
  s = SchedOf(h);
  EXPECT_EQ(SCHED_BATCH, s.policy);
  EXPECT_EQ(0, s.priority);

  // Bad policies and priorities out of sched_get_priority_min..max leave the thread as it was.
  EXPECT_EQ(EINVAL, SetSched(h, 12345, 0));
  EXPECT_EQ(EINVAL, SetSched(h, SCHED_OTHER, 1));
  EXPECT_EQ(EINVAL, SetSched(h, SCHED_IDLE, 1));
  EXPECT_EQ(EINVAL, SetSched(h, SCHED_FIFO, 0));
  EXPECT_EQ(EINVAL, SetSched(h, SCHED_RR, 100));
  EXPECT_EQ(EINVAL, SetSched(h, SCHED_FIFO, -1));
  EXPECT_EQ(EINVAL, pthread_setschedprio(h, 5));  // SCHED_BATCH takes only 0
  s = SchedOf(h);
  EXPECT_EQ(SCHED_BATCH, s.policy);
  EXPECT_EQ(0, s.priority);
  EXPECT_EQ(0, pthread_setschedprio(h, 0));

  if (RealTimeGranted(SetSched(h, SCHED_FIFO, 10))) {
    s = SchedOf(h);
    EXPECT_EQ(SCHED_FIFO, s.policy);
    EXPECT_EQ(10, s.priority);
    EXPECT_EQ(0, pthread_setschedprio(h, 99));
    EXPECT_EQ(99, SchedOf(h).priority);
    EXPECT_EQ(EINVAL, pthread_setschedprio(h, 0));
    EXPECT_EQ(EINVAL, pthread_setschedprio(h, 100));
    EXPECT_EQ(99, SchedOf(h).priority);
    EXPECT_EQ(0, SetSched(h, SCHED_RR, 1));
    EXPECT_EQ(SCHED_RR, SchedOf(h).policy);
  }
  // Last, as leaving SCHED_IDLE may need privileges natively.
  EXPECT_EQ(0, SetSched(h, SCHED_IDLE, 0));
  EXPECT_EQ(SCHED_IDLE, SchedOf(h).policy);
  done.Open();
}

// Once a thread has exited (joinable, not yet joined) its handle is ESRCH for the scheduling calls,
// as glibc says once the kernel has cleared the thread's tid.
TEST(SchedParamTest, ExitedThreadIsEsrch) {
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* { return nullptr; }, nullptr));
  sched_param param{};
  int policy;
  ASSERT_TRUE(PollUntil([&] { return pthread_getschedparam(t, &policy, &param) == ESRCH; }));
  EXPECT_EQ(ESRCH, pthread_setschedparam(t, SCHED_OTHER, &param));
  EXPECT_EQ(ESRCH, pthread_setschedprio(t, 0));
  clockid_t clock;
  EXPECT_EQ(ESRCH, pthread_getcpuclockid(t, &clock));
  ASSERT_EQ(0, pthread_join(t, nullptr));
}

TEST(SchedParamTest, CreatedThreadsInheritOrTakeTheAttribute) {
  RunInThread([] {
    ASSERT_EQ(0, SetSched(pthread_self(), SCHED_BATCH, 0));
    // PTHREAD_INHERIT_SCHED (the default): the creator's policy.
    RunInThread([] { EXPECT_EQ(SCHED_BATCH, SchedOf(pthread_self()).policy); });

    // PTHREAD_EXPLICIT_SCHED: the attribute's, whatever the creator's.
    pthread_attr_t attr;
    ASSERT_EQ(0, pthread_attr_init(&attr));
    ASSERT_EQ(0, pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED));
    ASSERT_EQ(0, pthread_attr_setschedpolicy(&attr, SCHED_OTHER));
    RunInThread([] { EXPECT_EQ(SCHED_OTHER, SchedOf(pthread_self()).policy); }, &attr);

    // A real-time policy with the attribute's default priority 0 is out of range: pthread_create
    // says so, not the attribute setters (which check each value against the current other one).
    ASSERT_EQ(0, pthread_attr_setschedpolicy(&attr, SCHED_FIFO));
    {
      Thread t([] {}, &attr);
      EXPECT_EQ(EINVAL, t.create_error());
    }
    sched_param param{};
    param.sched_priority = 30;
    ASSERT_EQ(0, pthread_attr_setschedparam(&attr, &param));
    {
      Sched seen{-1, -1};
      Thread t([&] { seen = SchedOf(pthread_self()); }, &attr);
      if (RealTimeGranted(t.create_error())) {
        pthread_join(t.handle(), nullptr);
        EXPECT_EQ(SCHED_FIFO, seen.policy);
        EXPECT_EQ(30, seen.priority);
      }
    }
    pthread_attr_destroy(&attr);
  });
}

// With one carrier, threads made runnable while the main thread holds the carrier run by
// priority once it blocks: highest level first, creation order within a level. Natively nothing
// orders them on a multi-core machine, so this runs only under vthread with one carrier.
TEST(SchedPriorityTest, HigherPriorityRunsFirstOnOneCarrier) {
  if (!ExpectFibers() || vthread_test::Carriers() != 1) GTEST_SKIP() << "needs vthread with one carrier";
  std::vector<int> order;
  auto body = [](void* arg) -> void* {
    auto* slot = static_cast<std::pair<std::vector<int>*, int>*>(arg);
    slot->first->push_back(slot->second);
    return nullptr;
  };
  struct Spec {
    bool explicit_sched;
    int policy;
    int priority;
  };
  // Ids are the expected run order.
  // The creator runs at SCHED_FIFO 99 meanwhile, a run-queue level above every thread it creates:
  // one that outranked it, or even matched it, could run at once (preemption), as on a single CPU
  // natively.
  ASSERT_EQ(0, SetSched(pthread_self(), SCHED_FIFO, 99));
  const std::vector<std::pair<int, Spec>> specs = {
      {6, {true, SCHED_OTHER, 0}},
      {2, {true, SCHED_RR, 40}},
      {0, {true, SCHED_FIFO, 92}},  // the level below SCHED_FIFO 99's
      {7, {true, SCHED_OTHER, 0}},
      {4, {true, SCHED_FIFO, 1}},
      {1, {true, SCHED_FIFO, 70}},
      {3, {true, SCHED_FIFO, 10}},
  };
  std::vector<std::pair<std::vector<int>*, int>> args;
  args.reserve(specs.size() + 2);
  std::vector<pthread_t> threads;
  for (const auto& [id, spec] : specs) {
    pthread_attr_t attr;
    ASSERT_EQ(0, pthread_attr_init(&attr));
    if (spec.explicit_sched) {
      ASSERT_EQ(0, pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED));
      ASSERT_EQ(0, pthread_attr_setschedpolicy(&attr, spec.policy));
      sched_param param{};
      param.sched_priority = spec.priority;
      ASSERT_EQ(0, pthread_attr_setschedparam(&attr, &param));
    }
    args.push_back({&order, id});
    pthread_t t;
    ASSERT_EQ(0, pthread_create(&t, &attr, body, &args.back()));
    threads.push_back(t);
    pthread_attr_destroy(&attr);
  }
  // Changed while they wait on the run queue: a default thread lowered to SCHED_IDLE runs last; one
  // raised to SCHED_FIFO 5 joins the level of SCHED_FIFO 1, behind it.
  pthread_t lowered, raised;
  pthread_attr_t other;
  ASSERT_EQ(0, pthread_attr_init(&other));
  ASSERT_EQ(0, pthread_attr_setinheritsched(&other, PTHREAD_EXPLICIT_SCHED));
  ASSERT_EQ(0, pthread_attr_setschedpolicy(&other, SCHED_OTHER));
  args.push_back({&order, 8});
  ASSERT_EQ(0, pthread_create(&lowered, &other, body, &args.back()));
  args.push_back({&order, 5});
  ASSERT_EQ(0, pthread_create(&raised, &other, body, &args.back()));
  pthread_attr_destroy(&other);
  ASSERT_EQ(0, SetSched(lowered, SCHED_IDLE, 0));
  ASSERT_EQ(0, SetSched(raised, SCHED_FIFO, 5));
  EXPECT_TRUE(order.empty()) << "a created thread ran before the creator blocked";
  for (pthread_t t : threads) ASSERT_EQ(0, pthread_join(t, nullptr));
  ASSERT_EQ(0, pthread_join(lowered, nullptr));
  ASSERT_EQ(0, pthread_join(raised, nullptr));
  ASSERT_EQ(0, SetSched(pthread_self(), SCHED_OTHER, 0));
  EXPECT_EQ((std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}), order);
}

// ---- affinity ------------------------------------------------------------------------------------

cpu_set_t ProcessCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(0, sched_getaffinity(0, sizeof set, &set));
  return set;
}

int FirstCpu(const cpu_set_t& set) {
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) return cpu;
  }
  return -1;
}

cpu_set_t OnlyCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return set;
}

bool Same(const cpu_set_t& a, const cpu_set_t& b) { return CPU_EQUAL(&a, &b); }

cpu_set_t AffinityOf(pthread_t thread) {
  cpu_set_t set;
  memset(&set, 0xa5, sizeof set);
  EXPECT_EQ(0, pthread_getaffinity_np(thread, sizeof set, &set));
  return set;
}

TEST(AffinityTest, DefaultIsTheProcessCpusForEveryThread) {
  cpu_set_t process = ProcessCpus();
  ASSERT_GT(CPU_COUNT(&process), 0);
  EXPECT_TRUE(Same(process, AffinityOf(pthread_self()))) << "main thread";
  RunInThread([&] {
    cpu_set_t mine = ProcessCpus();
    EXPECT_TRUE(Same(process, mine));
    cpu_set_t by_tid;
    ASSERT_EQ(0, sched_getaffinity(static_cast<pid_t>(syscall(SYS_gettid)), sizeof by_tid, &by_tid));
    EXPECT_TRUE(Same(process, by_tid));
  });
}

TEST(AffinityTest, SetGetRoundTripAndInheritance) {
  const int cpu = FirstCpu(ProcessCpus());
  ASSERT_GE(cpu, 0);
  const cpu_set_t one = OnlyCpu(cpu);
  Gate set_done, done;
  Thread helper([&] {
    ASSERT_EQ(0, pthread_setaffinity_np(pthread_self(), sizeof one, &one));
    EXPECT_TRUE(Same(one, AffinityOf(pthread_self())));
    cpu_set_t via_sched;
    ASSERT_EQ(0, sched_getaffinity(0, sizeof via_sched, &via_sched));
    EXPECT_TRUE(Same(one, via_sched));
    // A thread it creates inherits the mask.
    RunInThread([&] { EXPECT_TRUE(Same(one, AffinityOf(pthread_self()))); });
    // sched_setaffinity on itself is the same thing; getpid() names the main thread.
    cpu_set_t process;
    ASSERT_EQ(0, sched_getaffinity(getpid(), sizeof process, &process));
    EXPECT_GT(CPU_COUNT(&process), 0);
    ASSERT_EQ(0, sched_setaffinity(0, sizeof process, &process));
    EXPECT_TRUE(Same(process, AffinityOf(pthread_self())));
    ASSERT_EQ(0, sched_setaffinity(0, sizeof one, &one));
    set_done.Open();
    done.Wait(1000);
  });
  set_done.Wait(1000);
  // Another thread reads it through the handle.
  EXPECT_TRUE(Same(one, AffinityOf(helper.handle())));
  done.Open();
}

TEST(AffinityTest, MasksAreCutToTheProcessCpus) {
  const cpu_set_t process = ProcessCpus();
  if (CPU_ISSET(CPU_SETSIZE - 1, &process)) GTEST_SKIP() << "this machine has CPU " << CPU_SETSIZE - 1;
  const int cpu = FirstCpu(process);
  RunInThread([&] {
    cpu_set_t wide = OnlyCpu(cpu);
    CPU_SET(CPU_SETSIZE - 1, &wide);
    ASSERT_EQ(0, pthread_setaffinity_np(pthread_self(), sizeof wide, &wide));
    const cpu_set_t one = OnlyCpu(cpu);
    EXPECT_TRUE(Same(one, AffinityOf(pthread_self())));

    // No CPU left: EINVAL, and the mask stays.
    cpu_set_t none;
    CPU_ZERO(&none);
    EXPECT_EQ(EINVAL, pthread_setaffinity_np(pthread_self(), sizeof none, &none));
    cpu_set_t beyond = OnlyCpu(CPU_SETSIZE - 1);
    EXPECT_EQ(EINVAL, pthread_setaffinity_np(pthread_self(), sizeof beyond, &beyond));
    errno = 0;
    EXPECT_EQ(-1, sched_setaffinity(0, sizeof none, &none));
    EXPECT_EQ(EINVAL, errno);
    EXPECT_TRUE(Same(one, AffinityOf(pthread_self())));
  });
}

TEST(AffinityTest, GetWithTooSmallABufferIsEinval) {
  vthread_test::RunHereAndInThread([] {
    cpu_set_t set;
    EXPECT_EQ(EINVAL, pthread_getaffinity_np(pthread_self(), 0, &set));
    EXPECT_EQ(EINVAL, pthread_getaffinity_np(pthread_self(), 4, &set));  // not a multiple of long
    errno = 0;
    EXPECT_EQ(-1, sched_getaffinity(0, 4, &set));
    EXPECT_EQ(EINVAL, errno);
    // Bytes past the kernel's mask are cleared, as glibc does.
    memset(&set, 0xff, sizeof set);
    ASSERT_EQ(0, sched_getaffinity(0, sizeof set, &set));
    EXPECT_FALSE(CPU_ISSET(CPU_SETSIZE - 1, &set));
  });
}

TEST(AffinityTest, AttributeAffinityAtCreate) {
  const cpu_set_t process = ProcessCpus();
  const cpu_set_t one = OnlyCpu(FirstCpu(process));
  pthread_attr_t attr;
  ASSERT_EQ(0, pthread_attr_init(&attr));
  ASSERT_EQ(0, pthread_attr_setaffinity_np(&attr, sizeof one, &one));
  RunInThread([&] { EXPECT_TRUE(Same(one, AffinityOf(pthread_self()))); }, &attr);

  cpu_set_t none;
  CPU_ZERO(&none);
  ASSERT_EQ(0, pthread_attr_setaffinity_np(&attr, sizeof none, &none));
  {
    Thread t([] {}, &attr);
    EXPECT_EQ(EINVAL, t.create_error());
  }
  // A mask larger than cpu_set_t: the kernel reads as much of it as its own masks hold.
  const int kBig = 4 * CPU_SETSIZE;
  cpu_set_t* big = CPU_ALLOC(kBig);
  ASSERT_NE(nullptr, big);
  CPU_ZERO_S(CPU_ALLOC_SIZE(kBig), big);
  CPU_SET_S(kBig - 1, CPU_ALLOC_SIZE(kBig), big);
  ASSERT_EQ(0, pthread_attr_setaffinity_np(&attr, CPU_ALLOC_SIZE(kBig), big));
  if (!CPU_ISSET(CPU_SETSIZE - 1, &process)) {
    Thread t([] {}, &attr);
    EXPECT_EQ(EINVAL, t.create_error());
  }
  CPU_SET_S(FirstCpu(process), CPU_ALLOC_SIZE(kBig), big);
  ASSERT_EQ(0, pthread_attr_setaffinity_np(&attr, CPU_ALLOC_SIZE(kBig), big));
  RunInThread([&] { EXPECT_TRUE(Same(one, AffinityOf(pthread_self()))); }, &attr);
  CPU_FREE(big);
  pthread_attr_destroy(&attr);
  // Without a mask in the attribute the creator's is inherited.
  ASSERT_EQ(0, pthread_attr_init(&attr));
  RunInThread([&] { EXPECT_TRUE(Same(process, AffinityOf(pthread_self()))); }, &attr);
  pthread_attr_destroy(&attr);
}

// ---- CPU-time clocks -------------------------------------------------------------------------------

// Burns CPU until the calling thread's CPU clock has advanced `ns`, yielding now and then so
// that other threads run too on one carrier.
void Burn(int64_t ns) {
  const int64_t until = CpuNs(CLOCK_THREAD_CPUTIME_ID) + ns;
  volatile uint64_t sink = 0;
  while (CpuNs(CLOCK_THREAD_CPUTIME_ID) < until) {
    for (int i = 0; i < 20000; ++i) sink = sink + i;
    sched_yield();
  }
}

// While one thread works and the others sleep, the process's CPU time (the kernel's, with or
// without vthread) is what that thread used: its own clock must have grown as much, and no more
// than the wall time passed. (Under vthread a fiber's clock also counts time the kernel took its
// carrier away, so only the lower bound is tight natively.)
TEST(CpuClockTest, BusyThreadGrowsWithItsWorkSleepingThreadDoesNot) {
  RunInThread([] {
    CpuNs(CLOCK_THREAD_CPUTIME_ID);  // whatever a first read costs, outside the measurement
    const int64_t wall = vthread_test::NowNs();
    const int64_t process = CpuNs(CLOCK_PROCESS_CPUTIME_ID);
    const int64_t thread = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    volatile uint64_t sink = 0;
    while (CpuNs(CLOCK_PROCESS_CPUTIME_ID) - process < 50 * kNsPerMs) {
      for (int i = 0; i < 100000; ++i) sink = sink + i;
    }
    const int64_t used = CpuNs(CLOCK_THREAD_CPUTIME_ID) - thread;
    const int64_t process_used = CpuNs(CLOCK_PROCESS_CPUTIME_ID) - process;
    EXPECT_GE(used, process_used * 9 / 10 - 2 * kNsPerMs) << used << " of " << process_used;
    EXPECT_LE(used, vthread_test::NowNs() - wall) << used;
  });
  RunInThread([] {
    int64_t before = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    int64_t wall = vthread_test::NowNs();
    usleep(200 * 1000);
    EXPECT_GE(vthread_test::NowNs() - wall, 200 * kNsPerMs);
    EXPECT_LT(CpuNs(CLOCK_THREAD_CPUTIME_ID) - before, 20 * kNsPerMs);
  });
}

TEST(CpuClockTest, AnotherThreadsClockIsReadableWhileItRuns) {
  Gate stop;
  std::atomic<bool> burning{false};
  Thread busy([&] {
    burning = true;
    while (!stop.IsOpen()) Burn(kNsPerMs);
  });
  clockid_t clock;
  ASSERT_EQ(0, pthread_getcpuclockid(busy.handle(), &clock));
  EXPECT_NE(CLOCK_THREAD_CPUTIME_ID, clock);
  timespec res{};
  ASSERT_EQ(0, clock_getres(clock, &res));
  EXPECT_EQ(0, res.tv_sec);
  EXPECT_EQ(1, res.tv_nsec);
  ASSERT_TRUE(PollUntil([&] { return burning.load(); }));
  // It only goes up, and reaches 50 ms while the reader watches.
  int64_t last = 0;
  ASSERT_TRUE(PollUntil([&] {
    int64_t now = CpuNs(clock);
    EXPECT_GE(now, last);
    last = now;
    return now >= 50 * kNsPerMs;
  }));
  stop.Open();
}

TEST(CpuClockTest, OwnClockThroughGetcpuclockidAgreesWithThreadClock) {
  vthread_test::RunHereAndInThread([] {
    clockid_t mine;
    ASSERT_EQ(0, pthread_getcpuclockid(pthread_self(), &mine));
    int64_t a = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    int64_t b = CpuNs(mine);
    int64_t c = CpuNs(CLOCK_THREAD_CPUTIME_ID);
    EXPECT_LE(a, b);
    EXPECT_LE(b, c);
    timespec res{};
    ASSERT_EQ(0, clock_getres(CLOCK_THREAD_CPUTIME_ID, &res));
    EXPECT_EQ(0, res.tv_sec);
    EXPECT_EQ(1, res.tv_nsec);
  });
}

TEST(CpuClockTest, ClockOfAGoneThreadIsEinval) {
  static Gate exit_now;
  pthread_t t;
  ASSERT_EQ(0, pthread_create(&t, nullptr, [](void*) -> void* {
    exit_now.Wait(1000);
    return nullptr;
  }, nullptr));
  clockid_t clock;
  ASSERT_EQ(0, pthread_getcpuclockid(t, &clock));
  exit_now.Open();
  ASSERT_EQ(0, pthread_join(t, nullptr));
  timespec ts;
  errno = 0;
  EXPECT_EQ(-1, clock_gettime(clock, &ts));
  EXPECT_EQ(EINVAL, errno);
  errno = 0;
  EXPECT_EQ(-1, clock_getres(clock, &ts));
  EXPECT_EQ(EINVAL, errno);
  // A per-thread CPU clock of a thread id no kernel hands out.
  const clockid_t made_up = static_cast<clockid_t>((~((1u << 27) | 0x3fffffu) << 3) | 6);
  errno = 0;
  EXPECT_EQ(-1, clock_gettime(made_up, &ts));
  EXPECT_EQ(EINVAL, errno);
}

TEST(CpuClockTest, NanosleepOnCpuClocks) {
  timespec ms = {0, kNsPerMs};
  // glibc refuses CLOCK_THREAD_CPUTIME_ID; the kernel refuses the caller's own clock by id.
  EXPECT_EQ(EINVAL, clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &ms, nullptr));
  clockid_t mine;
  ASSERT_EQ(0, pthread_getcpuclockid(pthread_self(), &mine));
  EXPECT_EQ(EINVAL, clock_nanosleep(mine, 0, &ms, nullptr));

  // Sleeping on another thread's clock ends once that thread has used the time.
  Gate stop;
  Thread busy([&] {
    while (!stop.IsOpen()) Burn(kNsPerMs);
  });
  clockid_t clock;
  ASSERT_EQ(0, pthread_getcpuclockid(busy.handle(), &clock));
  int64_t start = CpuNs(clock);
  timespec twenty = {0, 20 * kNsPerMs};
  EXPECT_EQ(0, clock_nanosleep(clock, 0, &twenty, nullptr));
  EXPECT_GE(CpuNs(clock) - start, 20 * kNsPerMs);
  stop.Open();
}

}  // namespace
