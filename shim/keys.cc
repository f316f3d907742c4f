// Thread-specific data: pthread_key_create/delete, pthread_getspecific/setspecific.
//
// Keys are global slots with a sequence number (odd: in use), as in glibc; a value remembers the
// sequence number it was set under, so after pthread_key_delete every thread's old value reads as
// NULL without visiting the threads. Values live in blocks of 32 allocated on first use.
#include <errno.h>

#include <new>
#include <pthread.h>
#include <stdlib.h>

#include <atomic>

#include "sched/spinlock.h"
#include "shim/entry.h"
#include "shim/thread_state.h"

namespace vthread::shim {
namespace {

struct KeySlot {
  std::atomic<uintptr_t> seq{0};
  std::atomic<void (*)(void*)> destructor{nullptr};
};

KeySlot g_keys[PTHREAD_KEYS_MAX];
sched::Spinlock g_keys_lock;

bool in_use(uintptr_t seq) { return seq & 1; }

SpecificEntry* entry_for(ThreadState* state, unsigned key, bool create) {
  SpecificEntry*& block = state->key_blocks[key / kKeyBlockSize];
  if (!block && create) block = static_cast<SpecificEntry*>(calloc(kKeyBlockSize, sizeof(SpecificEntry)));
  return block ? &block[key % kKeyBlockSize] : nullptr;
}

}  // namespace

void reset_keys_after_fork() { new (&g_keys_lock) sched::Spinlock(); }

void run_key_destructors(ThreadState* state) {
  for (int round = 0; round < PTHREAD_DESTRUCTOR_ITERATIONS; ++round) {
    bool called = false;
    for (unsigned key = 0; key < PTHREAD_KEYS_MAX; ++key) {
      SpecificEntry* block = state->key_blocks[key / kKeyBlockSize];
      if (!block) {
        key += kKeyBlockSize - 1;
        continue;
      }
      SpecificEntry& e = block[key % kKeyBlockSize];
      uintptr_t seq = g_keys[key].seq.load(std::memory_order_acquire);
      void (*destructor)(void*) = g_keys[key].destructor.load(std::memory_order_relaxed);
      if (!e.value || e.seq != seq || !in_use(seq) || !destructor) continue;
      void* value = e.value;
      e.value = nullptr;  // POSIX: the value is NULL when the destructor runs
      destructor(value);
      called = true;
    }
    if (!called) break;
  }
  for (SpecificEntry*& block : state->key_blocks) {
    free(block);
    block = nullptr;
  }
}

}  // namespace vthread::shim

using vthread::shim::g_keys;
using vthread::shim::ShimEntry;

extern "C" {

int pthread_key_create(pthread_key_t* key, void (*destructor)(void*)) {
  ShimEntry entry("pthread_key_create");
  vthread::sched::SpinlockGuard hold(vthread::shim::g_keys_lock);
  for (unsigned k = 0; k < PTHREAD_KEYS_MAX; ++k) {
    uintptr_t seq = g_keys[k].seq.load(std::memory_order_relaxed);
    // Skip free slots whose counter would wrap into reuse of an old sequence number.
    if (vthread::shim::in_use(seq) || seq + 2 < seq) continue;
    g_keys[k].destructor.store(destructor, std::memory_order_relaxed);
    g_keys[k].seq.store(seq + 1, std::memory_order_release);
    *key = k;
    return 0;
  }
  return EAGAIN;
}

int pthread_key_delete(pthread_key_t key) {
  ShimEntry entry("pthread_key_delete");
  if (key >= PTHREAD_KEYS_MAX) return EINVAL;
  vthread::sched::SpinlockGuard hold(vthread::shim::g_keys_lock);
  uintptr_t seq = g_keys[key].seq.load(std::memory_order_relaxed);
  if (!vthread::shim::in_use(seq)) return EINVAL;
  g_keys[key].seq.store(seq + 1, std::memory_order_release);
  return 0;
}

void* pthread_getspecific(pthread_key_t key) {
  if (key >= PTHREAD_KEYS_MAX) return nullptr;
  vthread::shim::ThreadState* state = vthread::shim::thread_state();
  if (!state) return nullptr;
  vthread::shim::SpecificEntry* e = vthread::shim::entry_for(state, key, false);
  if (!e || e->seq != g_keys[key].seq.load(std::memory_order_acquire)) return nullptr;
  return e->value;
}

int pthread_setspecific(pthread_key_t key, const void* value) {
  if (key >= PTHREAD_KEYS_MAX) return EINVAL;
  uintptr_t seq = g_keys[key].seq.load(std::memory_order_acquire);
  if (!vthread::shim::in_use(seq)) return EINVAL;
  vthread::shim::ThreadState* state = vthread::shim::thread_state();
  vthread::shim::SpecificEntry* e = state ? vthread::shim::entry_for(state, key, true) : nullptr;
  if (!e) return ENOMEM;
  e->seq = seq;
  e->value = const_cast<void*>(value);
  return 0;
}

}  // extern "C"
