#!/usr/bin/env bash
# Builds the benchmarks in a release folder (build-bench, unchecked), runs the
# throughput suite once and every memory scenario once per allocator, and
# writes docs/benchmarks.md and docs/benchmarks.svg (tools/bench_report.py),
# printing the same report to stdout. About 8 minutes on the project's
# 2-core machine; at most about 14.
#
#   bash tools/bench.sh                                  # everything
#   BENCH_QUICK=1 bash tools/bench.sh                    # smoke run in seconds; writes build-bench/quick/
#   bash tools/bench.sh --benchmark_filter='BM_Pair/'    # extra args go to bench-alloc
#
# Environment:
#   BENCH_QUICK=1          tiny samples and memory sizes, 1 repetition; the page goes to
#                          build-bench/quick/ so that smoke numbers never land in docs/
#   BENCH_MIN_TIME         seconds per repetition (default 0.2; quick 0.01)
#   BENCH_REPETITIONS      default 5 (quick 1); producer/consumer always takes 9 (quick 3)
#   BENCH_CHECKED=0|1      also time a checked build's fast paths (default 1; quick 0)
#   BENCH_JOBS             compile jobs (default 2: the machine has 2 cores)
#   BENCH_SOURCE_REV       names the sources on the page when they are not a git checkout
#   SNMALLOC_SRC=DIR       snmalloc's source folder (the one holding src/snmalloc/): bench-alloc gets an
#                          inlined snmalloc peer (meson -Dsnmalloc_src) and the page an snmalloc column;
#                          unset, there is none and the page says so
#
# Benchmarks inform, they do not gate: the script fails only when something
# cannot be built or run, never on a FAIL line of the report.
set -euo pipefail

# Absolute before the cd below, so that a path relative to the caller's folder works.
snmalloc_src=""
[[ -n "${SNMALLOC_SRC:-}" ]] && snmalloc_src=$(realpath -m -- "$SNMALLOC_SRC")

cd "$(dirname "$0")/.."
builddir=build-bench
checked_dir=build-bench-checked
quick=${BENCH_QUICK:-0}
[[ "$quick" == "0" ]] && quick=""
jobs=${BENCH_JOBS:-2}
if [[ -n "$quick" ]]; then
  min_time=${BENCH_MIN_TIME:-0.01}
  reps=${BENCH_REPETITIONS:-1}
  with_checked=${BENCH_CHECKED:-0}
  outdir=$builddir/quick
else
  min_time=${BENCH_MIN_TIME:-0.2}
  reps=${BENCH_REPETITIONS:-5}
  with_checked=${BENCH_CHECKED:-1}
  outdir=docs
fi

log() { printf '== %s\n' "$*" >&2; }

configure() {  # dir, then meson options
  local dir=$1
  shift
  local again=()
  [[ -d "$dir/meson-private" ]] && again=(--reconfigure)
  mkdir -p "$dir"
  meson setup "${again[@]}" "$dir" "$@" >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log" >&2; return 1; }
}

common_opts=(-Dbuildtype=release -Dtests=disabled -Dexamples=disabled -Dbenchmarks=enabled --wrap-mode=nofallback)
log "build $builddir (release, unchecked)${snmalloc_src:+, snmalloc from $snmalloc_src}"
# Passed even when empty: a reconfigure keeps old option values, and an earlier SNMALLOC_SRC must not linger.
configure "$builddir" "${common_opts[@]}" -Dchecked=false -Dsnmalloc_src="$snmalloc_src"
meson compile -C "$builddir" -j "$jobs" bench-alloc bench-memory lib/malloc/sydra-malloc bench/malloc-churn bench/malloc-calloc \
  >"$builddir/compile.log" 2>&1 ||
  { tail -40 "$builddir/compile.log" >&2; exit 1; }

mkdir -p "$outdir"
commands=$builddir/bench-commands.txt
: >"$commands"

# ---- Throughput: one process, every shape, interleaved repetitions ------------------
alloc_args=(--benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true
            --benchmark_report_aggregates_only=true --benchmark_min_time="$min_time"
            --benchmark_out="$builddir/bench.json" --benchmark_out_format=json "$@")
echo "${quick:+BENCH_QUICK=1 }$builddir/bench/bench-alloc ${alloc_args[*]}" >>"$commands"
log "throughput: bench-alloc, $reps repetitions of ${min_time}s, interleaved (console: $builddir/bench-alloc.log)"
BENCH_QUICK=${quick:-0} "$builddir/bench/bench-alloc" "${alloc_args[@]}" >"$builddir/bench-alloc.log" 2>&1 ||
  { tail -40 "$builddir/bench-alloc.log" >&2; exit 1; }

# ---- Memory: one process per allocator and scenario ---------------------------------
libdir=$(dirname "$(ldconfig -p | awk '/libmimalloc\.so\.2 / {print $NF; exit}')")
[[ -z "$libdir" || "$libdir" == "." ]] && libdir=/usr/lib/x86_64-linux-gnu
preload_for() {
  case $1 in
    mimalloc) echo "$libdir/libmimalloc.so.2" ;;
    jemalloc) echo "$libdir/libjemalloc.so.2" ;;
    *) echo "" ;;
  esac
}
if [[ -n "$quick" ]]; then
  blocks=65536 phase_bytes=$((8 << 20)) churn_slots=16384 churn_ops=200000 range_bytes=$((64 << 20))
else
  blocks=1048576 phase_bytes=$((64 << 20)) churn_slots=65536 churn_ops=2000000 range_bytes=$((1 << 30))
fi
scenarios=(
  "rss-per-byte 16 $blocks" "rss-per-byte 64 $blocks" "rss-per-byte 256 $blocks"
  "rss-per-byte-range 1024 65536 $range_bytes"
  "free-all-trim $blocks"
  "phase-shift 16 128 $phase_bytes" "phase-shift 64 256 $phase_bytes"
  "churn-peak 16 256 2 $churn_slots $churn_ops" "churn-peak 8 1024 2 $churn_slots $churn_ops"
  "per-thread 16" "per-thread 256" "per-thread 1024"
)
memory=$builddir/memory.jsonl
: >"$memory"
log "memory: ${#scenarios[@]} scenarios x 4 allocators, one process each ($memory)"
for scenario in "${scenarios[@]}"; do
  for allocator in glibc mimalloc jemalloc sydra; do
    preload=$(preload_for "$allocator")
    # shellcheck disable=SC2086  # the scenario is a word list on purpose
    echo "${preload:+LD_PRELOAD=$preload }$builddir/bench/bench-memory $allocator $scenario" >>"$commands"
    # shellcheck disable=SC2086
    if ! out=$(LD_PRELOAD=$preload "$builddir/bench/bench-memory" "$allocator" $scenario 2>&1); then
      # Recorded, not fatal: the report shows the error in place of a number.
      msg=${out//[\"\\]/}
      msg=${msg//$'\n'/ }
      read -r name _ <<<"$scenario"
      printf '{"scenario": "%s", "allocator": "%s", "args": "%s", "error": "%s"}\n' \
        "$name" "$allocator" "$scenario" "$msg" >>"$memory"
      log "  $allocator $scenario: FAILED: $msg"
    else
      printf '%s\n' "$out" | grep '^{' >>"$memory"
    fi
  done
done

# ---- Real programs on each malloc (issue 11) ----------------------------------------
programs=$builddir/programs.jsonl
# long_rounds: python3 objects.py's rounds (12: about 6.5 s under glibc; 1 for a smoke run).
if [[ -n "$quick" ]]; then prog_reps=1 sort_mb=20 long_rounds=1; else prog_reps=3 sort_mb=300 long_rounds=12; fi
echo "tools/bench_programs.sh $programs $builddir/lib/malloc/libsydra-malloc.so $builddir/bench/malloc-churn . $prog_reps $sort_mb $long_rounds" >>"$commands"
log "programs: python3, sort, git, churn, python3 objects under 4 mallocs, $prog_reps repetitions ($programs)"
tools/bench_programs.sh "$programs" "$builddir/lib/malloc/libsydra-malloc.so" "$builddir/bench/malloc-churn" . \
  "$prog_reps" "$sort_mb" "$long_rounds"

# ---- What the hardened opt-in costs (issue 13) ---------------------------------------
# Plain, hardened and stats-free small_pool handles, pairs and batches, interleaved in one run.
hardened_args=(--benchmark_filter='^BM_(Pair|Batch64)/(Sydra|SydraHardened|SydraLean)/' --benchmark_repetitions="$reps"
               --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
               --benchmark_min_time="$min_time" --benchmark_out="$builddir/hardened.json" --benchmark_out_format=json)
echo "$builddir/bench/bench-alloc ${hardened_args[*]}" >>"$commands"
log "hardened: plain and hardened small_pool pairs and batches ($builddir/hardened.json)"
BENCH_QUICK=${quick:-0} "$builddir/bench/bench-alloc" "${hardened_args[@]}" >"$builddir/hardened.log" 2>&1 ||
  { tail -20 "$builddir/hardened.log" >&2; exit 1; }

# ---- The fast paths in a checked build --------------------------------------------
# Misuse checks compiled in: what they cost when on, and that the release
# build above carries none of it. Normalised by glibc's pair in each run.
report_args=(--throughput "$builddir/bench.json" --memory "$memory" --programs "$programs" --hardened "$builddir/hardened.json" --commands "$commands"
             --builddir "$builddir" --out "$outdir/benchmarks.md" --svg "$outdir/benchmarks.svg")
if [[ "$with_checked" == "1" ]]; then
  log "build $checked_dir (release, checked) and time its fast paths"
  configure "$checked_dir" "${common_opts[@]}" -Dchecked=true -Dsnmalloc_src=  # its filter has no snmalloc shape
  meson compile -C "$checked_dir" -j "$jobs" bench-alloc >"$checked_dir/compile.log" 2>&1 ||
    { tail -40 "$checked_dir/compile.log" >&2; exit 1; }
  checked_args=(--benchmark_filter='^BM_Pair/(Sydra|SydraNoShard|Glibc)/64/align:8$' --benchmark_repetitions="$reps"
                --benchmark_report_aggregates_only=true --benchmark_min_time="$min_time"
                --benchmark_out="$checked_dir/bench.json" --benchmark_out_format=json)
  echo "$checked_dir/bench/bench-alloc ${checked_args[*]}" >>"$commands"
  "$checked_dir/bench/bench-alloc" "${checked_args[@]}" >"$checked_dir/bench-alloc.log" 2>&1 ||
    { tail -20 "$checked_dir/bench-alloc.log" >&2; exit 1; }
  report_args+=(--checked "$checked_dir/bench.json")
fi

# Which library was measured: the commit, and whether the measured sources
# (library, build, benchmarks) differed from it.
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- include lib meson.build meson_options.txt bench 2>/dev/null || rev="$rev + uncommitted changes"
else
  rev=${BENCH_SOURCE_REV:-unknown}
fi
report_args+=(--source "$rev")
[[ -n "$quick" ]] && report_args+=(--quick)
log "report: $outdir/benchmarks.md, $outdir/benchmarks.svg"
python3 tools/bench_report.py "${report_args[@]}"
