#!/usr/bin/env bash
# Side by side: tapegrad's examples/mnist and its PyTorch twin (bench/mnist_torch.py),
# same model, optimizer, batch and thread count, runs alternated REPS times (the
# machine is shared: alternating puts the same noise on both). Prints per-run
# images/s and final test accuracy, then medians.
#   bench/mnist_compare.sh [cnn|mlp] [EPOCHS] [REPS] [extra flags for both, e.g. --optimizer sgd --momentum 0.9]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-cnn}; epochs=${2:-3}; reps=${3:-3}; shift $(( $# < 3 ? $# : 3 )) || true
extra=("$@")
bin=build/bin/mnist
[ -x "$bin" ] || { echo "build first: cmake -S . -B build && cmake --build build -j" >&2; exit 1; }
tg=(); pt=(); tga=(); pta=()
for r in $(seq "$reps"); do
  out=$("$bin" --model "$model" --epochs "$epochs" --threads 2 --out "$(mktemp -d)" "${extra[@]}" 2>/dev/null)
  ips=$(echo "$out" | grep '^epoch' | sed -E 's/.* ([0-9]+) images\/s/\1/' | sort -n | tail -1)
  acc=$(echo "$out" | grep '^epoch' | tail -1 | sed -E 's/.*test accuracy ([0-9.]+).*/\1/')
  tg+=("$ips"); tga+=("$acc")
  out=$(/usr/bin/python3 bench/mnist_torch.py --model "$model" --epochs "$epochs" --threads 2 "${extra[@]}")
  ips2=$(echo "$out" | grep '^epoch' | sed -E 's/.* ([0-9]+) images\/s/\1/' | sort -n | tail -1)
  acc2=$(echo "$out" | grep '^epoch' | tail -1 | sed -E 's/.*test accuracy ([0-9.]+).*/\1/')
  pt+=("$ips2"); pta+=("$acc2")
  echo "run $r: tapegrad $ips img/s (best epoch), acc $acc | pytorch $ips2 img/s, acc $acc2"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mt=$(median "${tg[@]}"); mp=$(median "${pt[@]}")
echo "median: tapegrad $mt img/s, pytorch $mp img/s, ratio $(awk -v a="$mt" -v b="$mp" 'BEGIN{printf "%.2f", a/b}')x;" \
     "accuracy tapegrad $(median "${tga[@]}") pytorch $(median "${pta[@]}")"
