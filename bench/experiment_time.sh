#!/bin/bash
# Training and inference time of the experiment, tapegrad beside PyTorch, on a quiet machine:
#   bench/experiment_time.sh [build] [rounds] [epochs] [threads] [preset]
# Runs `unet_drive` and bench/unet_drive_torch.py with the same preset (default cpu), one head
# (softmax), a few epochs and one evaluation at the end, alternating the two frameworks (order
# flipped every round), and prints per round and as the best over the rounds: seconds per
# training epoch (the first epoch left out: cold caches and allocator growth), inference ms per
# full-size test image, and the tapegrad/PyTorch ratios. The full experiment's training minutes are
# epochs x seconds per epoch, so the ratio carries over. Needs PyTorch (/usr/bin/python3) and DRIVE.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
rounds=${2:-3}
epochs=${3:-4}
threads=${4:-1}
preset=${5:-cpu}
data=${TG_DRIVE:-$here/../shared/data/DRIVE}
tg=$build/bin/unet_drive
[ -x "$tg" ] || { echo "experiment_time: $tg not built" >&2; exit 1; }
[ -d "$data" ] || { echo "experiment_time: no DRIVE at $data (set TG_DRIVE)" >&2; exit 1; }
[ "$epochs" -ge 2 ] || { echo "experiment_time: epochs must be >= 2 (the first is left out)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# seconds per epoch after the first, and inference ms per image, from a log.jsonl
summarise() {
    python3 - "$1" <<'EOF'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if '"epoch"' in l]
t = [r["train_seconds"] for r in rs[1:]]
ev = [r["infer_ms_per_image"] for r in rs if "infer_ms_per_image" in r]
print(f"{sum(t) / len(t):.3f} {ev[-1]:.1f}")
EOF
}

args=(--preset "$preset" --seeds 0 --head softmax --epochs "$epochs" --eval-every "$epochs" --threads "$threads" --data "$data")
run_tg() { rm -rf "$tmp/tg"; "$tg" "${args[@]}" --overlays 0 --out "$tmp/tg" > "$tmp/tg.out" 2>&1 || { cat "$tmp/tg.out" >&2; exit 1; }; summarise "$tmp/tg/seed_0/softmax/log.jsonl"; }
run_pt() { rm -rf "$tmp/pt"; /usr/bin/python3 "$here/bench/unet_drive_torch.py" "${args[@]}" --out "$tmp/pt" > "$tmp/pt.out" 2>&1 || { cat "$tmp/pt.out" >&2; exit 1; }; summarise "$tmp/pt/seed_0/softmax/log.jsonl"; }

echo "# preset $preset, softmax head, $epochs epochs per run (first left out), $threads thread(s), $rounds rounds, $(nproc) CPUs, $(uptime | sed 's/.*load/load/')"
echo "# round  tg s/epoch  pt s/epoch  ratio   tg ms/image  pt ms/image  ratio"
best_tg=1e9 best_pt=1e9 best_tgi=1e9 best_pti=1e9
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then a=$(run_tg); b=$(run_pt); else b=$(run_pt); a=$(run_tg); fi
    read -r ts ti <<< "$a"; read -r ps pi <<< "$b"
    awk -v r="$r" -v ts="$ts" -v ps="$ps" -v ti="$ti" -v pi="$pi" \
        'BEGIN { printf "%7d  %10.3f  %10.3f  %5.2f   %11.1f  %11.1f  %5.2f\n", r, ts, ps, ts / ps, ti, pi, ti / pi }'
    best_tg=$(awk -v a="$best_tg" -v b="$ts" 'BEGIN { print (b < a) ? b : a }')
    best_pt=$(awk -v a="$best_pt" -v b="$ps" 'BEGIN { print (b < a) ? b : a }')
    best_tgi=$(awk -v a="$best_tgi" -v b="$ti" 'BEGIN { print (b < a) ? b : a }')
    best_pti=$(awk -v a="$best_pti" -v b="$pi" 'BEGIN { print (b < a) ? b : a }')
done
awk -v ts="$best_tg" -v ps="$best_pt" -v ti="$best_tgi" -v pi="$best_pti" \
    'BEGIN { printf "   best  %10.3f  %10.3f  %5.2f   %11.1f  %11.1f  %5.2f\n", ts, ps, ts / ps, ti, pi, ti / pi }'
