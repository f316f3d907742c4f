#!/usr/bin/env bash
# libvthread.so is preloaded into every process, including shells and compilers that never create
# a thread: it must depend on libc alone and, until a thread is created, start nothing.
set -euo pipefail
lib="$(readlink -f "$1")"
failed=0

needed="$(objdump -p "$lib" | awk '/NEEDED/ {print $2}' | sort | tr '\n' ' ')"
if [ "$needed" != "libc.so.6 " ]; then
  echo "FAIL: libvthread.so needs: $needed(expected only libc.so.6)"
  failed=1
fi

tasks="$(LD_PRELOAD="$lib" sh -c 'ls /proc/self/task | wc -l')"
if [ "$tasks" != 1 ]; then
  echo "FAIL: a single-threaded program under the shim has $tasks kernel tasks (expected 1)"
  failed=1
fi

out="$(LD_PRELOAD="$lib" sh -c 'echo hello; sleep 0.01; echo world' 2>&1)"
if [ "$out" != "$(printf 'hello\nworld')" ]; then
  echo "FAIL: a shell under the shim printed: $out"
  failed=1
fi
[ "$failed" = 0 ] && echo "PASS"
exit "$failed"
