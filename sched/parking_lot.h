// The one parking primitive every blocking operation is built on: a fiber parks on an address and
// is woken by address (WebKit's ParkingLot, Rust's parking_lot). Waiters live in a fixed hash table
// of buckets, each a spinlock and a FIFO list of nodes that sit on the waiters' own stacks, so
// parking never allocates and any address can be waited on.
//
// The validate callback closes the lost-wake-up window: it runs under the bucket lock, and a waker
// changes the state it checks before calling unpark_*, which takes the same lock.
//
// Each waiter carries a 32-bit tag that wakers can filter on (futex bitsets), and waiters can be
// moved from one address to another without waking them (futex requeue; condition variable
// broadcast onto the mutex).
#ifndef VTHREAD_SCHED_PARKING_LOT_H_
#define VTHREAD_SCHED_PARKING_LOT_H_

#include <stddef.h>
#include <stdint.h>

#include "sched/clock.h"
#include "sched/fiber.h"

namespace vthread::sched::parking_lot {

// kInterrupted: sched::interrupt() ended the park; the waiter has left the queue, as on a timeout.
enum class ParkResult { kUnparked, kTimedOut, kInvalid, kInterrupted };

constexpr uint32_t kAnyTag = ~0u;

// Parks the current fiber on `address` unless validate(arg) returns false (then kInvalid at once).
// validate may be nullptr. Must be called in fiber context.
ParkResult park(const void* address, bool (*validate)(void*), void* arg, WaitReason reason, Nanos deadline,
                uint32_t tag = kAnyTag);

// Wakes up to `limit` fibers parked on `address` whose tag shares a bit with `tag_filter`, longest
// waiting first. Returns the number woken.
size_t unpark(const void* address, size_t limit, uint32_t tag_filter = kAnyTag);
inline size_t unpark_one(const void* address) { return unpark(address, 1); }
inline size_t unpark_all(const void* address) { return unpark(address, SIZE_MAX); }

// Wakes up to `wake_limit` fibers parked on `from`, then moves up to `requeue_limit` of the rest to
// `to`, where they wait as if they had parked there. If validate is given it runs first, with both
// buckets locked, and nothing happens if it returns false (then the result is SIZE_MAX).
// Returns the number woken plus the number moved.
size_t requeue(const void* from, const void* to, size_t wake_limit, size_t requeue_limit,
               bool (*validate)(void*) = nullptr, void* arg = nullptr);

// In a fork child: empties every queue and releases every lock (their waiters do not exist there).
void reset_after_fork();

}  // namespace vthread::sched::parking_lot

#endif  // VTHREAD_SCHED_PARKING_LOT_H_
