#!/usr/bin/python3
"""bench_unet_step's work in PyTorch 1.13 (2 threads): the reference UNet (bilinear, base 16), one
training step (train-mode forward, CE weight [1, 2] ignore_index 255, backward, SGD momentum 0.9
wd 1e-4, zero_grad) and one eval forward of a 584x565 image; then bench_unet_step; both tables.
Usage: /usr/bin/python3 bench/unet_step_torch.py [build/bin/bench_unet_step] [reps] [batch] [crop] [rounds]
       /usr/bin/python3 bench/unet_step_torch.py --worker reps batch crop base [--no-eval]
         (PyTorch only, printing bench_unet_step's lines: train_step, eval_584x565, cold_step, peak_mb;
         bench/perf_table.py runs it)"""
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


# the reference UNet, defined once for the fixtures, the checks and this benchmark
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from gen_unet_fixtures import UNet  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_times(reps, batch, crop, base=16, evaluate=True, out=None):
    torch.manual_seed(0)
    m = UNet(3, 2, base)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, crop, crop)
    i = torch.arange(batch * crop * crop)
    y = torch.where(i % 11 == 0, torch.tensor(255), (i % 7 == 0).long()).reshape(batch, crop, crop)
    w = torch.tensor([1.0, 2.0])
    img = torch.randn(1, 3, 584, 565)
    steps, evals = [], []
    rss0 = rss_step = peak_rss_mb()
    for r in range(reps + 2):
        t0 = time.perf_counter()
        m.train()
        loss = F.cross_entropy(m(x), y, weight=w, ignore_index=255)
        loss.backward()
        opt.step()
        opt.zero_grad()
        t1 = time.perf_counter()
        if r == 0:
            rss_step = peak_rss_mb()
        if evaluate:
            m.eval()
            with torch.no_grad():
                m(img)
        t2 = time.perf_counter()
        if r == 0:
            print("# torch cold (first) step %.0f ms, first eval %.0f ms" % ((t1 - t0) * 1e3, (t2 - t1) * 1e3))
            if out is not None:
                out["cold_step"] = ((t1 - t0) * 1e3, (t1 - t0) * 1e3)
        if r >= 2:
            steps.append(t1 - t0)
            evals.append(t2 - t1)
    res = {"train_step": (min(steps) * 1e3, statistics.median(steps) * 1e3)}
    if evaluate:
        res["eval_584x565"] = (min(evals) * 1e3, statistics.median(evals) * 1e3)
    if out is not None:
        out.update(res)
        out["peak_mb"] = (peak_rss_mb(), rss_step - rss0)
    return res


def worker(args):
    reps, batch, crop, base = (int(a) for a in args[:4])
    out = {}
    torch_times(reps, batch, crop, base, "--no-eval" not in args, out)
    for k, v in out.items():
        print("%s %.1f %.1f" % (k, v[0], v[1]))
    print("# torch %s, threads %d, isa %s" % (torch.__version__, torch.get_num_threads(),
                                             torch.backends.cpu.get_cpu_capability()
                                             if hasattr(torch.backends, "cpu") else "?"))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/bin/bench_unet_step"
    reps, batch, crop, rounds = (int(a) for a in (sys.argv[2:6] + ["5", "4", "480", "2"][len(sys.argv[2:6]):]))
    # alternate whole runs (torch, tapegrad, torch, tapegrad, ...) so load from other processes hits both;
    # best = min over rounds, median = median of the rounds' medians
    pts, tgs, out = [], [], ""
    for _ in range(rounds):
        pts.append(torch_times(reps, batch, crop))
        out = subprocess.run([binary, str(reps), str(batch), str(crop)], capture_output=True, text=True,
                             check=True).stdout
        tg = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in pts[-1]:
                tg[parts[0]] = (float(parts[1]), float(parts[2]))
        tgs.append(tg)
    print("torch %s (mkldnn %s), batch %d, crop %d, base 16, %d reps x %d alternating rounds" % (
          torch.__version__, torch.backends.mkldnn.is_available(), batch, crop, reps, rounds))
    print("%-16s %14s %14s %8s" % ("best (median) ms", "tapegrad", "pytorch", "tg/pt"))
    for k in pts[0]:
        a = (min(t[k][0] for t in tgs), statistics.median(t[k][1] for t in tgs))
        b = (min(t[k][0] for t in pts), statistics.median(t[k][1] for t in pts))
        print("%-16s %7.0f (%4.0f) %7.0f (%4.0f) %8.2f" % (k, a[0], a[1], b[0], b[1], a[0] / b[0]))
    print(out)


if __name__ == "__main__":
    main()
