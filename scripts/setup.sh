#!/usr/bin/env bash
# Installs the Debian packages tapegrad needs to build, test and run its examples.
# Usage: scripts/setup.sh [--torch] [--fuzz]   (--torch also installs python3-torch, used only
# by the fixture generators and the PyTorch side of the benchmarks, and stress-ng for the loaded
# row of bench/perf_table.sh; --fuzz clang, libFuzzer and
# clang's OpenMP runtime, for scripts/fuzz.sh).
set -euo pipefail

pkgs=(build-essential cmake pkg-config
      libopenblas-dev libopenblas-openmp-dev libcriterion-dev libcjson-dev libpng-dev libtiff-dev
      libstb-dev zlib1g-dev
      libplplot-dev plplot-driver-cairo
      dataset-fashion-mnist
      libopenmpi-dev openmpi-bin
      libdnnl-dev)   # oneDNN: optional conv2d backend (CMake TG_ONEDNN=AUTO finds it)
for arg in "$@"; do
  case "$arg" in
    --torch) pkgs+=(python3-torch python3-numpy python3-pil stress-ng) ;;
    --fuzz) pkgs+=(clang libclang-rt-dev libomp-dev) ;;
    *) echo "setup: unknown option $arg (use --torch, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
