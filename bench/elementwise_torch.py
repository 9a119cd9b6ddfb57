#!/usr/bin/python3
"""PyTorch figures for bench/elementwise.c: the same ops, sizes, byte counts
and best-of-repetitions timing, so the two tables can be read side by side.
Run right after build/bin/bench_elementwise on the same machine state.

Usage: /usr/bin/python3 bench/elementwise_torch.py [max_mb]   (default 256)
"""
import sys
import time

import torch


def best(f, reps):
    t = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - t0)
    return t


def main():
    max_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__} elementwise throughput, GB/s (best of reps; bytes = read + written)")
    print(f"{'op':<18} {'MB/input':>8} | {'1 thread':>9} {'memcpy':>9} | {'2 threads':>9} {'memcpy':>9}")
    with torch.no_grad():
        mb = 1
        while mb <= max_mb:
            n = mb * (1 << 20) // 4
            a, b = torch.randn(n), torch.randn(n)
            N = n // (2 * 230400) if n >= 2 * 230400 else 1
            P = n // (2 * N)
            x4, bias = torch.randn(N, 2, P), torch.randn(2, 1)
            dst = torch.empty(n)
            ops = {
                "memcpy": (lambda: dst.copy_(a), 2 * n),
                "add": (lambda: a + b, 3 * n),
                "mul": (lambda: a * b, 3 * n),
                "add (C,1,1) bias": (lambda: x4 + bias, 2 * x4.numel()),
                "relu": (lambda: torch.relu(a), 2 * n),
                "sigmoid": (lambda: torch.sigmoid(a), 2 * n),
                "softmax dim 1": (lambda: torch.softmax(x4, 1), 2 * x4.numel()),
                "sum_all": (lambda: a.sum(), n),
            }
            reps = 4 if mb >= 64 else (8 if mb >= 16 else 20)
            gbs = {}
            for th in (1, 2):
                torch.set_num_threads(th)
                for name, (f, elems) in ops.items():
                    gbs[name, th] = elems * 4 / best(f, reps) / 1e9
            for name in ops:
                if name != "memcpy":
                    print(f"{name:<18} {mb:>8} | {gbs[name, 1]:>9.2f} {gbs['memcpy', 1]:>9.2f} | "
                          f"{gbs[name, 2]:>9.2f} {gbs['memcpy', 2]:>9.2f}")
            print()
            mb *= 4
        x = torch.randn(16, 2, 480, 480)
        for th in (1, 2):
            torch.set_num_threads(th)
            t = best(lambda: torch.softmax(x, 1), 8)
            print(f"softmax dim 1 of (16, 2, 480, 480), {th} thread(s): {t * 1e3:.2f} ms, "
                  f"{2 * x.numel() * 4 / t / 1e9:.2f} GB/s")


if __name__ == "__main__":
    main()
