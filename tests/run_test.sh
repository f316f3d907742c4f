#!/bin/bash
# Runs one variant of a test made by tests/defs.bzl.
# Usage: run_test.sh EXPECT_EXIT PRELOAD PROGRAM [ARGS...]
#   EXPECT_EXIT  the exit code that makes the test pass
#   PRELOAD      runfiles path of the library to LD_PRELOAD, or "none" to run natively
#   PROGRAM      runfiles path of the test program; ARGS are passed on to it
set -u
expect_exit=$1 preload=$2 program=$3
shift 3

# bazel test starts us in $TEST_SRCDIR/$TEST_WORKSPACE; bazel run starts us in the same runfiles
# directory but may not set those variables.
root=$PWD
[[ -n "${TEST_SRCDIR:-}" && -n "${TEST_WORKSPACE:-}" ]] && root=$TEST_SRCDIR/$TEST_WORKSPACE

if [[ $preload == none ]]; then
  "$root/$program" "$@"
  rc=$?
else
  # The dynamic loader ignores a missing preload with only a warning: the test would silently run
  # without vthread.
  lib=$root/${preload#./}  # $(rootpath) of a top-level target starts with ./
  if [[ ! -f $lib ]]; then
    echo "run_test.sh: $lib not found" >&2
    exit 1
  fi
  echo "run_test.sh: LD_PRELOAD=$lib VTHREAD_CARRIERS=${VTHREAD_CARRIERS-}" >&2
  LD_PRELOAD=$lib "$root/$program" "$@"
  rc=$?
fi

if (( rc != expect_exit )); then
  echo "run_test.sh: $program exited with $rc, expected $expect_exit" >&2
  exit $(( rc ? rc : 1 ))
fi
exit 0
