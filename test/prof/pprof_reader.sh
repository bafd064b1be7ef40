#!/usr/bin/env bash
# The profiles libsydra-malloc.so writes, read by the real tool: google-pprof
# (Debian's google-perftools, installed by tools/deps.sh test) must name the
# function that holds the most memory as the top entry of each: the profile
# written at exit (SYDRA_ALLOC_PROF=PATH), the one on demand
# (sydra_alloc_prof_dump) and the one on SIGUSR2 (PATH.1).
#   pprof_reader.sh LIB PROGRAM
set -euo pipefail
lib=$1; prog=$2
pprof=$(command -v google-pprof || true)
if [ -z "$pprof" ]; then
  echo "FAIL: google-pprof not found: install google-perftools (tools/deps.sh test does)"; exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
SYDRA_ALLOC_PROF="$dir/heap" LD_PRELOAD="$lib" "$prog" "$dir/dump"
failed=0
for f in heap dump heap.1; do
  if [ ! -s "$dir/$f" ]; then
    echo "FAIL: no profile at $f"; failed=1; continue
  fi
  out=$("$pprof" --text "$prog" "$dir/$f" 2>/dev/null)
  top=$(grep -m1 -E '^ +[0-9.]+ +[0-9.]+%' <<<"$out" || true)
  if grep -q 'hold_the_most' <<<"$top"; then
    echo "ok: $f: google-pprof's top entry: $(echo $top)"
  else
    echo "FAIL: $f: google-pprof's top entry is not hold_the_most:"; echo "$out" | head -8; failed=1
  fi
  grep -q 'hold_less' <<<"$out" || { echo "FAIL: $f: hold_less missing"; failed=1; }
done
exit $failed
