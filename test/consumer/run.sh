#!/usr/bin/env bash
# Installs sydra-alloc into a scratch prefix and builds test/consumer against
# it through pkg-config; then builds the same consumer with sydra-alloc as a
# subproject. Both must run and see the configured mode.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$root/build-consumer
rm -rf "$work"
mkdir -p "$work"
for mode in small_pool default; do
  prefix=$work/prefix-$mode
  meson setup "$work/lib-$mode" "$root" --wrap-mode=nofallback --prefix="$prefix" -Dallocator_mode=$mode \
    -Dtests=disabled -Dbenchmarks=disabled -Dexamples=disabled >/dev/null
  meson install -C "$work/lib-$mode" >/dev/null
  pcdir=$(dirname "$(find "$prefix" -name sydra-alloc.pc | head -n1)")
  PKG_CONFIG_PATH=$pcdir meson setup "$work/pc-$mode" "$root/test/consumer" --wrap-mode=nofallback \
    -Dexpect_mode=$mode >/dev/null
  meson test -C "$work/pc-$mode" --print-errorlogs
  echo "ok: consumer via pkg-config ($mode)"
done
# As a subproject: a copy of the consumer whose subprojects/ points at this tree.
cp -r "$root/test/consumer" "$work/sub-src"
mkdir -p "$work/sub-src/subprojects"
ln -s "$root" "$work/sub-src/subprojects/sydra-alloc"
meson setup "$work/sub" "$work/sub-src" --force-fallback-for=sydra-alloc -Dexpect_mode=mimalloc \
  -Dsydra-alloc:allocator_mode=mimalloc >/dev/null
meson test -C "$work/sub" --print-errorlogs
echo "ok: consumer via subproject (mimalloc)"
