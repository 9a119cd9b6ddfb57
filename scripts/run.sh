#!/usr/bin/env bash
# Sets up, builds and runs the main job: the article's experiment. The reference UNet is
# trained on DRIVE twice, 1 output channel + sigmoid + BCE and 2 channels + softmax + CE,
# with the same seed, batches and initial weights; then a side-by-side report
# (out/unet_drive/report.md, curves.png, overlay_NN.png).
#   scripts/run.sh                 the experiment: --preset cpu (base width 16, crop 256, batch 4,
#                                  150 epochs per head, evaluated every 5), about 15 min on 2 idle cores
#   scripts/run.sh --quick         a 2-minute version (base width 8, crop 256, 25 epochs: Dice ~0.65)
#   scripts/run.sh --tour          losslab on the article's example and one MNIST epoch
#   scripts/run.sh -- ARGS...      any unet_drive options (see build/bin/unet_drive --help)
# DRIVE is read from ../shared/data/DRIVE or $TG_DRIVE_DIR (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
case "${1:-}" in
  --quick)
    build/bin/unet_drive --base-c 8 --crop 256 --epochs 25 --eval-every 5 --out out/unet_drive_quick ;;
  --tour)
    echo; echo "== losslab: cross_entropy with class weights [1, 9] (the article's 1.1617)"
    build/bin/losslab cross_entropy --input '[[[1,2],[3,5]],[[4,7],[4,6]]]' --target '[[0,0],[1,1]]' --weight '[1,9]'
    echo; echo "== mnist: the small CNN, one epoch on Fashion-MNIST"
    build/bin/mnist --model cnn --epochs "${EPOCHS:-1}" --out out/mnist
    echo; echo "== mnist --predict: what the model sees in test image 0"
    build/bin/mnist --predict out/mnist/model.safetensors --index 0 ;;
  --)
    shift; build/bin/unet_drive "$@" ;;
  "")
    # Measured on 2 idle Zen 4 cores (an epoch of 5 steps at crop 256 about 1.4 s, evaluating the
    # 20 test images about 2.1 s): 150 x 1.4 s + 30 x 2.1 s per head, about 4.5 minutes.
    echo "scripts/run.sh: --preset cpu, both heads, 150 epochs each: expect about 10 minutes on 2 idle cores" \
         "(longer on a busy machine; Ctrl-C stops cleanly and prints the command that resumes)"
    build/bin/unet_drive --preset cpu --eval-every 5 --out out/unet_drive ;;
  *)
    echo "scripts/run.sh: unknown option '$1' (use --quick, --tour, or -- followed by unet_drive options)" >&2
    exit 2 ;;
esac
