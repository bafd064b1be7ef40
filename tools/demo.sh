#!/usr/bin/env bash
# Builds the library in the configured mode (default: small_pool) and runs the
# demo, which allocates through sydra::alloc::AllocatorHandle and prints its
# stats. Pass Meson options to change the mode, e.g.
#   ./tools/demo.sh -Dallocator_mode=mimalloc
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/deps.sh demo
dir=build-demo
if [ -d "$dir/meson-private" ]; then
  meson setup --reconfigure "$dir" --wrap-mode=nofallback -Dtests=disabled -Dbenchmarks=disabled "$@" >/dev/null
else
  meson setup "$dir" --wrap-mode=nofallback -Dtests=disabled -Dbenchmarks=disabled "$@" >/dev/null
fi
ninja -C "$dir" examples/demo >/dev/null
"./$dir/examples/demo"
