#!/usr/bin/env bash
# Builds the library in the configured mode (default: small_pool) and runs the
# demo (examples/demo.cpp): an in-memory time-series store on
# sydra::alloc::AllocatorHandle, writers and readers for two seconds, then its
# stats and a reading of them. Pass Meson options to change the mode, e.g.
#   ./tools/demo.sh -Dallocator_mode=mimalloc
# and run build-demo/examples/demo directly for its own options
# (--seconds N, --json).
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
