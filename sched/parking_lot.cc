#include "sched/parking_lot.h"

#include <stdint.h>

#include "sched/sched.h"
#include "sched/spinlock.h"

namespace vthread::sched::parking_lot {
namespace {

struct WaitNode {
  const void* address;
  ParkTicket ticket;
  WaitNode* next;
  WaitNode* prev;
  bool queued;  // guarded by the bucket lock
};

struct alignas(64) Bucket {
  Spinlock lock;
  WaitNode* head = nullptr;
  WaitNode* tail = nullptr;

  void append(WaitNode* node) {
    node->next = nullptr;
    node->prev = tail;
    if (tail) {
      tail->next = node;
    } else {
      head = node;
    }
    tail = node;
    node->queued = true;
  }
  void remove(WaitNode* node) {
    if (node->prev) {
      node->prev->next = node->next;
    } else {
      head = node->next;
    }
    if (node->next) {
      node->next->prev = node->prev;
    } else {
      tail = node->prev;
    }
    node->queued = false;
  }
};

// Fixed size: enough that unrelated addresses rarely share a bucket at the thread counts we aim for
// (collisions cost only a longer list walk, never correctness).
constexpr size_t kBucketBits = 12;
Bucket g_buckets[size_t{1} << kBucketBits];

Bucket& bucket_for(const void* address) {
  uint64_t h = reinterpret_cast<uintptr_t>(address) * 0x9e3779b97f4a7c15ull;
  return g_buckets[h >> (64 - kBucketBits)];
}

void unlock_bucket(void* bucket) { static_cast<Bucket*>(bucket)->lock.unlock(); }

// Unparks the nodes for `address`, up to `limit`. Nodes whose park already ended (timed out) are
// dropped without counting, so a wake is never lost on a waiter that is leaving.
size_t unpark(const void* address, size_t limit) {
  Bucket& bucket = bucket_for(address);
  size_t woken = 0;
  SpinlockGuard hold(bucket.lock);
  WaitNode* node = bucket.head;
  while (node && woken < limit) {
    WaitNode* next = node->next;
    if (node->address == address) {
      ParkTicket ticket = node->ticket;
      bucket.remove(node);
      // The node may vanish as soon as the fiber runs; only the copied ticket is used from here.
      if (sched::unpark(ticket)) ++woken;
    }
    node = next;
  }
  return woken;
}

}  // namespace

ParkResult park(const void* address, bool (*validate)(void*), void* arg, WaitReason reason, Nanos deadline) {
  WaitNode node{address, park_ticket(), nullptr, nullptr, false};
  Bucket& bucket = bucket_for(address);
  bucket.lock.lock();
  if (validate && !validate(arg)) {
    bucket.lock.unlock();
    return ParkResult::kInvalid;
  }
  bucket.append(&node);
  if (sched::park(reason, deadline, unlock_bucket, &bucket) == WakeReason::kUnparked) {
    return ParkResult::kUnparked;
  }
  // Timed out. A waker may have dequeued the node meanwhile and lost the race to the timer; it
  // moved on to the next waiter, so there is nothing to hand back.
  SpinlockGuard hold(bucket.lock);
  if (node.queued) bucket.remove(&node);
  return ParkResult::kTimedOut;
}

size_t unpark_one(const void* address) { return unpark(address, 1); }
size_t unpark_all(const void* address) { return unpark(address, SIZE_MAX); }

}  // namespace vthread::sched::parking_lot
