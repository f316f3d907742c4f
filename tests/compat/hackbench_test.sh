#!/bin/bash
# hackbench_test.sh LIB "CARRIERS...": rt-tests' hackbench in thread mode (-T): groups of sender and
# receiver threads passing messages over socketpairs, receivers blocked in read(). Passes when it
# completes (prints its "Time:" line and exits 0) natively and under vthread with each carrier count.
source "$(dirname "$0")/lib.sh"
compat_init "$1"
read -ra carriers <<< "$2"
args=(hackbench -T -g 2 -f 5 -l 200)
native 60 "${args[@]}" > "$compat_tmp/out" 2>&1 || fail "natively: exit $?"
for c in "${carriers[@]}"; do
  vthread "$c" 60 "${args[@]}" > "$compat_tmp/out" 2>&1
  rc=$?
  ((rc == 0)) && grep -q '^Time:' "$compat_tmp/out" || fail "$c carriers: exit $rc"
done
compat_finish
