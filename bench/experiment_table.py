#!/usr/bin/env python3
"""The README's side-by-side table of the experiment: tapegrad and PyTorch over several seeds.

    bench/experiment_table.py TG_RUN PT_RUN [--seeds 0,1,2] [--time-ratio R]

TG_RUN and PT_RUN are `--seeds` output directories of build/bin/unet_drive and
bench/unet_drive_torch.py (OUT/seed_S/<head>/log.jsonl, the same format). For each head and
framework it prints the final epoch's test Dice, mean IoU and global accuracy as mean ± sample
standard deviation over the seeds, the training minutes (sum of the logged train_seconds, mean
over the seeds) and the inference time per test image (median over the logged evaluations), then
tapegrad − PyTorch with a 95% Welch t interval and a one-line reading. Only the standard library:
the figures can be rebuilt from docs/runs/ without PyTorch.
"""
import argparse
import json
import math
import os
import statistics
import sys

METRICS = [("dice", "Dice"), ("miou", "mean IoU"), ("global_acc", "global accuracy")]
HEADS = ["sigmoid", "softmax"]

# Two-sided 95% quantiles of Student's t, by degrees of freedom (1..30); beyond: the normal's.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042]


def t975(df):
    """The 97.5% quantile of t with df degrees of freedom (df may be fractional: Welch)."""
    if df < 1:
        return float("nan")
    if df >= len(T975):
        return 1.960
    lo = int(math.floor(df))
    frac = df - lo
    a = T975[lo - 1]
    b = T975[lo] if lo < len(T975) else 1.960
    return a + (b - a) * frac  # linear between integer df: within 0.01 of the exact value


def fail(msg):
    print(f"experiment_table: {msg}", file=sys.stderr)
    sys.exit(1)


def read_run(path):
    """The log.jsonl records of one run: (last epoch record, evaluation records)."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file (is the run finished? give the --seeds output directory)")
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{path}:{n}: not JSON ({e})")
            if "epoch" in r:
                recs.append(r)
    if not recs:
        fail(f"{path}: no epoch records")
    # A resumed run repeats no epoch, but be safe: the last record of each epoch counts.
    by_epoch = {}
    for r in recs:
        by_epoch[r["epoch"]] = r
    epochs = [by_epoch[e] for e in sorted(by_epoch)]
    last = epochs[-1]
    if last["epoch"] != last.get("epochs", last["epoch"]):
        fail(f"{path}: stops at epoch {last['epoch']} of {last.get('epochs')} (unfinished run)")
    if "dice" not in last:
        fail(f"{path}: the last epoch has no evaluation (use --eval-every dividing --epochs)")
    evals = [r for r in epochs if "infer_ms_per_image" in r]
    return {
        "final": {k: last[k] for k, _ in METRICS},
        "train_min": sum(r.get("train_seconds", 0.0) for r in epochs) / 60.0,
        "infer_ms": statistics.median(r["infer_ms_per_image"] for r in evals),
        "config": (last.get("base_c"), last.get("crop"), last.get("batch"), last.get("epochs")),
    }


def mean_sd(xs):
    m = statistics.fmean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else float("nan")
    return m, s


def welch(a, b):
    """mean(a) - mean(b) and its 95% Welch t interval half-width."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0 or math.isnan(se):
        return ma - mb, float("nan")
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return ma - mb, t975(df) * se


def fmt_ms(m, s, digits=4):
    return f"{m:.{digits}f} ± {s:.{digits}f}" if not math.isnan(s) else f"{m:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tg_run")
    ap.add_argument("pt_run")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        fail(f"--seeds must be integers separated by commas, not '{args.seeds}'")

    runs = {}
    for fw, root in (("tapegrad", args.tg_run), ("PyTorch", args.pt_run)):
        for head in HEADS:
            runs[fw, head] = [read_run(os.path.join(root, f"seed_{s}", head, "log.jsonl")) for s in seeds]
    configs = {r["config"] for v in runs.values() for r in v}
    if len(configs) != 1:
        fail(f"the runs differ in (base_c, crop, batch, epochs): {sorted(configs)}")
    base_c, crop, batch, epochs = configs.pop()
    print(f"UNet base width {base_c}, crop {crop}, batch {batch}, {epochs} epochs; seeds {args.seeds}; "
          f"final-epoch test metrics, mean ± sample std over the seeds.\n")
    print("| head | framework | Dice | mean IoU | global accuracy | train min | inference ms/image |")
    print("|---|---|---|---|---|---|---|")
    for head in HEADS:
        for fw in ("tapegrad", "PyTorch"):
            rs = runs[fw, head]
            cells = [fmt_ms(*mean_sd([r["final"][k] for r in rs])) for k, _ in METRICS]
            tmin = statistics.fmean(r["train_min"] for r in rs)
            inf = statistics.fmean(r["infer_ms"] for r in rs)
            print(f"| {head} | {fw} | " + " | ".join(cells) + f" | {tmin:.1f} | {inf:.0f} |")
    print()
    print("tapegrad − PyTorch per head (Welch 95% interval over the seeds); Dice reading: at or above, "
          "a tie (within one standard deviation of PyTorch's seeds), or below.\n")
    print("| head | Dice | mean IoU | global accuracy | Dice reading | train time tg/pt |")
    print("|---|---|---|---|---|---|")
    for head in HEADS:
        cells = []
        for k, _ in METRICS:
            d, h = welch([r["final"][k] for r in runs["tapegrad", head]],
                         [r["final"][k] for r in runs["PyTorch", head]])
            cells.append(f"{d:+.4f} [{d - h:+.4f}, {d + h:+.4f}]" if not math.isnan(h) else f"{d:+.4f}")
        tg = [r["final"]["dice"] for r in runs["tapegrad", head]]
        pt = [r["final"]["dice"] for r in runs["PyTorch", head]]
        d = statistics.fmean(tg) - statistics.fmean(pt)
        sd_pt = mean_sd(pt)[1]
        if d >= 0:
            reading = "tapegrad at or above PyTorch"
        elif not math.isnan(sd_pt) and -d <= sd_pt:
            reading = f"tie: {-d:.4f} below, within PyTorch's std {sd_pt:.4f}"
        else:
            reading = f"tapegrad below by {-d:.4f} (PyTorch's std {sd_pt:.4f})"
        ratio = (statistics.fmean(r["train_min"] for r in runs["tapegrad", head]) /
                 statistics.fmean(r["train_min"] for r in runs["PyTorch", head]))
        print(f"| {head} | " + " | ".join(cells) + f" | {reading} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
