#!/usr/bin/env bash
# Checks (and on Debian, as root, installs) what sydra-alloc needs.
#   tools/deps.sh demo   the library and the demo
#   tools/deps.sh test   everything the test command runs
# Set SKIP_DEPS=1 to skip the check.
set -euo pipefail
[ "${SKIP_DEPS:-0}" = 1 ] && exit 0
what=${1:-test}
pkgs=(meson ninja-build g++ pkg-config cmake python3 libfmt-dev libmimalloc-dev)
if [ "$what" = test ]; then
  pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev python3-jsonschema clang libclang-rt-14-dev valgrind git
         libjemalloc-dev libgoogle-perftools-dev google-perftools redis-server redis-tools)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing Debian packages: ${missing[*]}"
  echo "install them with: sudo apt-get install ${missing[*]}"
  exit 1
fi
