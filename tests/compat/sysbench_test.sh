#!/bin/bash
# sysbench_test.sh LIB "CARRIERS...": sysbench's threads (yield under mutexes) and mutex tests,
# natively and under vthread with each carrier count. Checks the results are sane, not the timing:
# exit 0 and the event counts sysbench must report for a fixed amount of work.
source "$(dirname "$0")/lib.sh"
compat_init "$1"
read -ra carriers <<< "$2"

# check NAME WANT_EVENTS OUTPUT_FILE
check() {
  local events
  events=$(awk '/total number of events:/ { print $NF }' "$3")
  [[ $events == "$2" ]] || fail "$1: $events events, expected $2"
}

threads=(sysbench threads --threads=16 --events=4000 --time=0 --thread-yields=100 --thread-locks=4 run)
mutex=(sysbench mutex --threads=16 --mutex-num=256 --mutex-locks=20000 --time=0 run)
for run in native "${carriers[@]}"; do
  if [[ $run == native ]]; then
    how=(native 120) what=native
  else
    how=(vthread "$run" 120) what="$run carriers"
  fi
  "${how[@]}" "${threads[@]}" > "$compat_tmp/threads" 2>&1 || fail "sysbench threads, $what: exit $?"
  check "sysbench threads, $what" 4000 "$compat_tmp/threads"
  # The mutex test is one event per thread.
  "${how[@]}" "${mutex[@]}" > "$compat_tmp/mutex" 2>&1 || fail "sysbench mutex, $what: exit $?"
  check "sysbench mutex, $what" 16 "$compat_tmp/mutex"
  echo "$what: threads $(awk '/total time:/ { print $NF }' "$compat_tmp/threads"), mutex $(awk '/total time:/ { print $NF }' "$compat_tmp/mutex")"
done
((compat_failures)) && cat "$compat_tmp/threads" "$compat_tmp/mutex" >&2
compat_finish
