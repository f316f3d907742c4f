#include "shim/settings.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace vthread::shim {
namespace {

constexpr long kMaxCarriers = 1024;
constexpr size_t kMinStack = 16384;  // glibc's PTHREAD_STACK_MIN on x86_64
constexpr size_t kMaxStack = size_t{1} << 30;

bool parse_count(const char* text, long lo, long hi, long* out) {
  char* end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

// A duration: a number with an optional unit ns, us, ms (the default) or s, e.g. "10ms", "500us".
bool parse_duration(const char* text, sched::Nanos* out) {
  char* end;
  errno = 0;
  if (!isdigit(static_cast<unsigned char>(*text))) return false;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno) return false;
  sched::Nanos unit;
  if (*end == '\0' || strcmp(end, "ms") == 0) {
    unit = 1000 * 1000;
  } else if (strcmp(end, "us") == 0) {
    unit = 1000;
  } else if (strcmp(end, "ns") == 0) {
    unit = 1;
  } else if (strcmp(end, "s") == 0) {
    unit = sched::kNanosPerSecond;
  } else {
    return false;
  }
  if (v > static_cast<unsigned long long>(INT64_MAX / unit)) return false;
  *out = static_cast<sched::Nanos>(v) * unit;
  return true;
}

// Signals that may carry preemption ticks: ones whose default action the runtime can emulate and
// that neither glibc (SIGCANCEL, SIGSETXID) nor fault handling needs.
struct SignalName {
  const char* name;
  int number;
};
constexpr SignalName kTickSignals[] = {
    {"ALRM", SIGALRM}, {"URG", SIGURG}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"WINCH", SIGWINCH}, {"IO", SIGIO}, {"PWR", SIGPWR},
};

// "SIGALRM", "ALRM", "14", "SIGRTMIN+3", "RTMAX-1".
bool parse_signal(const char* text, int* out) {
  if (strncasecmp(text, "SIG", 3) == 0) text += 3;
  long n;
  if (parse_count(text, 1, SIGRTMAX, &n)) {
    for (const SignalName& s : kTickSignals) {
      if (s.number == n) {
        *out = s.number;
        return true;
      }
    }
    if (n < SIGRTMIN) return false;
    *out = static_cast<int>(n);
    return true;
  }
  for (const SignalName& s : kTickSignals) {
    if (strcasecmp(text, s.name) == 0) {
      *out = s.number;
      return true;
    }
  }
  bool min = strncasecmp(text, "RTMIN", 5) == 0, max = strncasecmp(text, "RTMAX", 5) == 0;
  if (!min && !max) return false;
  text += 5;
  long offset = 0;
  if (*text && (*text != (min ? '+' : '-') || !parse_count(text + 1, 0, SIGRTMAX - SIGRTMIN, &offset))) return false;
  *out = min ? SIGRTMIN + static_cast<int>(offset) : SIGRTMAX - static_cast<int>(offset);
  return true;
}

constexpr sched::Nanos kMinQuantum = 100 * 1000;
constexpr sched::Nanos kMaxQuantum = 10 * sched::kNanosPerSecond;

}  // namespace

bool parse_size(const char* text, size_t* out) {
  char* end;
  errno = 0;
  if (!isdigit(static_cast<unsigned char>(*text))) return false;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno) return false;
  unsigned shift = 0;
  switch (tolower(static_cast<unsigned char>(*end))) {
    case '\0': break;
    case 'k': shift = 10; ++end; break;
    case 'm': shift = 20; ++end; break;
    case 'g': shift = 30; ++end; break;
    default: return false;
  }
  if (shift && (strcmp(end, "") == 0 || strcasecmp(end, "b") == 0 || strcasecmp(end, "ib") == 0)) end += strlen(end);
  if (*end != '\0' || v > (ULLONG_MAX >> shift)) return false;
  *out = static_cast<size_t>(v << shift);
  return true;
}

sched::Config read_settings(size_t default_stack_size) {
  sched::Config config;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  config.carriers = static_cast<int>(cpus > 0 ? cpus : 1);
  config.default_stack_size = default_stack_size;

  if (const char* v = getenv("VTHREAD_CARRIERS")) {
    long n;
    if (parse_count(v, 1, kMaxCarriers, &n)) {
      config.carriers = static_cast<int>(n);
    } else {
      fprintf(stderr, "vthread: VTHREAD_CARRIERS='%s' is not a whole number from 1 to %ld; using %d (one per online CPU)\n",
              v, kMaxCarriers, config.carriers);
    }
  }
  if (const char* v = getenv("VTHREAD_STACK_SIZE")) {
    size_t size;
    if (parse_size(v, &size) && size >= kMinStack && size <= kMaxStack) {
      config.default_stack_size = size;
    } else {
      fprintf(stderr, "vthread: VTHREAD_STACK_SIZE='%s' is not a size from %zu to 1G (e.g. 64k, 8M); using %zu\n",
              v, kMinStack, default_stack_size);
    }
  }
  if (const char* v = getenv("VTHREAD_SWITCH")) {
    if (strcmp(v, "ucontext") == 0) {
      config.backend = arch::SwitchBackend::kUcontext;
    } else if (strcmp(v, "asm") != 0) {
      fprintf(stderr, "vthread: VTHREAD_SWITCH='%s' is not 'asm' or 'ucontext'; using asm\n", v);
    }
  }
  if (const char* v = getenv("VTHREAD_TLS")) {
    if (strcmp(v, "carrier") == 0) {
      config.per_fiber_tls = false;
    } else if (strcmp(v, "fiber") != 0) {
      fprintf(stderr, "vthread: VTHREAD_TLS='%s' is not 'fiber' or 'carrier'; using fiber\n", v);
    }
  }
  if (const char* v = getenv("VTHREAD_QUANTUM")) {
    sched::Nanos quantum;
    if (parse_duration(v, &quantum) && quantum >= kMinQuantum && quantum <= kMaxQuantum) {
      config.quantum = quantum;
    } else {
      fprintf(stderr, "vthread: VTHREAD_QUANTUM='%s' is not a duration from 100us to 10s (e.g. 10ms, 500us); using 10ms\n", v);
    }
  }
  if (const char* v = getenv("VTHREAD_PREEMPT_SIGNAL")) {
    int sig;
    if (parse_signal(v, &sig)) {
      config.preempt_signal = sig;
    } else {
      fprintf(stderr, "vthread: VTHREAD_PREEMPT_SIGNAL='%s' is not one of SIGALRM, SIGURG, SIGVTALRM, SIGPROF, SIGUSR1, "
              "SIGUSR2, SIGWINCH, SIGIO, SIGPWR or SIGRTMIN+n; using SIGALRM\n", v);
    }
  }
  if (const char* v = getenv("VTHREAD_MAX_SPARE")) {
    long n;
    if (parse_count(v, 0, kMaxCarriers, &n)) {
      config.max_spare = static_cast<int>(n);
    } else {
      fprintf(stderr, "vthread: VTHREAD_MAX_SPARE='%s' is not a whole number from 0 to %ld; using %d\n", v, kMaxCarriers,
              config.max_spare);
    }
  }
  if (const char* v = getenv("VTHREAD_PREEMPT")) {
    if (strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0) {
      config.quantum = 0;
    } else if (strcmp(v, "1") != 0 && strcasecmp(v, "on") != 0) {
      fprintf(stderr, "vthread: VTHREAD_PREEMPT='%s' is not 'on' or 'off'; using on\n", v);
    }
  }
  return config;
}

}  // namespace vthread::shim
