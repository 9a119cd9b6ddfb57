#!/usr/bin/python3
"""PyTorch side of bench/loss_extra.c: the same sizes, ms per forward + backward."""
import time

import torch
import torch.nn.functional as F

torch.manual_seed(0)
print("threads", torch.get_num_threads())


def bench(name, fn, reps):
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    print(f"{name} fwd+bwd: {(time.perf_counter() - t0) / reps * 1e3:.3f} ms")


T, N, C, S = 100, 16, 30, 30
lp = torch.randn(T, N, C).log_softmax(-1).requires_grad_()
tg = torch.tensor([[1 + (i * 7) % (C - 1) for i in range(b * S, (b + 1) * S)] for b in range(N)])
il = torch.tensor([T - b for b in range(N)])
tl = torch.tensor([S - b for b in range(N)])
bench(f"ctc_loss T={T} N={N} C={C} S={S}", lambda: F.ctc_loss(lp, tg, il, tl).backward(), 50)
B, D = 1024, 128
a, p, n = (torch.randn(B, D).requires_grad_() for _ in range(3))
bench(f"triplet_margin_loss B={B} D={D}", lambda: F.triplet_margin_loss(a, p, n, margin=3.0).backward(), 200)
x, v = torch.randn(B, D).requires_grad_(), torch.rand(B, D).requires_grad_()
y = torch.randn(B, D)
bench(f"gaussian_nll_loss B={B} D={D}", lambda: F.gaussian_nll_loss(x, y, v).backward(), 200)
