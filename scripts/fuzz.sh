#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_NAME.c) with clang (ASan + UBSan) in build-fuzz/ and
# fuzzes each for SECONDS (default 60), one after the other, starting from the valid inputs each
# target writes (TG_FUZZ_SEED_DIR): safetensors checkpoints, IDX files (plain and gzip), images
# (TIFF, PNG, GIF, JPEG, BMP), losslab's JSON cases and --jsonl lines, unet_drive's log.jsonl as
# --resume and --report-only read it (unet_log). Corpora persist in
# build-fuzz/corpus_NAME; crashes land in build-fuzz/ (crash-*, leak-*, oom-*, timeout-*).
# Usage: scripts/fuzz.sh [SECONDS] [NAME ...]   (NAME: safetensors, idx, image, losslab_json, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
case "$secs" in ''|*[!0-9]*) echo "fuzz: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;; esac
bash scripts/setup.sh --fuzz
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do n="${f##*/fuzz_}"; names+=("${n%.c}"); done
fi
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release -DTG_FUZZ=ON >/dev/null
cmake --build build-fuzz --target "${names[@]/#/fuzz_}" -j "$(nproc)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
cd build-fuzz
status=0
for name in "${names[@]}"; do
  corpus="corpus_$name"
  mkdir -p "$corpus"
  # -runs=0: only writes the seeds (TG_FUZZ_SEED_DIR) and reads the corpus
  TG_FUZZ_SEED_DIR="$corpus" "bin/fuzz_$name" -runs=0 "$corpus" >/dev/null 2>&1 || true
  echo "fuzz: $name for ${secs} s"
  if ! "bin/fuzz_$name" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 "$corpus" \
      > "fuzz_$name.log" 2>&1; then
    status=1
    echo "fuzz: $name FOUND A PROBLEM (build-fuzz/fuzz_$name.log):" >&2
    grep -E "^(==|SUMMARY|.*runtime error)" "fuzz_$name.log" | head -20 >&2 || true
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "fuzz_$name.log" | sed "s/^/  /"
  echo "  UBSan reports: $(grep -c "runtime error" "fuzz_$name.log" || true)"
done
exit $status
