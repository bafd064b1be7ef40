#!/usr/bin/env bash
# What a preloaded malloc brings into a process: the library must export the
# C allocation API and operator new/delete (exports.map) and nothing else,
# so it replaces none of a program's libstdc++ functions, and it must need
# no C++ runtime or fmt, so a C program loads neither.
#   exports.sh LIB EXPORTS_MAP
set -euo pipefail
lib=$1; map=$2
failed=0

want=$(sed -n '/global:/,/local:/p' "$map" | grep -v -e 'global:' -e 'local:' | tr ';' '\n' | tr -d ' ' | grep . | sort)
got=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort)
extra=$(comm -13 <(echo "$want") <(echo "$got"))
missing=$(comm -23 <(echo "$want") <(echo "$got"))
[ -z "$extra" ] || { echo "FAIL: exports more than the allocation API:"; echo "$extra" | c++filt | sed 's/^/  /'; failed=1; }
[ -z "$missing" ] || { echo "FAIL: does not export:"; echo "$missing" | c++filt | sed 's/^/  /'; failed=1; }
[ $failed -eq 1 ] || echo "ok: exports exactly the $(echo "$got" | wc -l) allocation functions"

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for n in $needed; do
  case $n in
    libc.so.*|libm.so.*|ld-linux*.so.*|libgcc_s.so.*) ;;
    *) echo "FAIL: needs $n (only glibc and libgcc_s are allowed)"; failed=1 ;;
  esac
done
echo "ok: NEEDED $(echo $needed)"

# A C program under the library maps no libstdc++ and no libfmt.
maps=$(LD_PRELOAD=$lib cat /proc/self/maps)
grep -q "$(basename "$lib")" <<<"$maps" || { echo "FAIL: the library was not loaded into cat"; failed=1; }
if grep -qE 'libstdc\+\+|libfmt' <<<"$maps"; then
  echo "FAIL: a C program under the library maps: $(grep -oE '[^ /]*(libstdc\+\+|libfmt)[^ ]*' <<<"$maps" | sort -u | tr '\n' ' ')"
  failed=1
else
  echo "ok: cat under the library maps no libstdc++ or libfmt"
fi
exit $failed
