#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: -fsanitize=address,undefined in build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=build; flags=()
if [ "${1:-}" = "--sanitize" ]; then build=build-asan; flags=(-DTG_SANITIZE=ON); fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "${flags[@]}" >/dev/null
cmake --build "$build" -j "$(nproc)"
# ASan: leak checks on; OpenMP's runtime keeps thread-local pools alive at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
