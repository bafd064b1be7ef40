#!/usr/bin/env bash
# Builds bench-alloc in a release folder (build-bench), runs it with 5
# repetitions and prints the medians and ratios (tools/bench_report.py).
#
#   bash tools/bench.sh                               # everything (about 2-3 minutes)
#   bash tools/bench.sh --benchmark_filter='Pair_'    # extra args go to bench-alloc
#
# Environment: BENCH_MIN_TIME (seconds per repetition, default 0.2),
#              BENCH_REPETITIONS (default 5).
set -euo pipefail

cd "$(dirname "$0")/.."
builddir=build-bench
min_time=${BENCH_MIN_TIME:-0.2}
reps=${BENCH_REPETITIONS:-5}

opts=(-Dbuildtype=release -Dchecked=false -Dtests=disabled -Dexamples=disabled -Dbenchmarks=enabled
      --wrap-mode=nofallback)
if [[ -d "$builddir/meson-private" ]]; then
  meson setup --reconfigure "$builddir" "${opts[@]}"
else
  meson setup "$builddir" "${opts[@]}"
fi
meson compile -C "$builddir" bench-alloc

"$builddir/bench/bench-alloc" \
  --benchmark_repetitions="$reps" \
  --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true \
  --benchmark_min_time="$min_time" \
  --benchmark_out="$builddir/bench.json" \
  --benchmark_out_format=json \
  "$@"

# The same fast paths in a checked build (misuse checks compiled in), so the
# report can show what the checks cost when on, and that the release build
# above carries none of it. Normalised by glibc's pair in each run.
checked_dir=build-bench-checked
copts=(-Dbuildtype=release -Dchecked=true -Dtests=disabled -Dexamples=disabled -Dbenchmarks=enabled
       --wrap-mode=nofallback)
if [[ -d "$checked_dir/meson-private" ]]; then
  meson setup --reconfigure "$checked_dir" "${copts[@]}" >/dev/null
else
  meson setup "$checked_dir" "${copts[@]}" >/dev/null
fi
meson compile -C "$checked_dir" bench-alloc >/dev/null
"$checked_dir/bench/bench-alloc" \
  --benchmark_filter='BM_Pair_(ShardFast|BucketTimed|Glibc)/64$' \
  --benchmark_repetitions="$reps" \
  --benchmark_report_aggregates_only=true \
  --benchmark_min_time="$min_time" \
  --benchmark_out="$checked_dir/bench.json" \
  --benchmark_out_format=json >/dev/null

python3 tools/bench_report.py "$builddir/bench.json" "$checked_dir/bench.json"
