// The basic thread lifecycle from plain C (compiled as C11, no C++ runtime involved), so the
// shim's C ABI is exercised exactly as a C program uses it. Exits 0 when every check passes;
// each failed check prints its line and the program exits 1 at the end.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)
#define CHECK_EQ(expected, actual)                                                       \
  do {                                                                                   \
    long long e_ = (long long)(expected), a_ = (long long)(actual);                      \
    if (e_ != a_) {                                                                      \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s: expected %lld, got %lld\n",     \
              __FILE__, __LINE__, #expected, #actual, e_, a_);                           \
      ++failures;                                                                        \
    }                                                                                    \
  } while (0)

static int64_t now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timespec realtime_in(int64_t ns) {
  int64_t t = now_ns(CLOCK_REALTIME) + ns;
  struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
  return ts;
}

static void* add_one(void* arg) { return (void*)((intptr_t)arg + 1); }

static void nested_exit(int depth) {
  if (depth < 0) return;
  if (depth == 0) pthread_exit((void*)(intptr_t)0xC0DE);
  nested_exit(depth - 1);
  fprintf(stderr, "pthread_exit returned\n");
  ++failures;
}

static void* exit_nested(void* arg) {
  (void)arg;
  nested_exit(10);
  return NULL;
}

static void test_create_join(void) {
  pthread_t t;
  void* r = NULL;
  CHECK_EQ(0, pthread_create(&t, NULL, add_one, (void*)41));
  CHECK_EQ(0, pthread_join(t, &r));
  CHECK_EQ(42, (intptr_t)r);
  CHECK_EQ(0, pthread_create(&t, NULL, exit_nested, NULL));
  CHECK_EQ(0, pthread_join(t, &r));
  CHECK_EQ(0xC0DE, (intptr_t)r);
}

#define MANY 300
static void test_many(void) {
  pthread_t t[MANY];
  for (int i = 0; i < MANY; ++i) CHECK_EQ(0, pthread_create(&t[i], NULL, add_one, (void*)(intptr_t)(i * 10)));
  for (int i = 0; i < MANY; ++i) {
    void* r = NULL;
    CHECK_EQ(0, pthread_join(t[i], &r));
    CHECK_EQ(i * 10 + 1, (intptr_t)r);
  }
}

static atomic_int detached_done;
static void* detached_body(void* self_detach) {
  if (self_detach != NULL && pthread_detach(pthread_self()) != 0) return NULL;
  usleep(1000);
  atomic_fetch_add(&detached_done, 1);
  return NULL;
}

static void test_detach(void) {
  pthread_attr_t a;
  pthread_t t;
  CHECK_EQ(0, pthread_attr_init(&a));
  CHECK_EQ(0, pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED));
  for (int i = 0; i < 20; ++i) {
    CHECK_EQ(0, pthread_create(&t, &a, detached_body, NULL));
    CHECK_EQ(0, pthread_create(&t, NULL, detached_body, NULL));
    CHECK_EQ(0, pthread_detach(t));
    CHECK_EQ(0, pthread_create(&t, NULL, detached_body, (void*)1));
  }
  CHECK_EQ(0, pthread_attr_destroy(&a));
  for (int tries = 0; atomic_load(&detached_done) < 60 && tries < 20000; ++tries) usleep(1000);
  CHECK_EQ(60, atomic_load(&detached_done));
}

// A thread that stays alive until `go` is set.
static atomic_int go;
static atomic_int held_finished;
static void* held(void* arg) {
  while (!atomic_load(&go)) usleep(1000);
  atomic_store(&held_finished, 1);
  return arg;
}

static void test_join_variants_and_errors(void) {
  pthread_t t;
  void* r = NULL;
  atomic_store(&go, 0);
  CHECK_EQ(0, pthread_create(&t, NULL, held, (void*)7));
  CHECK_EQ(EBUSY, pthread_tryjoin_np(t, NULL));
  struct timespec soon = realtime_in(50000000);
  CHECK_EQ(ETIMEDOUT, pthread_timedjoin_np(t, NULL, &soon));
  CHECK(now_ns(CLOCK_REALTIME) >= (int64_t)soon.tv_sec * 1000000000 + soon.tv_nsec);
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  CHECK_EQ(ETIMEDOUT, pthread_clockjoin_np(t, NULL, CLOCK_MONOTONIC, &mono));
  CHECK_EQ(EINVAL, pthread_clockjoin_np(t, NULL, CLOCK_BOOTTIME, &mono));
  atomic_store(&go, 1);
  struct timespec later = realtime_in(30000000000LL);
  CHECK_EQ(0, pthread_timedjoin_np(t, &r, &later));
  CHECK_EQ(7, (intptr_t)r);

  CHECK_EQ(EDEADLK, pthread_join(pthread_self(), NULL));
  CHECK_EQ(EBUSY, pthread_tryjoin_np(pthread_self(), NULL));

  atomic_store(&go, 0);
  atomic_store(&held_finished, 0);
  CHECK_EQ(0, pthread_create(&t, NULL, held, NULL));
  CHECK_EQ(0, pthread_detach(t));
  CHECK_EQ(EINVAL, pthread_detach(t));    // still running, so the handle is valid
  CHECK_EQ(EINVAL, pthread_join(t, NULL));
  atomic_store(&go, 1);
  while (!atomic_load(&held_finished)) usleep(1000);
}

static pthread_t seen_self;
static void* record_self(void* arg) {
  (void)arg;
  seen_self = pthread_self();
  usleep(1000);
  return pthread_equal(seen_self, pthread_self()) ? NULL : (void*)1;
}

static void test_self_equal(void) {
  pthread_t t;
  void* r = (void*)1;
  CHECK(pthread_equal(pthread_self(), pthread_self()));
  CHECK_EQ(0, pthread_create(&t, NULL, record_self, NULL));
  CHECK_EQ(0, pthread_join(t, &r));
  CHECK(r == NULL);
  CHECK(pthread_equal(t, seen_self));
  CHECK(!pthread_equal(t, pthread_self()));
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static atomic_int once_runs;
static int once_value;
static void once_init(void) {
  atomic_fetch_add(&once_runs, 1);
  usleep(20000);
  once_value = 99;
}
static void* call_once(void* arg) {
  (void)arg;
  pthread_once(&once, once_init);
  return (void*)(intptr_t)once_value;
}

static void test_once(void) {
  pthread_t t[50];
  for (int i = 0; i < 50; ++i) CHECK_EQ(0, pthread_create(&t[i], NULL, call_once, NULL));
  for (int i = 0; i < 50; ++i) {
    void* r = NULL;
    CHECK_EQ(0, pthread_join(t[i], &r));
    CHECK_EQ(99, (intptr_t)r);
  }
  CHECK_EQ(1, atomic_load(&once_runs));
}

static pthread_key_t key;
static atomic_int dtor_calls;
static atomic_int dtor_saw_value;
static void key_dtor(void* v) {
  atomic_fetch_add(&dtor_calls, 1);
  if (v == (void*)&key && pthread_getspecific(key) == NULL) atomic_fetch_add(&dtor_saw_value, 1);
}
static void* use_key(void* arg) {
  if (pthread_getspecific(key) != NULL) return (void*)1;
  if (arg != NULL) pthread_setspecific(key, &key);
  usleep(1000);
  return pthread_getspecific(key) == arg ? NULL : (void*)1;
}

static void test_keys(void) {
  pthread_t t[20];
  CHECK_EQ(0, pthread_key_create(&key, key_dtor));
  CHECK_EQ(0, pthread_setspecific(key, (void*)5));
  for (int i = 0; i < 20; ++i) CHECK_EQ(0, pthread_create(&t[i], NULL, use_key, i % 2 ? &key : NULL));
  for (int i = 0; i < 20; ++i) {
    void* r = (void*)1;
    CHECK_EQ(0, pthread_join(t[i], &r));
    CHECK(r == NULL);
  }
  CHECK_EQ(10, atomic_load(&dtor_calls));
  CHECK_EQ(10, atomic_load(&dtor_saw_value));
  CHECK((void*)5 == pthread_getspecific(key));
  CHECK_EQ(0, pthread_setspecific(key, NULL));
  CHECK_EQ(0, pthread_key_delete(key));
}

static void* report_stack(void* arg) {
  char local;
  pthread_attr_t a;
  void* addr;
  size_t size;
  if (pthread_getattr_np(pthread_self(), &a) != 0) return (void*)1;
  pthread_attr_getstack(&a, &addr, &size);
  pthread_attr_destroy(&a);
  if (size < (size_t)(intptr_t)arg) return (void*)2;
  if (&local < (char*)addr || &local >= (char*)addr + size) return (void*)3;
  return NULL;
}

static void test_attr_and_names(void) {
  pthread_attr_t a;
  pthread_t t;
  void* r = (void*)9;
  CHECK_EQ(0, pthread_attr_init(&a));
  CHECK_EQ(EINVAL, pthread_attr_setdetachstate(&a, 42));
  CHECK_EQ(EINVAL, pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN - 1));
  CHECK_EQ(ENOTSUP, pthread_attr_setscope(&a, PTHREAD_SCOPE_PROCESS));
  CHECK_EQ(EINVAL, pthread_attr_setschedpolicy(&a, 99));
  CHECK_EQ(EINVAL, pthread_attr_setinheritsched(&a, 99));
  CHECK_EQ(0, pthread_attr_setstacksize(&a, 1 << 20));
  CHECK_EQ(0, pthread_create(&t, &a, report_stack, (void*)(intptr_t)(1 << 20)));
  CHECK_EQ(0, pthread_join(t, &r));
  CHECK(r == NULL);
  CHECK_EQ(0, pthread_attr_destroy(&a));

  char name[16];
  CHECK_EQ(0, pthread_setname_np(pthread_self(), "c-lifecycle"));
  CHECK_EQ(ERANGE, pthread_setname_np(pthread_self(), "0123456789abcdefg"));
  CHECK_EQ(0, pthread_getname_np(pthread_self(), name, sizeof name));
  CHECK(strcmp(name, "c-lifecycle") == 0);
  CHECK_EQ(ERANGE, pthread_getname_np(pthread_self(), name, 8));
}

static void test_sleeps(void) {
  int64_t t0 = now_ns(CLOCK_MONOTONIC);
  CHECK_EQ(0, usleep(10000));
  CHECK(now_ns(CLOCK_MONOTONIC) - t0 >= 10000000);
  struct timespec req = {0, 10000000};
  t0 = now_ns(CLOCK_MONOTONIC);
  CHECK_EQ(0, nanosleep(&req, NULL));
  CHECK(now_ns(CLOCK_MONOTONIC) - t0 >= 10000000);
  t0 = now_ns(CLOCK_MONOTONIC);
  CHECK_EQ(0, clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL));
  CHECK(now_ns(CLOCK_MONOTONIC) - t0 >= 10000000);
  struct timespec bad = {0, 1000000000};
  CHECK_EQ(EINVAL, clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL));
  errno = 0;
  CHECK_EQ(-1, nanosleep(&bad, NULL));
  CHECK_EQ(EINVAL, errno);
  CHECK_EQ(0, sched_yield());
}

int main(void) {
  test_create_join();
  test_many();
  test_detach();
  test_join_variants_and_errors();
  test_self_equal();
  test_once();
  test_keys();
  test_attr_and_names();
  test_sleeps();
  if (failures != 0) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("PASS\n");
  return 0;
}
