# Shared by the compat test scripts (sourced). A compat test runs a real program natively and under
# LD_PRELOAD=libvthread.so and compares. Scripts get the library's runfiles path as $1.
set -uo pipefail

# Runfiles root: bazel test starts us in $TEST_SRCDIR/$TEST_WORKSPACE.
compat_root=$PWD
[[ -n "${TEST_SRCDIR:-}" && -n "${TEST_WORKSPACE:-}" ]] && compat_root=$TEST_SRCDIR/$TEST_WORKSPACE
compat_tmp=$(mktemp -d "${TEST_TMPDIR:-/tmp}/compat.XXXXXX")
trap 'rm -rf "$compat_tmp"' EXIT
compat_failures=0

# The absolute path of a data dependency given as $(rootpath) (absolute paths pass through, for
# running a script by hand).
runfile() {
  if [[ $1 == /* ]]; then echo "$1"; else echo "$compat_root/${1#./}"; fi
}

# compat_init LIB_RUNFILES_PATH: sets $lib, or fails the test if the library is missing (ld.so would
# ignore a missing preload with only a warning, and the test would silently run natively).
compat_init() {
  lib=$(runfile "$1")
  if [[ ! -f $lib ]]; then
    echo "compat: $lib not found" >&2
    exit 1
  fi
}

fail() {
  echo "FAIL: $*" >&2
  compat_failures=$((compat_failures + 1))
}

# native SECONDS CMD...: runs CMD with a timeout; its exit status is the command's (124: timeout).
native() {
  local secs=$1
  shift
  timeout -k 5 "$secs" "$@"
}

# vthread CARRIERS SECONDS CMD...: the same under the shim with that many carriers.
vthread() {
  local carriers=$1 secs=$2
  shift 2
  VTHREAD_CARRIERS=$carriers timeout -k 5 "$secs" env LD_PRELOAD="$lib" "$@"
}

# same A B WHAT: A and B are byte-identical files.
same() {
  if ! cmp -s "$1" "$2"; then
    fail "$3: output differs ($(wc -c < "$1") vs $(wc -c < "$2") bytes)"
    diff <(head -c 2000 "$1") <(head -c 2000 "$2") | head -20 >&2
  fi
}

# Milliseconds on the monotonic clock's scale, for the timings the scripts print.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

compat_finish() {
  if ((compat_failures)); then
    echo "compat: $compat_failures failures" >&2
    exit 1
  fi
  echo "compat: all checks passed"
}
