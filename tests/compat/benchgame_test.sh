#!/bin/bash
# benchgame_test.sh LIB PROGRAM N "VARIANTS..." "CARRIERS...": runs our thread-ring or chameneos-redux
# (PROGRAM's basename says which) in each variant natively and under vthread with each carrier
# count, and compares the outputs.
#   thread_ring: byte-identical, and the winner is (N mod 503) + 1.
#   chameneos:   identical except each creature's meeting count, which depends on scheduling; those
#                lines are checked instead: nobody met itself, and each run's counts add up to 2N.
source "$(dirname "$0")/lib.sh"
compat_init "$1"
program=$(runfile "$2")
n=$3
read -ra variants <<< "$4"
read -ra carriers <<< "$5"

# Masks the per-creature lines of chameneos output after checking them; prints the rest.
check_chameneos() {
  awk -v n="$n" -v what="$1" '
    /^[0-9]+ / {
      if ($0 !~ /^[0-9]+ zero$/) { print "FAIL " what ": a creature met itself: " $0 > "/dev/stderr"; bad = 1 }
      sum += $1; print "<creature>"; next
    }
    /^ (zero|one|two|three|four|five|six|seven|eight|nine)( |$)/ && sum {
      if (sum != 2 * n) { print "FAIL " what ": meetings add up to " sum ", not " 2 * n > "/dev/stderr"; bad = 1 }
      sum = 0
    }
    { print }
    END { exit bad }'
}

for v in "${variants[@]}"; do
  native 60 "$program" "$v" "$n" > "$compat_tmp/native"
  rc=$?
  ((rc == 0)) || fail "$v natively exited with $rc"
  if [[ $program == *thread_ring* ]]; then
    want=$((n % 503 + 1))
    [[ $(cat "$compat_tmp/native") == "$want" ]] || fail "$v natively printed $(cat "$compat_tmp/native"), expected $want"
  else
    check_chameneos "$v native" < "$compat_tmp/native" > "$compat_tmp/native.masked" || fail "$v native output"
    mv "$compat_tmp/native.masked" "$compat_tmp/native"
  fi
  for c in "${carriers[@]}"; do
    start=$(now_ms)
    vthread "$c" 60 "$program" "$v" "$n" > "$compat_tmp/vthread"
    rc=$?
    echo "$(basename "$program") $v $n, $c carriers: exit $rc, $(($(now_ms) - start)) ms"
    ((rc == 0)) || { fail "$v under vthread with $c carriers exited with $rc"; continue; }
    if [[ $program != *thread_ring* ]]; then
      check_chameneos "$v, $c carriers" < "$compat_tmp/vthread" > "$compat_tmp/vthread.masked" ||
        fail "$v under vthread with $c carriers"
      mv "$compat_tmp/vthread.masked" "$compat_tmp/vthread"
    fi
    same "$compat_tmp/native" "$compat_tmp/vthread" "$v, $c carriers, vs native"
  done
done
compat_finish
