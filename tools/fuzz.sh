#!/usr/bin/env bash
# Builds the libFuzzer harness (test/fuzz/fuzz_handle.cpp) with ASan and UBSan
# in build-fuzz and runs it for a fixed time. Exits non-zero on any crash,
# leak, sanitizer report or failed check.
#
#   bash tools/fuzz.sh          # 60 seconds
#   bash tools/fuzz.sh 300      # 300 seconds
#
# The seed corpus (test/fuzz/corpus) is copied into build-fuzz/fuzz-corpus,
# where libFuzzer writes what it finds; the repository is never written to.
# Crash reproducers land in build-fuzz/fuzz-artifacts; replay one with
#   build-fuzz/test/fuzz/fuzz-handle build-fuzz/fuzz-artifacts/crash-...
# Environment: FUZZ_BUILDDIR (default build-fuzz), FUZZ_ARGS (extra libFuzzer flags),
# FUZZ_JOBS (parallel compile jobs; default: ninja's).
set -euo pipefail

seconds=${1:-60}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "usage: $0 [seconds]   (a positive whole number, default 60)" >&2
  exit 2
fi

cd "$(dirname "$0")/.."
builddir=${FUZZ_BUILDDIR:-build-fuzz}

# The libraries are built with the sanitizers too (b_sanitize), and with
# coverage instrumentation (fuzzer-no-link) so that libFuzzer is guided by
# the allocator's branches, not only the harness's: the handle's members are
# instantiated in the library (extern template), not in the harness.
opts=(-Dfuzzing=enabled -Db_sanitize=address,undefined -Db_lundef=false -Dchecked=true
      -Dtests=disabled -Dbenchmarks=disabled -Dexamples=disabled --wrap-mode=nofallback
      -Dbuildtype=debugoptimized -Dcpp_args=-fsanitize=fuzzer-no-link)
export CXX=${CXX:-clang++}
if [[ -d "$builddir/meson-private" ]]; then
  # A folder configured with another compiler cannot be reconfigured to clang.
  # Meson 1.1+ names the compilers in intro-compilers.json; older versions
  # (Debian 12 has 1.0.1) only in each target's entry of intro-targets.json.
  # Without either match the folder is wiped and everything rebuilt.
  if grep -qs '"id": "clang"' "$builddir/meson-info/intro-compilers.json" ||
     grep -qs '"compiler": \["[^"]*clang++' "$builddir/meson-info/intro-targets.json"; then
    meson setup --reconfigure "$builddir" "${opts[@]}"
  else
    meson setup --wipe "$builddir" "${opts[@]}"
  fi
else
  meson setup "$builddir" "${opts[@]}"
fi
meson compile -C "$builddir" ${FUZZ_JOBS:+-j "$FUZZ_JOBS"} fuzz-handle

corpus="$builddir/fuzz-corpus"
artifacts="$builddir/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
cp test/fuzz/corpus/* "$corpus/"

# UBSan only prints by default: make any report fatal, so libFuzzer keeps the input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# The harness asks for non-power-of-two alignments on purpose; checked builds
# warn on each (tens of thousands of lines a minute), so those lines are dropped.
noise='^sydra-alloc: bad request: alignment is not a power of two'

# The scratch corpus holds the seeds and whatever libFuzzer adds.
set +e
# shellcheck disable=SC2086
"$builddir/test/fuzz/fuzz-handle" \
  -max_total_time="$seconds" \
  -max_len=4096 \
  -rss_limit_mb=2048 \
  -timeout=30 \
  -print_final_stats=1 \
  -error_exitcode=77 \
  -artifact_prefix="$artifacts/" \
  ${FUZZ_ARGS:-} \
  "$corpus" 2>&1 | grep -v --line-buffered -e "$noise"
status=${PIPESTATUS[0]}
set -e
if (( status != 0 )); then
  echo "fuzz.sh: fuzz-handle failed (exit $status); reproducers in $artifacts:" >&2
  ls -l "$artifacts" >&2 || true
  echo "replay with: FUZZ_HANDLE_TRACE=1 $builddir/test/fuzz/fuzz-handle <file>" >&2
  exit "$status"
fi
