#!/usr/bin/env bash
# Data parallel on one machine: 1 process x 2 threads against 2 processes x 1 thread
# (mpirun -np 2), and 1 process x 1 thread as the baseline, alternating REPS times; prints every
# run's line, then a table of medians and the ratios. The machine may be shared: read the ratios.
# Usage: bench/dist_compare.sh [REPS] [BUILD_DIR] [-- bench_dist options]
set -euo pipefail
reps=${1:-3}
build=${2:-build}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
bin="$build/bin/bench_dist"
[ -x "$bin" ] || { echo "dist_compare: no $bin (build first)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 # harmless when not root
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$reps"); do
  OMP_NUM_THREADS=1 "$bin" --threads 1 "$@" | grep -v '^#' | sed 's/^/1x1 /' | tee -a "$out"
  OMP_NUM_THREADS=2 "$bin" --threads 2 "$@" | grep -v '^#' | sed 's/^/1x2 /' | tee -a "$out"
  # --bind-to none: each rank's one thread may run on either core, as the threads of one process do
  mpirun -np 2 --bind-to none -x OMP_NUM_THREADS=1 "$bin" --threads 1 "$@" | grep -v '^#' | sed 's/^/2x1 /' | tee -a "$out"
done
/usr/bin/env python3 - "$out" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    conf, name = f[0], f[1]
    kv = dict(zip(f[2::2], f[3::2]))
    rows.setdefault((name, conf), []).append((float(kv["images_per_s"]), float(kv["allreduce_share"]), float(kv["wait_share"])))
print("\n| step | 1 process x 1 thread: images/s | 1 process x 2 threads | 2 processes x 1 thread | 2x1 / 1x2 (per round) | 2x1 / 1x1 | 2x1: allreduce share of the step | 2x1: waiting for the other rank |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name in sorted({n for n, _ in rows}):
    o, a, b = rows.get((name, "1x1"), []), rows.get((name, "1x2"), []), rows.get((name, "2x1"), [])
    if not a or not b or not o: continue
    io, ia, ib = (st.median(x[0] for x in v) for v in (o, a, b))
    ratios = [y[0] / x[0] for x, y in zip(a, b)]
    print("| %s | %.4g | %.4g | %.4g | %.2f (%s) | %.2f | %.1f%% | %.1f%% |" % (name, io, ia, ib, st.median(ratios),
          ", ".join("%.2f" % r for r in ratios), ib / io, 100 * st.median(x[1] for x in b), 100 * st.median(x[2] for x in b)))
PY
