#!/usr/bin/env bash
# The churn program on a malloc whose handle calls malloc while being built
# (reentrant_malloc.cpp): same output as without it, and the library's word
# that the re-entrant calls were served from the bootstrap arena.
#   reentry.sh LIB CHURN
set -euo pipefail
lib=$1; churn=$2
want=$("$churn" 2 20 3 2>/dev/null)
got=$(timeout 30 env LD_PRELOAD="$lib" "$churn" 2 20 3 2>/tmp/reentry.$$) || {
  rc=$?; echo "FAIL: exit $rc under the re-entrant malloc (124: it hung)"; cat /tmp/reentry.$$; rm -f /tmp/reentry.$$; exit 1; }
err=$(cat /tmp/reentry.$$); rm -f /tmp/reentry.$$
[ "$got" = "$want" ] || { echo "FAIL: output differs: '$got' vs '$want'"; exit 1; }
line=$(grep -m1 '^reentrant-malloc:' <<<"$err") || { echo "FAIL: the handle was never built by the library"; echo "$err"; exit 1; }
grep -q 're-entrant calls served; [1-9][0-9]* blocks' <<<"$line" || { echo "FAIL: $line"; exit 1; }
echo "ok: $line"
echo "ok: same output: $got"
