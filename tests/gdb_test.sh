#!/bin/bash
# tools/gdb/vthread.py on a live program under vthread: `vthread fibers` lists every thread with
# its name, state and wait reason, and `vthread bt ID` unwinds a suspended thread into its own code.
# Usage: gdb_test.sh LIBVTHREAD TARGET_PROGRAM GDB_SCRIPT (runfiles paths)
set -u
root=$PWD
[[ -n "${TEST_SRCDIR:-}" && -n "${TEST_WORKSPACE:-}" ]] && root=$TEST_SRCDIR/$TEST_WORKSPACE
lib=$root/${1#./} target=$root/$2 script=$root/$3
fail() { echo "FAIL: $*"; echo "--- gdb said:"; cat "$out"; exit 1; }
out=$(mktemp)

run_gdb() {
  timeout 120 gdb -batch -nx -ex "set environment LD_PRELOAD=$lib" -ex "set startup-with-shell off" -ex run \
    -ex "source $script" "$@" "$target" >"$out" 2>&1
}

run_gdb -ex "vthread fibers"
grep -Eq '^[0-9]+ +sleeper +parked +sleep +sleep ' "$out" || fail "no parked sleeper"
grep -Eq '^[0-9]+ +locker +parked +mutex +0x[0-9a-f]+ +pthread_mutex_lock ' "$out" || fail "no locker parked on the mutex"
grep -Eq '^[0-9]+ +waiter +parked +condition +0x[0-9a-f]+ +pthread_cond_wait ' "$out" || fail "no waiter in pthread_cond_wait"
grep -Eq '^6 threads$' "$out" || fail "not 6 threads"

id=$(awk '$2 == "sleeper" { print $1 }' "$out")
run_gdb -ex "vthread bt $id" -ex "vthread bt 99999"
grep -Eq ' in sleeper \(' "$out" || fail "the backtrace of thread $id does not reach sleeper()"
grep -q 'no thread 99999' "$out" || fail "an unknown id is not reported"

run_gdb -ex "vthread deadlocks"
grep -q '^deadlock: 2 threads wait for each other' "$out" || fail "the forward/backward deadlock is not reported"
grep -Eq 'thread [0-9]+ "forward" waits for mutex 0x[0-9a-f]+ held by thread [0-9]+ "backward"' "$out" ||
  fail "the deadlock report does not name forward and backward"
grep -q 'locker' "$out" && fail "locker (waiting for a mutex held by a running thread) is called deadlocked"

run_gdb -ex "vthread bt all"
for fn in sleeper locker waiter; do
  grep -Eq " in $fn \(" "$out" || fail "vthread bt all does not reach $fn()"
done
echo PASS
