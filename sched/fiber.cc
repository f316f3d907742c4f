#include "sched/fiber.h"

#include <string.h>
#include <sys/mman.h>

#include <new>

namespace vthread::sched {
namespace {

// A million concurrent threads with room to spare; only the records in use are ever touched.
constexpr size_t kTableCapacity = size_t{1} << 22;

Spinlock g_table_lock;
Fiber* g_free_list = nullptr;
uint64_t g_next_id = 1;

}  // namespace

Fiber* FiberTable::base_ = nullptr;
size_t FiberTable::capacity_ = 0;
std::atomic<size_t> FiberTable::high_water_{0};

const char* wait_reason_name(WaitReason reason) {
  switch (reason) {
    case WaitReason::kNone: return "none";
    case WaitReason::kSleep: return "sleep";
    case WaitReason::kJoin: return "pthread_join";
    case WaitReason::kOnce: return "pthread_once";
    case WaitReason::kMutex: return "pthread_mutex_lock";
    case WaitReason::kCondition: return "pthread_cond_wait";
    case WaitReason::kRwlockRead: return "pthread_rwlock_rdlock";
    case WaitReason::kRwlockWrite: return "pthread_rwlock_wrlock";
    case WaitReason::kBarrier: return "pthread_barrier_wait";
    case WaitReason::kSemaphore: return "sem_wait";
    case WaitReason::kFutex: return "futex wait";
    case WaitReason::kSignal: return "sigwait";
    case WaitReason::kTestPark: return "test park";
  }
  return "unknown";
}

bool FiberTable::init() {
  if (base_) return true;
  void* base = mmap(nullptr, kTableCapacity * sizeof(Fiber), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return false;
  base_ = static_cast<Fiber*>(base);
  capacity_ = kTableCapacity;
  return true;
}

Fiber* FiberTable::allocate() {
  Fiber* fiber;
  uint64_t id;
  {
    SpinlockGuard hold(g_table_lock);
    fiber = g_free_list;
    if (fiber) {
      g_free_list = fiber->free_next;
    } else {
      size_t n = high_water_.load(std::memory_order_relaxed);
      if (n == capacity_) return nullptr;
      fiber = &base_[n];
      high_water_.store(n + 1, std::memory_order_release);
    }
    id = g_next_id++;
  }
  // Park sequence numbers continue across reuse of a slot, so a ticket from the slot's previous
  // owner can never wake the new one.
  uint32_t seq = seq_of(fiber->sched_word.load(std::memory_order_relaxed)) + 1;
  memset(static_cast<void*>(fiber), 0, sizeof(Fiber));
  fiber->sched_word.store(make_sched_word(seq, FiberState::kRunnable), std::memory_order_relaxed);
  fiber->id = id;
  fiber->priority = kDefaultPriority;
  fiber->next_priority.store(kDefaultPriority, std::memory_order_relaxed);
  fiber->magic = kFiberMagic;
  return fiber;
}

void FiberTable::release(Fiber* fiber) {
  uint32_t seq = seq_of(fiber->sched_word.load(std::memory_order_relaxed));
  fiber->sched_word.store(make_sched_word(seq + 1, FiberState::kFree), std::memory_order_release);
  SpinlockGuard hold(g_table_lock);
  fiber->free_next = g_free_list;
  g_free_list = fiber;
}

void FiberTable::keep_only_after_fork(Fiber* keep) {
  new (&g_table_lock) Spinlock();
  g_free_list = nullptr;
  for (size_t i = high_water(); i-- > 0;) {
    Fiber* f = &base_[i];
    if (f == keep) continue;
    uint32_t seq = seq_of(f->sched_word.load(std::memory_order_relaxed));
    f->sched_word.store(make_sched_word(seq + 1, FiberState::kFree), std::memory_order_relaxed);
    f->free_next = g_free_list;
    g_free_list = f;
  }
}

Fiber* FiberTable::lookup(uintptr_t address) {
  auto base = reinterpret_cast<uintptr_t>(base_);
  if (!base_ || address < base) return nullptr;
  uintptr_t offset = address - base;
  if (offset % sizeof(Fiber) != 0 || offset / sizeof(Fiber) >= high_water()) return nullptr;
  Fiber* fiber = reinterpret_cast<Fiber*>(address);
  if (fiber->magic != kFiberMagic) return nullptr;
  if (state_of(fiber->sched_word.load(std::memory_order_acquire)) == FiberState::kFree) return nullptr;
  return fiber;
}

}  // namespace vthread::sched
