#!/bin/bash
# compress_test.sh LIB CORPUS_GEN TOOL "CARRIERS..." "THREADS...": compresses a generated corpus
# with TOOL at each thread count, natively and under vthread with each carrier count. The vthread
# output must be byte-identical to the native one, and decompressing it under vthread must give the
# corpus back. TOOL is one of pigz pbzip2 lbzip2 xz zstd sort (sort: sorted output identical to the
# native one and to a single-threaded sort).
source "$(dirname "$0")/lib.sh"
compat_init "$1"
gen=$(runfile "$2")
tool=$3
read -ra carriers <<< "$4"
read -ra thread_counts <<< "$5"

export LC_ALL=C
corpus=$compat_tmp/corpus
"$gen" 3072 42 > "$corpus" || { echo "corpus_gen failed" >&2; exit 1; }

# compress T / decompress T: the command lines for T threads.
case $tool in
  pigz) compress() { echo pigz -c -p "$1"; }; decompress() { echo pigz -d -c -p "$1"; } ;;
  pbzip2) compress() { echo pbzip2 -c -p"$1"; }; decompress() { echo pbzip2 -d -c -p"$1"; } ;;
  lbzip2) compress() { echo lbzip2 -c -n "$1"; }; decompress() { echo lbzip2 -d -c -n "$1"; } ;;
  # Small blocks, so that a 3 MiB corpus is really split among the threads.
  xz) compress() { echo xz -c -1 -T "$1" --block-size=262144; }; decompress() { echo xz -d -c -T "$1"; } ;;
  zstd) compress() { echo zstd -q -c -3 -T"$1" -B524288; }; decompress() { echo zstd -q -d -c -T"$1"; } ;;
  sort)
    # One word per line (~440k lines; the binary stretches are fine under LC_ALL=C): sort uses its
    # threads only for that many lines held in memory at once.
    tr ' ' '\n' < "$corpus" > "$corpus.lines" && mv "$corpus.lines" "$corpus"
    compress() { echo sort --parallel="$1" -S 64M; }
    decompress() { echo cat; }
    native 60 sort --parallel=1 -S 64M < "$corpus" > "$corpus.sorted"
    ;;
  *) echo "unknown tool $tool" >&2; exit 2 ;;
esac

for t in "${thread_counts[@]}"; do
  ref=$compat_tmp/native.$t
  native 60 $(compress "$t") < "$corpus" > "$ref"
  rc=$?
  ((rc == 0)) || { fail "native $(compress "$t") exited with $rc"; continue; }
  [[ $tool == sort ]] && same "$corpus.sorted" "$ref" "native sort --parallel=$t vs --parallel=1"
  for c in "${carriers[@]}"; do
    out=$compat_tmp/vthread.$t.$c
    start=$(now_ms)
    vthread "$c" 60 $(compress "$t") < "$corpus" > "$out"
    rc=$?
    echo "$(compress "$t"), $c carriers: exit $rc, $(($(now_ms) - start)) ms"
    ((rc == 0)) || { fail "$(compress "$t") under vthread with $c carriers exited with $rc"; continue; }
    same "$ref" "$out" "$(compress "$t"), $c carriers, vs native"
    [[ $tool == sort ]] && continue
    vthread "$c" 60 $(decompress "$t") < "$out" > "$out.back"
    rc=$?
    ((rc == 0)) || { fail "$(decompress "$t") under vthread with $c carriers exited with $rc"; continue; }
    same "$corpus" "$out.back" "round trip through $(compress "$t") / $(decompress "$t"), $c carriers"
  done
done
compat_finish
