#!/usr/bin/env bash
# Sets up, builds and runs the main job. Until the UNet experiment lands, the
# demo is: a two-layer MLP fitting two spirals (examples/toyfit).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
build/bin/toyfit "$@"
