#!/bin/bash
# glib_test.sh LIB TEST "CARRIERS...": runs one of GLib's installed tests
# (/usr/libexec/installed-tests/glib/TEST, package libglib2.0-tests) under vthread with each carrier
# count, in TAP mode as gnome-desktop-testing-runner does. Passes when it exits 0 and every test case
# the binary lists (-l) reports "ok" (quick mode, as natively: the same cases are skipped as
# "timing heavy" natively and under vthread). Natively these binaries all pass; running them
# natively here too would double the time of the slowest (GLib's mutex test takes ~30 s natively on
# two busy cores, 1 s under vthread).
source "$(dirname "$0")/lib.sh"
compat_init "$1"
test=$2
read -ra carriers <<< "$3"
dir=/usr/libexec/installed-tests/glib
[[ -x $dir/$test ]] || { echo "$dir/$test not found: install libglib2.0-tests (tools/install-deps)" >&2; exit 1; }

mapfile -t cases < <(native 30 "$dir/$test" -l 2>/dev/null | grep '^/')
((${#cases[@]})) || { echo "$test -l listed no test cases" >&2; exit 1; }

for c in "${carriers[@]}"; do
  start=$(now_ms)
  vthread "$c" 120 "$dir/$test" --tap -k > "$compat_tmp/out" 2>&1
  rc=$?
  echo "$test, $c carriers: exit $rc, $(($(now_ms) - start)) ms"
  ((rc == 0)) || fail "$test under vthread with $c carriers exited with $rc"
  for case in "${cases[@]}"; do
    grep -qE "^ok [0-9]+ $case( |$)" "$compat_tmp/out" || fail "$test, $c carriers: no 'ok' for $case"
  done
  if ((compat_failures)); then
    tail -30 "$compat_tmp/out" >&2
    break
  fi
done
compat_finish
