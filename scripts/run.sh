#!/usr/bin/env bash
# Sets up, builds and runs the main job. Until the UNet experiment on DRIVE lands,
# the main job is a short tour of what works:
#   1. losslab on the article's cross-entropy example (values and gradients),
#   2. one epoch of the small CNN on Fashion-MNIST (progress bar, eval, checkpoint),
#   3. the checkpoint's prediction for one test image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
echo; echo "== losslab: cross_entropy with class weights [1, 9] (the article's 1.1617)"
build/bin/losslab cross_entropy --input '[[[1,2],[3,5]],[[4,7],[4,6]]]' --target '[[0,0],[1,1]]' --weight '[1,9]'
echo; echo "== mnist: the small CNN, one epoch on Fashion-MNIST"
build/bin/mnist --model cnn --epochs "${EPOCHS:-1}" --out out/mnist
echo; echo "== mnist --predict: what the model sees in test image 0"
build/bin/mnist --predict out/mnist/model.safetensors --index 0
