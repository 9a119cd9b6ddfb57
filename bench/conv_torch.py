#!/usr/bin/python3
"""The same layers as bench/conv.c in PyTorch (2 threads), then bench_conv, side by side.
Usage: /usr/bin/python3 bench/conv_torch.py [build/bin/bench_conv] [reps] [rounds] [isa] [path]
The two alternate for `rounds` rounds (default 3) and each keeps its best time per layer, so a
busy spell on the (shared) machine does not land on one side only.
isa avx2 emulates an AVX2-only CPU on an AVX-512 one, on both sides: tapegrad's conv kernels and
oneDNN capped at AVX2 with OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE, unless set), PyTorch
with ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2. path (auto, direct, im2col, onednn)
forces one of tapegrad's conv paths (bench/conv.c)."""
import os
import subprocess
import sys
import time

ISA = sys.argv[4] if len(sys.argv) > 4 else "best"
PATH = sys.argv[5] if len(sys.argv) > 5 else "auto"
if ISA == "avx2":  # before torch loads: oneDNN and ATen read these once
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")

import torch  # noqa: E402
import torch.nn.functional as F

torch.set_num_threads(2)
B = 4
LAYERS = [("conv3x3_3to16_256", 3, 16, 3, 256), ("conv3x3_16to16_256", 16, 16, 3, 256),
          ("conv3x3_32to32_128", 32, 32, 3, 128), ("conv3x3_64to64_64", 64, 64, 3, 64),
          ("conv3x3_128to128_32", 128, 128, 3, 32), ("conv3x3_256to64_32", 256, 64, 3, 32),
          ("conv1x1_16to2_256", 16, 2, 1, 256)]


def cpu_capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            return line.split(":")[-1].strip()
    return "?"


def best_of(fn, reps):
    fn()
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def torch_times(reps):
    out = {}
    for (name, cin, cout, k, hw) in LAYERS:
        x = torch.randn(B, cin, hw, hw, requires_grad=True)
        w = torch.randn(cout, cin, k, k, requires_grad=True)
        b = torch.randn(cout, requires_grad=True)
        out[name] = best_of(lambda: F.conv2d(x, w, b, padding=k // 2).backward(torch.ones(B, cout, hw, hw)), reps)
    x = torch.randn(B, 16, 256, 256, requires_grad=True)
    out["maxpool2x2_16_256"] = best_of(lambda: F.max_pool2d(x, 2).backward(torch.ones(B, 16, 128, 128)), reps)
    x = torch.randn(B, 16, 128, 128, requires_grad=True)
    out["upsample_bilinear_x2_16_128"] = best_of(
        lambda: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True).backward(
            torch.ones(B, 16, 256, 256)), reps)
    return out


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "build/bin/bench_conv"
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    tt, tg, header = {}, {}, []
    for _ in range(rounds):
        for name, ms in torch_times(reps).items():
            tt[name] = min(ms, tt.get(name, 1e9))
        out = subprocess.run([exe, str(reps), ISA, PATH], capture_output=True, text=True, check=True).stdout.splitlines()
        header = [line for line in out if line.startswith("#")]
        for line in out:
            if not line.startswith("#"):
                name, ms, gf, sg = line.split()
                if name not in tg or float(ms) < float(tg[name][0]):
                    tg[name] = (ms, gf, sg)
    print("OPENBLAS_CORETYPE=%s  ONEDNN_MAX_CPU_ISA=%s  torch %s (mkldnn %s, cpu capability %s)" % (
        os.environ.get("OPENBLAS_CORETYPE", "(unset)"), os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)"),
        torch.__version__, torch.backends.mkldnn.is_available(), cpu_capability()))
    print("%-30s %10s %10s %7s %9s %9s" % ("layer (fwd+bwd, batch 4)", "tapegrad", "pytorch", "tg/pt", "tg GF/s",
                                            "sgemm GF/s"))
    for line in header:
        print(line)
    print("# best of %d rounds x %d reps each, alternating" % (rounds, reps))
    for name, (ms, gf, sg) in tg.items():
        pt = tt[name]
        print("%-30s %8.2fms %8.2fms %7.2f %9s %9s" % (name, float(ms), pt, float(ms) / pt, gf, sg))


if __name__ == "__main__":
    main()
