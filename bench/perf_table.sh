#!/bin/sh
# Prints the issue-18 table (tapegrad vs PyTorch: steps, eval, cold step, loaded step, memory) for
# this machine; see bench/perf_table.py. Usage: bench/perf_table.sh [build dir] [rounds] [reps]
set -e
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
[ -x "$build/bin/bench_unet_step" ] || { echo "perf_table.sh: $build/bin/bench_unet_step not found (build first)" >&2; exit 2; }
exec /usr/bin/python3 "$here/perf_table.py" "$build/bin/bench_unet_step" "${2:-3}" "${3:-2}"
