#!/usr/bin/env bash
# Programs nobody here wrote, run on libsydra-malloc.so through LD_PRELOAD:
# each must give the same output and exit code as without it, and its
# SYDRA_ALLOC_STATS=json report must show small blocks served by the pools.
# CHURN_LINKED are the churn program linked against another malloc (jemalloc,
# tcmalloc): the library must still find glibc's heap in glibc. Last,
# redis-server (which links jemalloc) serves redis-benchmark and redis-cli on
# 127.0.0.1.
#   real_programs.sh LIB SRC_ROOT CHURN [CHURN_LINKED...]     (SORT_MB: 200)
set -euo pipefail
lib=$1; src=$2; churn=$3; shift 3; churn_linked=("$@"); sort_mb=${SORT_MB:-200}
python=/usr/bin/python3  # not a shim: one process, one report
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=programs.sh
source "$(dirname "$0")/programs.sh"
prepare_programs "$work" "$src" "$churn" "$sort_mb" 60
for exe in "${churn_linked[@]}"; do
  other=$(readelf -d "$exe" | grep -oE 'lib(jemalloc|tcmalloc[a-z_]*)\.so\.[0-9]+' | head -1) || true
  [ -n "$other" ] || { echo "FAIL $exe: links no other malloc (readelf -d shows no libjemalloc/libtcmalloc)"; exit 1; }
  programs+=("churn+${other%%.so*}|$exe 4 40 7")
done

# The SYDRA_ALLOC_STATS=json reports in FILE: pooled and fallback counts.
check_stats() {
  $python - "$1" <<'PY'
import json, sys
reports = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{"version"')]
assert reports, "no SYDRA_ALLOC_STATS=json report on stderr"
pooled = fallback = 0
for r in reports:
    pooled += (r["shards"]["alloc_hits"] if r.get("shards") else 0) + sum(b["allocations"] for b in r.get("buckets", []))
    fallback += r["fallback"]["allocs"]
assert pooled > 0, f"no block served by the pools ({fallback} by the fallback)"
print(f"{pooled} pooled, {fallback} fallback allocations ({100 * pooled / (pooled + fallback):.1f}% pooled)")
PY
}

failed=0
for entry in "${programs[@]}"; do
  name=${entry%%|*}; cmd=${entry#*|}
  start=$(date +%s.%N)
  set +e
  $cmd >"$work/want" 2>/dev/null; want_rc=$?
  LD_PRELOAD=$lib SYDRA_ALLOC_STATS=json $cmd >"$work/got" 2>"$work/err"; got_rc=$?
  set -e
  if [ $want_rc -ne $got_rc ]; then
    echo "FAIL $name: exit code $got_rc under sydra-malloc, $want_rc under glibc"; tail -5 "$work/err"; failed=1; continue
  fi
  if ! cmp -s "$work/want" "$work/got"; then
    echo "FAIL $name: output differs ($(md5sum <"$work/want" | cut -c1-12) vs $(md5sum <"$work/got" | cut -c1-12))"
    failed=1; continue
  fi
  if ! served=$(check_stats "$work/err"); then
    echo "FAIL $name: stats"; cat "$work/err" | tail -3; failed=1; continue
  fi
  printf 'ok   %-9s same output (%s bytes) and exit code %d; %s; %.1fs\n' "$name" "$(wc -c <"$work/got")" "$got_rc" \
    "$served" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
done

# redis-server links libjemalloc.so.2 and allocates in static constructors:
# it must start, serve a benchmark and give back what was stored.
redis_check() {
  command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
    echo "FAIL redis: redis-server or redis-benchmark missing (Debian packages redis-server redis-tools)"; return 1; }
  local port=$((20000 + $$ % 20000)) pid i got rc=0
  local cli=(redis-cli -h 127.0.0.1 -p "$port")
  start=$(date +%s.%N)
  LD_PRELOAD=$lib SYDRA_ALLOC_STATS=json redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize no --loglevel warning >"$work/redis.out" 2>"$work/err" &
  pid=$!
  for i in $(seq 50); do "${cli[@]}" ping >/dev/null 2>&1 && break; sleep 0.1; done
  if ! "${cli[@]}" ping >/dev/null 2>&1; then
    echo "FAIL redis: redis-server did not answer on 127.0.0.1:$port"; kill "$pid" 2>/dev/null; wait "$pid"
    tail -5 "$work/redis.out" "$work/err"; return 1
  fi
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -c 8 -d 300 -r 5000 -q --csv \
    -t set,get,lpush,lpop,sadd,hset,mset >"$work/bench.csv" 2>&1 || rc=$?
  # Values of 16 B to 64 KiB, stored and read back byte for byte.
  for i in 16 100 1000 5000 20000 65536; do
    head -c "$i" /dev/zero | tr '\0' "x" | "${cli[@]}" -x set "key$i" >/dev/null
    got=$("${cli[@]}" strlen "key$i")
    [ "$got" = "$i" ] || { echo "FAIL redis: key$i has length $got, not $i"; rc=1; }
    [ "$("${cli[@]}" get "key$i" | tr -d '\n' | tr -d x | wc -c)" = 0 ] || { echo "FAIL redis: key$i corrupted"; rc=1; }
  done
  "${cli[@]}" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" || true
  if [ $rc -ne 0 ] || [ "$(grep -c '"' "$work/bench.csv")" -lt 7 ]; then
    echo "FAIL redis: redis-benchmark (exit $rc)"; cat "$work/bench.csv"; tail -5 "$work/redis.out"; return 1
  fi
  local served
  served=$(check_stats "$work/err") || { echo "FAIL redis: stats"; tail -3 "$work/err"; return 1; }
  printf 'ok   %-9s served redis-benchmark (%s); values read back; %s; %.1fs\n' redis \
    "$(awk -F'"' 'NR > 1 { printf "%s%s %s rps", sep, $2, $4; sep = ", " }' "$work/bench.csv")" "$served" \
    "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
}
redis_check || failed=1
exit $failed
