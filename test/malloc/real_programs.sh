#!/usr/bin/env bash
# Programs nobody here wrote, run on libsydra-malloc.so through LD_PRELOAD:
# each must give the same output and exit code as on glibc's malloc, and its
# SYDRA_ALLOC_STATS=json report must show small blocks served by the pools.
#   real_programs.sh LIB SRC_ROOT CHURN [SORT_MB]
set -euo pipefail
lib=$1; src=$2; churn=$3; sort_mb=${4:-200}
python=/usr/bin/python3  # not a shim: one process, one report
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=programs.sh
source "$(dirname "$0")/programs.sh"
prepare_programs "$work" "$src" "$churn" "$sort_mb" 60

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
  if ! served=$($python - "$work/err" <<'PY'
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
  ); then
    echo "FAIL $name: stats"; cat "$work/err" | tail -3; failed=1; continue
  fi
  printf 'ok   %-9s same output (%s bytes) and exit code %d; %s; %.1fs\n' "$name" "$(wc -c <"$work/got")" "$got_rc" \
    "$served" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
done
exit $failed
