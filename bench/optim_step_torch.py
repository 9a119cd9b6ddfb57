#!/usr/bin/python3
"""PyTorch side of bench/optim_step.c: ms per optimizer step on one N-float parameter."""
import sys
import time

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8_000_000
print(f"threads {torch.get_num_threads()}, N {n} floats")
p = torch.rand(n, requires_grad=True)
p.grad = torch.rand(n) - 0.5
for name, opt in [("sgd(momentum, nesterov, wd)", torch.optim.SGD([p], lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)),
                  ("adam", torch.optim.Adam([p])),
                  ("adamw(amsgrad)", torch.optim.AdamW([p], amsgrad=True))]:
    opt.step()
    t0 = time.perf_counter()
    for _ in range(10):
        opt.step()
    print(f"{name:28s} {(time.perf_counter() - t0) / 10 * 1e3:8.2f} ms/step")
