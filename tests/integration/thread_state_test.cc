// glibc's and libstdc++'s per-thread state must be per thread (per fiber under the shim), even
// when threads yield in the middle of using it and resume on another carrier: C++ exception
// state, stdio lock ownership, locale, setjmp buffers and stack canaries (this file is built with
// -fstack-protector-all), errno after a blocking call; thread exit runs thread_local and key
// destructors exactly once, in glibc's order; and a million thread lifetimes leak nothing.
#include <ctype.h>
#include <locale.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/util.h"

namespace vthread_test {
namespace {

// Runs fn(i) on `n` threads at once and joins them.
template <typename Fn>
void RunThreads(int n, Fn fn) {
  struct Arg {
    Fn* fn;
    int index;
  };
  std::vector<pthread_t> threads(n);
  std::vector<Arg> args(n);
  for (int i = 0; i < n; ++i) {
    args[i] = {&fn, i};
    ASSERT_EQ(pthread_create(&threads[i], nullptr, [](void* p) -> void* {
      auto* a = static_cast<Arg*>(p);
      (*a->fn)(a->index);
      return nullptr;
    }, &args[i]), 0);
  }
  for (pthread_t t : threads) ASSERT_EQ(pthread_join(t, nullptr), 0);
}

void Churn() {
  for (int i = 0; i < 3; ++i) sched_yield();
  usleep(100);
}

TEST(ThreadState, CaughtExceptionsStayWithTheirThreadAcrossYields) {
  std::atomic<int> bad{0};
  RunThreads(32, [&](int index) {
    std::string mine = "thread " + std::to_string(index);
    try {
      throw std::runtime_error(mine);
    } catch (...) {
      for (int i = 0; i < 20; ++i) {
        Churn();
        try {
          std::rethrow_exception(std::current_exception());
        } catch (const std::runtime_error& e) {
          if (mine != e.what()) bad++;
        }
        if (std::uncaught_exceptions() != 0) bad++;
      }
    }
    if (std::current_exception()) bad++;
  });
  EXPECT_EQ(bad.load(), 0);
}

struct YieldsWhileUnwinding {
  std::atomic<int>* bad;
  ~YieldsWhileUnwinding() {
    for (int i = 0; i < 10; ++i) {
      Churn();
      if (std::uncaught_exceptions() != 1) (*bad)++;
    }
  }
};

TEST(ThreadState, UncaughtExceptionCountIsPerThread) {
  std::atomic<int> bad{0};
  RunThreads(32, [&](int index) {
    if (index % 2) {
      // Threads that never throw must see 0 while their neighbours are unwinding.
      for (int i = 0; i < 20; ++i) {
        Churn();
        if (std::uncaught_exceptions() != 0) bad++;
      }
      return;
    }
    try {
      YieldsWhileUnwinding guard{&bad};
      throw index;
    } catch (int caught) {
      if (caught != index) bad++;
    }
  });
  EXPECT_EQ(bad.load(), 0);
}

// Destruction log of one thread: thread_local objects and pthread keys record themselves.
struct ExitLog {
  std::atomic<int> tls_destroyed{0};
  std::atomic<int> key_destroyed{0};
  std::atomic<int> order_bad{0};
};
pthread_key_t g_log_key;
thread_local ExitLog* t_log = nullptr;

struct RecordsDestruction {
  ~RecordsDestruction() {
    if (t_log) t_log->tls_destroyed++;
  }
};
thread_local RecordsDestruction t_records;

TEST(ThreadState, ThreadLocalThenKeyDestructorsRunOnceEachInGlibcOrder) {
  ASSERT_EQ(pthread_key_create(&g_log_key, [](void* p) {
    auto* log = static_cast<ExitLog*>(p);
    // glibc's start_thread runs __call_tls_dtors before the key destructors.
    if (log->tls_destroyed.load() != 1) log->order_bad++;
    log->key_destroyed++;
  }), 0);
  constexpr int kThreads = 64;
  std::vector<ExitLog> logs(kThreads);
  RunThreads(kThreads, [&](int index) {
    t_log = &logs[index];
    (void)&t_records;  // constructs it, registering its destructor
    pthread_setspecific(g_log_key, &logs[index]);
    Churn();
  });
  for (const ExitLog& log : logs) {
    EXPECT_EQ(log.tls_destroyed.load(), 1);
    EXPECT_EQ(log.key_destroyed.load(), 1);
    EXPECT_EQ(log.order_bad.load(), 0);
  }
  pthread_key_delete(g_log_key);
}

TEST(ThreadState, SetjmpAndLongjmpAcrossYields) {
  std::atomic<int> bad{0};
  RunThreads(32, [&](int index) {
    jmp_buf env;
    volatile int jumps = 0;
    if (setjmp(env) != 0 && jumps == 10) return;
    if (jumps > 10) {
      bad++;
      return;
    }
    Churn();  // the mangled pointers in env must still decode on whichever carrier we are now
    jumps = jumps + 1;
    (void)index;
    longjmp(env, 1);
  });
  EXPECT_EQ(bad.load(), 0);
}

// Every function here has a canary (-fstack-protector-all): a frame whose prologue and epilogue
// ran on different carriers would abort if the canary were not the same in every TCB.
TEST(ThreadState, StackCanariesSurviveMigration) {
  std::atomic<int> sum{0};
  RunThreads(32, [&](int index) {
    char buffer[64];
    snprintf(buffer, sizeof buffer, "%d", index);
    Churn();
    sum += atoi(buffer);
  });
  EXPECT_EQ(sum.load(), 32 * 31 / 2);
}

TEST(ThreadState, StdioLockOwnershipIsPerThread) {
  std::atomic<bool> held{false};
  std::atomic<bool> done{false};
  std::atomic<int> stolen{0};
  RunThreads(2, [&](int index) {
    if (index == 0) {
      flockfile(stdout);
      held = true;
      while (!done) Churn();
      funlockfile(stdout);
    } else {
      while (!held) Churn();
      for (int i = 0; i < 20; ++i) {
        // Another thread holds the lock: trylock must fail, wherever either of us runs.
        if (ftrylockfile(stdout) == 0) {
          stolen++;
          funlockfile(stdout);
        }
        Churn();
      }
      done = true;
    }
  });
  EXPECT_EQ(stolen.load(), 0);
}

TEST(ThreadState, LocaleAndCtypeArePerThread) {
  locale_t utf8 = newlocale(LC_ALL_MASK, "C.UTF-8", nullptr);
  ASSERT_NE(utf8, nullptr);
  std::atomic<int> bad{0};
  RunThreads(16, [&](int index) {
    if (!isalpha('a') || isalpha('1')) bad++;  // ctype tables set up in every thread
    size_t expected = 1;
    if (index % 2) {
      uselocale(utf8);
      expected = MB_CUR_MAX;
      if (expected == 1) bad++;
    }
    for (int i = 0; i < 10; ++i) {
      Churn();
      if (MB_CUR_MAX != expected) bad++;
    }
    uselocale(LC_GLOBAL_LOCALE);
  });
  freelocale(utf8);
  EXPECT_EQ(bad.load(), 0);
}

TEST(ThreadState, ErrnoOfABlockingCallSurvivesOtherThreadsAndYields) {
  std::atomic<int> bad{0};
  RunThreads(16, [&](int index) {
    int* my_errno = &errno;
    if (index % 2) {
      for (int i = 0; i < 10; ++i) {
        errno = 1000 + index;
        Churn();
      }
      return;
    }
    sem_t sem;
    sem_init(&sem, 0, 0);
    timespec deadline = DeadlineIn(2 * kNsPerMs);
    if (sem_timedwait(&sem, &deadline) != -1) bad++;
    for (int i = 0; i < 5; ++i) {
      Churn();
      if (errno != ETIMEDOUT || &errno != my_errno) bad++;
    }
    sem_destroy(&sem);
  });
  EXPECT_EQ(bad.load(), 0);
}

TEST(ThreadState, SchedGetcpuWorksInEveryThread) {
  std::atomic<int> bad{0};
  RunThreads(8, [&](int) {
    for (int i = 0; i < 5; ++i) {
      int cpu = sched_getcpu();
      if (cpu < 0 || cpu >= CPU_SETSIZE) bad++;
      Churn();
    }
  });
  EXPECT_EQ(bad.load(), 0);
}

long ResidentKiB() {
  FILE* f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

thread_local std::string t_heap_string;

void* UseHeapAndThreadLocal(void*) {
  t_heap_string.assign(200, 'x');  // beyond the small-string buffer: a heap block
  free(malloc(64));
  return nullptr;
}

// Runs `total` thread lifetimes, `batch` threads alive at a time; returns the RSS growth in KiB
// after the first tenth (warm-up: pools and malloc arenas fill).
long LifetimesGrowthKiB(int total, int batch) {
  std::vector<pthread_t> threads(batch);
  long warm = 0;
  for (int done = 0; done < total; done += batch) {
    for (pthread_t& t : threads) EXPECT_EQ(pthread_create(&t, nullptr, UseHeapAndThreadLocal, nullptr), 0);
    for (pthread_t t : threads) EXPECT_EQ(pthread_join(t, nullptr), 0);
    if (done < total / 10) warm = ResidentKiB();
  }
  return ResidentKiB() - warm;
}

// Each lifetime's TLS, malloc tcache and heap-allocated thread_local must be released or reused:
// 2 KiB lost per lifetime would be ~2 GB here. Small batches reuse cached stacks and their thread
// control blocks; large ones also free and rebuild them.
TEST(ThreadState, AMillionThreadLifetimesLeakNothing) {
  const int total = ExpectFibers() ? 1000000 : 20000;  // natively a lifetime costs ~60 us
  long growth = LifetimesGrowthKiB(total, 100);
  EXPECT_LT(growth, 16 * 1024) << "RSS grew by " << growth << " KiB after warm-up";
}

TEST(ThreadState, ThreadLifetimesBeyondTheStackCacheLeakNothing) {
  long growth = LifetimesGrowthKiB(20000, 1000);
  EXPECT_LT(growth, 16 * 1024) << "RSS grew by " << growth << " KiB after warm-up";
}

}  // namespace
}  // namespace vthread_test
