#!/usr/bin/env bash
# Tier 3 of tools/test-all.sh: sydra-alloc as an engine project gets it.
#   1. Installs sydra-alloc (small_pool, then default) into a scratch prefix
#      and builds test/consumer against it through pkg-config, and
#      test/consumer/cmake (the same consumer.cpp) through
#      find_package(sydra-alloc CONFIG). A request for version 99 must be
#      refused, and a --prefix=/usr install unpacked under a DESTDIR must be
#      found and linked from there (the CMake files are relocatable).
#   2. Builds the same consumer with sydra-alloc as a subproject, through the
#      wrap file README.md shows (mode chosen from the parent:
#      -Dsydra-alloc:allocator_mode=mimalloc).
# Both consumers must run and see the configured mode. Along the way it
# checks what packaging promises:
#   - neither the install nor the subproject build compiles a per-mode
#     library (sydra-alloc-default, -mimalloc, -small_pool: those are for
#     this project's own tests), and the subproject builds none of
#     sydra-alloc's tests, benchmarks or examples;
#   - the installed .pc (and one generated for --prefix=/usr) has no -std=
#     flag and no -I/usr/include;
#   - the installed headers refuse C++17 with the one-line #error.
#
#   test/consumer/run.sh [source root]
# Environment: CONSUMER_BUILDDIR (default <root>/build-consumer) is wiped and
# reused for everything this script builds; NINJA_JOBS caps ninja's -j.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
work=${CONSUMER_BUILDDIR:-$root/build-consumer}
rm -rf "$work"
mkdir -p "$work"
jobs=()
if [ -n "${NINJA_JOBS:-}" ]; then jobs=(-j "$NINJA_JOBS"); fi

fail() { echo "FAIL: $*" >&2; exit 1; }

# build DIR LOG: ninja's default targets, output to LOG (shown on failure).
build() {
  local dir=$1 log=$2
  if ! ninja -C "$dir" "${jobs[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "building $dir (full log: $log)"
  fi
}
mode_lib_re='sydra-alloc-(default|mimalloc|small_pool)'

# no_mode_libs DIR LOG WHAT: neither DIR's target list nor the build log LOG
# may name a per-mode library.
no_mode_libs() {
  local dir=$1 log=$2 what=$3
  if ninja -C "$dir" -t targets all | grep -E "$mode_lib_re"; then
    fail "$what defines per-mode library targets (above)"
  fi
  if grep -E "$mode_lib_re" "$log"; then
    fail "$what built a per-mode library (above; log: $log)"
  fi
}

# pc_is_clean FILE: the .pc must leave the standard and the system include
# directory to the consumer.
pc_is_clean() {
  local pc=$1
  if grep -nE -- '-std=|-I/usr/include([[:space:]]|$)' "$pc"; then
    fail "$pc forces a -std flag or -I/usr/include on consumers (above)"
  fi
}

# cmake_consumer DIR PREFIX MODE [cmake args...]: configure, build and run
# test/consumer/cmake against the install under PREFIX, which must be MODE.
# The version asked for is the project's own (see version below).
cmake_consumer() {
  local dir=$1 prefix=$2 mode=$3; shift 3
  if ! cmake -S "$root/test/consumer/cmake" -B "$dir" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DSYDRA_ALLOC_VERSION="$version" -DEXPECT_MODE="$mode" "$@" >"$dir.log" 2>&1; then
    tail -n 40 "$dir.log" >&2
    fail "configuring the CMake consumer against $prefix (find_package(sydra-alloc $version CONFIG); full log: $dir.log)"
  fi
  if ! cmake --build "$dir" "${jobs[@]}" >>"$dir.log" 2>&1; then
    tail -n 40 "$dir.log" >&2
    fail "building the CMake consumer against $prefix (full log: $dir.log)"
  fi
  "$dir/consumer" "$mode" || fail "the CMake consumer against $prefix failed (exit $?)"
}

# 1. Installed library, through pkg-config and through CMake.
for mode in small_pool default; do
  prefix=$work/prefix-$mode
  meson setup "$work/lib-$mode" "$root" --wrap-mode=nofallback --prefix="$prefix" -Dallocator_mode=$mode \
    -Dtests=disabled -Dbenchmarks=disabled -Dexamples=disabled >/dev/null
  # What `meson install` builds first (every default target), with its log
  # kept for the check below; then the install itself.
  build "$work/lib-$mode" "$work/lib-$mode.log"
  meson install -C "$work/lib-$mode" --no-rebuild >/dev/null
  no_mode_libs "$work/lib-$mode" "$work/lib-$mode.log" "install ($mode)"
  steps=$(grep -cE '^\[[0-9]+/[0-9]+\]' "$work/lib-$mode.log" || true)
  pc=$(find "$prefix" -name sydra-alloc.pc | head -n1)
  [ -n "$pc" ] || fail "no sydra-alloc.pc under $prefix"
  pc_is_clean "$pc"
  echo "ok: install ($mode): $steps build steps, no per-mode library; .pc: $(grep '^Cflags:' "$pc")"

  PKG_CONFIG_PATH=$(dirname "$pc") meson setup "$work/pc-$mode" "$root/test/consumer" --wrap-mode=nofallback \
    -Dexpect_mode=$mode >/dev/null
  meson test -C "$work/pc-$mode" --print-errorlogs
  echo "ok: consumer via pkg-config ($mode)"

  version=$(meson introspect --projectinfo "$work/lib-$mode" | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
  config=$(find "$prefix" -name sydra-allocConfig.cmake | head -n1)
  [ -n "$config" ] || fail "no sydra-allocConfig.cmake under $prefix (was cmake found when meson configured?)"
  [ -f "$(dirname "$config")/sydra-allocConfigVersion.cmake" ] || fail "no sydra-allocConfigVersion.cmake next to $config"
  cmake_consumer "$work/cmake-$mode" "$prefix" "$mode"
  echo "ok: consumer via CMake ($mode): find_package(sydra-alloc $version CONFIG), target sydra::alloc"
done

# An incompatible version must be refused by the version file, not missed:
# CMake has to name the installed config it considered and turned down.
if cmake -S "$root/test/consumer/cmake" -B "$work/cmake-v99" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix-small_pool" \
    -DSYDRA_ALLOC_VERSION=99 >"$work/cmake-v99.log" 2>&1; then
  fail "find_package(sydra-alloc 99 CONFIG) accepted version $version (log: $work/cmake-v99.log)"
fi
if ! grep -q 'compatible with requested version "99"' "$work/cmake-v99.log" \
    || ! grep -q "sydra-allocConfig.cmake, version: $version" "$work/cmake-v99.log"; then
  cat "$work/cmake-v99.log" >&2
  fail "find_package(sydra-alloc 99 CONFIG) failed, but not because the installed $version was refused (above)"
fi
echo "ok: CMake: find_package(sydra-alloc 99 CONFIG) refuses the installed $version"

# The C++20 guard, through the installed headers and the .pc's own flags: the
# first diagnostic must be the #error, not a cascade from inside the headers.
cflags=$(PKG_CONFIG_PATH=$(dirname "$(find "$work/prefix-small_pool" -name sydra-alloc.pc | head -n1)") \
  pkg-config --cflags sydra-alloc)
# shellcheck disable=SC2086  # cflags is a list of flags
first=$(echo '#include <sydra/alloc.hpp>' | c++ -std=c++17 $cflags -fsyntax-only -x c++ - 2>&1 \
  | grep -m1 'error' || true)
case "$first" in
  *'sydra-alloc needs C++20 (-std=c++20 or later)'*) echo "ok: -std=c++17 refused: $first" ;;
  *) fail "-std=c++17 was not refused with the C++20 #error first; first error: ${first:-none}" ;;
esac

# A --prefix=/usr configuration, configure only (pkg.generate writes the .pc
# at configure time): that is where a stray -I/usr/include used to show up.
meson setup "$work/lib-usr" "$root" --wrap-mode=nofallback --prefix=/usr \
  -Dtests=disabled -Dbenchmarks=disabled -Dexamples=disabled >/dev/null
pc_is_clean "$work/lib-usr/meson-private/sydra-alloc.pc"
echo "ok: --prefix=/usr .pc: $(grep '^Cflags:' "$work/lib-usr/meson-private/sydra-alloc.pc")"

# The same configuration installed under a DESTDIR: the CMake files, written
# for /usr, must find the library where they are, not in the real /usr.
build "$work/lib-usr" "$work/lib-usr.log"
DESTDIR="$work/destdir" meson install -C "$work/lib-usr" --no-rebuild >/dev/null
cmake_consumer "$work/cmake-usr" "$work/destdir/usr" small_pool
grep -F "$work/destdir/usr/lib/" "$work/cmake-usr/build.ninja" | grep 'libsydra-alloc\.a' >/dev/null \
  || fail "the CMake consumer of the DESTDIR install did not link $work/destdir/usr/lib/.../libsydra-alloc.a"
echo "ok: consumer via CMake, --prefix=/usr installed under DESTDIR: found and linked there"

# 2. As a subproject: a copy of the consumer, with its wrap file, whose
# subprojects/sydra-alloc is a link to this tree (so nothing is fetched).
# Nothing is passed for sydra-alloc's tests, benchmarks or examples: inside a
# parent they must default to off.
cp -r "$root/test/consumer" "$work/sub-src"
ln -s "$root" "$work/sub-src/subprojects/sydra-alloc"
meson setup "$work/sub" "$work/sub-src" --wrap-mode=nodownload --force-fallback-for=sydra-alloc \
  -Dexpect_mode=mimalloc -Dsydra-alloc:allocator_mode=mimalloc >/dev/null
if ninja -C "$work/sub" -t targets all | grep -E '^subprojects/sydra-alloc/(test|bench|examples)/'; then
  fail "the subproject defines sydra-alloc's tests, benchmarks or examples (above)"
fi
build "$work/sub" "$work/sub.log"
no_mode_libs "$work/sub" "$work/sub.log" "subproject build"
steps=$(grep -cE '^\[[0-9]+/[0-9]+\]' "$work/sub.log" || true)
echo "ok: subproject build: $steps build steps, no per-mode library, no tests/benchmarks/examples of sydra-alloc"
meson test -C "$work/sub" --print-errorlogs
echo "ok: consumer via subproject (mimalloc)"
