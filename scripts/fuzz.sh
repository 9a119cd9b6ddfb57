#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and fuzzes the safetensors
# loader for SECONDS (default 60), starting from a valid checkpoint. Crashes land in build-fuzz/.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
bash scripts/setup.sh --fuzz
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DTG_FUZZ=ON >/dev/null
cmake --build build-fuzz --target fuzz_safetensors -j "$(nproc)"
corpus=build-fuzz/corpus_safetensors
mkdir -p "$corpus"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
# -runs=0: only writes the seed checkpoint (TG_FUZZ_SEED_DIR) and reads the corpus
TG_FUZZ_SEED_DIR="$corpus" build-fuzz/bin/fuzz_safetensors -runs=0 "$corpus"
cd build-fuzz && bin/fuzz_safetensors -max_total_time="$secs" -max_len=8192 corpus_safetensors
