#include "shim/settings.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
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
  return config;
}

}  // namespace vthread::shim
