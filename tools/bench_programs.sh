#!/usr/bin/env bash
# Issue 11's program benchmark: the real programs of test/malloc/real_programs.sh
# and the bench-only long ones (test/malloc/programs.sh) under glibc's malloc,
# libsydra-malloc.so (also with SYDRA_ALLOC_PROF set: sydra-prof), mimalloc and
# jemalloc (Debian's .so files, LD_PRELOAD),
# repetitions interleaved across allocators. One JSON line per run: wall
# seconds and the child's peak RSS (getrusage).
#   bench_programs.sh OUT.jsonl LIBSYDRA CHURN SRC_ROOT [REPS] [SORT_MB] [LONG_ROUNDS]
set -euo pipefail
out=$1; sydra=$2; churn=$3; src=$4; reps=${5:-3}; sort_mb=${6:-300}; long_rounds=${7:-12}
libdir=/usr/lib/x86_64-linux-gnu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=../test/malloc/programs.sh
source "$(dirname "$0")/../test/malloc/programs.sh"
prepare_programs "$work" "$src" "$churn" "$sort_mb" 100 "$long_rounds"
programs+=("${long_programs[@]}")

# sydra-prof: the same library with the heap profiler on at its default mean
# (issue 19's overhead target), writing its profile at each exit.
declare -A preload=([glibc]="" [sydra]="$sydra" [sydra-prof]="$sydra" [mimalloc]="$libdir/libmimalloc.so.2"
                    [jemalloc]="$libdir/libjemalloc.so.2")
declare -A prof=([sydra-prof]="$work/profile.heap")
for allocator in sydra mimalloc jemalloc; do  # a missing .so would be ignored by the loader: glibc under its name
  [[ -f "${preload[$allocator]}" ]] || { echo "bench_programs.sh: ${preload[$allocator]} not found" >&2; exit 1; }
done
: >"$out"
for ((rep = 1; rep <= reps; rep++)); do
  for entry in "${programs[@]}"; do
    name=${entry%%|*}; cmd=${entry#*|}
    for allocator in glibc sydra sydra-prof mimalloc jemalloc; do
      /usr/bin/python3 - "$name" "$allocator" "${preload[$allocator]}" "$cmd" "${prof[$allocator]:-}" >>"$out" <<'PY'
import json, os, resource, shlex, subprocess, sys, time
name, allocator, lib, cmd, prof = sys.argv[1:6]
env = dict(os.environ)
env.pop("SYDRA_ALLOC_PROF", None)
if lib:
    env["LD_PRELOAD"] = lib
if prof:
    env["SYDRA_ALLOC_PROF"] = prof
t = time.perf_counter()
rc = subprocess.run(shlex.split(cmd), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"program": name, "allocator": allocator, "wall_s": wall, "maxrss_kb": rss, "rc": rc}))
PY
    done
  done
done
