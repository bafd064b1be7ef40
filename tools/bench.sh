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

python3 tools/bench_report.py "$builddir/bench.json"
