#!/usr/bin/python3
"""PyTorch side of bench/loss.c: cross_entropy (weight [0.3,2.5], ignore_index 255, ~10% ignored)
and binary_cross_entropy_with_logits, forward + backward, 'mean', torch.set_num_threads(2).
Usage: /usr/bin/python3 bench/loss_torch.py [reps=15]"""
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 15
print(f"torch {torch.__version__} loss bench: {torch.get_num_threads()} threads, {reps} reps")


def run(name, numel, step):
    ts = []
    for k in range(reps + 2):
        t0 = time.perf_counter()
        step()
        if k >= 2:
            ts.append(time.perf_counter() - t0)
    ts.sort()
    med = ts[len(ts) // 2]
    print(f"pytorch  {name:<32} median {med * 1e3:8.3f} ms  best {ts[0] * 1e3:8.3f} ms  {numel / med / 1e6:8.1f} Melem/s")


def bench_ce(N, H, W):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 2, H, W, generator=g).requires_grad_(True)
    t = torch.randint(0, 2, (N, H, W), generator=g)
    t[torch.rand(N, H, W, generator=g) < 0.1] = 255
    w = torch.tensor([0.3, 2.5])

    def step():
        x.grad = None
        F.cross_entropy(x, t, weight=w, ignore_index=255).backward()
    run(f"cross_entropy ({N},2,{H},{W})", x.numel(), step)


def bench_bce(N, H, W):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N, 1, H, W, generator=g).requires_grad_(True)
    y = (torch.rand(N, 1, H, W, generator=g) < 0.2).float()

    def step():
        x.grad = None
        F.binary_cross_entropy_with_logits(x, y).backward()
    run(f"bce_with_logits ({N},1,{H},{W})", x.numel(), step)


bench_ce(4, 256, 256)
bench_ce(16, 480, 480)
bench_bce(4, 256, 256)
bench_bce(16, 480, 480)
