// The one parking primitive every blocking operation is built on: a fiber parks on an address and
// is woken by address (WebKit's ParkingLot, Rust's parking_lot). Waiters live in a fixed hash table
// of buckets, each a spinlock and a FIFO list of nodes that sit on the waiters' own stacks, so
// parking never allocates and any 8-byte-aligned or unaligned address can be waited on.
//
// The validate callback closes the lost-wake-up window: it runs under the bucket lock, and a waker
// changes the state it checks before calling unpark_*, which takes the same lock.
#ifndef VTHREAD_SCHED_PARKING_LOT_H_
#define VTHREAD_SCHED_PARKING_LOT_H_

#include <stddef.h>

#include "sched/clock.h"
#include "sched/fiber.h"

namespace vthread::sched::parking_lot {

enum class ParkResult { kUnparked, kTimedOut, kInvalid };

// Parks the current fiber on `address` unless validate(arg) returns false (then kInvalid at once).
// validate may be nullptr. Must be called in fiber context.
ParkResult park(const void* address, bool (*validate)(void*), void* arg, WaitReason reason, Nanos deadline);

// Wakes the longest-waiting fiber parked on `address`. Returns the number woken (0 or 1).
size_t unpark_one(const void* address);

// Wakes every fiber parked on `address`. Returns the number woken.
size_t unpark_all(const void* address);

}  // namespace vthread::sched::parking_lot

#endif  // VTHREAD_SCHED_PARKING_LOT_H_
