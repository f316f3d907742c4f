#include "sched/parking_lot.h"

#include <stdint.h>

#include <new>

#include "sched/sched.h"
#include "sched/spinlock.h"

namespace vthread::sched::parking_lot {
namespace {

struct Bucket;

struct WaitNode {
  const void* address;   // guarded by the lock of `bucket`
  ParkTicket ticket;
  uint32_t tag;
  WaitNode* next;
  WaitNode* prev;
  // The bucket the node is queued in. Changed only with that bucket locked (and the new one), so a
  // holder of the lock of the bucket it names sees a stable value.
  std::atomic<Bucket*> bucket;
  bool queued;
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
    node->bucket.store(this, std::memory_order_relaxed);
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

// Locks two buckets in address order (once if they are the same).
void lock_pair(Bucket& a, Bucket& b) {
  if (&a == &b) {
    a.lock.lock();
  } else if (&a < &b) {
    a.lock.lock();
    b.lock.lock();
  } else {
    b.lock.lock();
    a.lock.lock();
  }
}
void unlock_pair(Bucket& a, Bucket& b) {
  a.lock.unlock();
  if (&a != &b) b.lock.unlock();
}

// Locks the bucket `node` is queued in now (it may move while we wait for a lock).
Bucket& lock_bucket_of(WaitNode* node) {
  for (;;) {
    Bucket* b = node->bucket.load(std::memory_order_acquire);
    b->lock.lock();
    if (node->bucket.load(std::memory_order_relaxed) == b) return *b;
    b->lock.unlock();
  }
}

void unlock_bucket(void* bucket) { static_cast<Bucket*>(bucket)->lock.unlock(); }

// Unparks matching nodes of `address` in a locked bucket, up to `limit`. Nodes whose park already
// ended (timed out) are dropped without counting, so a wake is never lost on a leaving waiter.
size_t unpark_locked(Bucket& bucket, const void* address, size_t limit, uint32_t tag_filter) {
  size_t woken = 0;
  for (WaitNode* node = bucket.head; node && woken < limit;) {
    WaitNode* next = node->next;
    if (node->address == address && (node->tag & tag_filter)) {
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

ParkResult park(const void* address, bool (*validate)(void*), void* arg, WaitReason reason, Nanos deadline,
                uint32_t tag) {
  WaitNode node{address, park_ticket(), tag, nullptr, nullptr, {nullptr}, false};
  Bucket& bucket = bucket_for(address);
  bucket.lock.lock();
  if (validate && !validate(arg)) {
    bucket.lock.unlock();
    return ParkResult::kInvalid;
  }
  bucket.append(&node);
  node.ticket.fiber->wait_address = address;
  WakeReason why = sched::park(reason, deadline, unlock_bucket, &bucket);
  node.ticket.fiber->wait_address = nullptr;
  if (why == WakeReason::kUnparked) return ParkResult::kUnparked;
  // Timed out or interrupted. A waker may have dequeued the node meanwhile and lost the race to the
  // timer (or interrupt); it moved on to the next waiter, so there is nothing to hand back. The node
  // may have been requeued to another bucket.
  Bucket& current = lock_bucket_of(&node);
  if (node.queued) current.remove(&node);
  current.lock.unlock();
  return why == WakeReason::kInterrupted ? ParkResult::kInterrupted : ParkResult::kTimedOut;
}

size_t unpark(const void* address, size_t limit, uint32_t tag_filter) {
  Bucket& bucket = bucket_for(address);
  SpinlockGuard hold(bucket.lock);
  return unpark_locked(bucket, address, limit, tag_filter);
}

size_t requeue(const void* from, const void* to, size_t wake_limit, size_t requeue_limit,
               bool (*validate)(void*), void* arg) {
  Bucket& source = bucket_for(from);
  Bucket& target = bucket_for(to);
  lock_pair(source, target);
  if (validate && !validate(arg)) {
    unlock_pair(source, target);
    return SIZE_MAX;
  }
  size_t done = unpark_locked(source, from, wake_limit, kAnyTag);
  if (from == to) requeue_limit = 0;  // they are there already
  for (WaitNode* node = source.head; node && requeue_limit > 0;) {
    WaitNode* next = node->next;
    if (node->address == from) {
      source.remove(node);
      node->address = to;
      node->ticket.fiber->wait_address = to;
      target.append(node);
      --requeue_limit;
      ++done;
    }
    node = next;
  }
  unlock_pair(source, target);
  return done;
}

void reset_after_fork() {
  for (Bucket& bucket : g_buckets) new (&bucket) Bucket();
}

}  // namespace vthread::sched::parking_lot
