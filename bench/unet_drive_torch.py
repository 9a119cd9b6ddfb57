#!/usr/bin/python3
"""examples/unet_drive in PyTorch 1.13: the same experiment, for a side-by-side comparison.

The reference UNet (tests/gen_unet_fixtures.py, bilinear), both heads (1 channel + sigmoid + BCE with
per-pixel class weights, 2 channels + softmax + CE with class weights, ignore 255), the reference
pipeline (random resize of the shorter side in [0.5, 1.2] x 565, flips 0.5, pad and random crop,
DRIVE's mean/std), SGD (momentum 0.9, weight decay on every parameter), the warmup + poly schedule
stepped per batch, evaluation on the 20 full test images with the same metrics (Dice per image
averaged, mean IoU and global accuracy from the confusion matrix, field of view only). For each seed
both heads start from the same weights in every layer but the last and see the same batches.

Reads DRIVE itself (PIL + numpy) and writes OUT/seed_S/<head>/log.jsonl in unet_drive's format, so
`build/bin/unet_drive --report-only --overlays 0 --out OUT` gives the report over seeds (mean ± std,
paired 95% interval) from the same code as tapegrad's runs. Prints unet_drive's table per run.

  /usr/bin/python3 bench/unet_drive_torch.py [--preset cpu|paper] [--seeds 0,1,2] [--head both|sigmoid|softmax]
      [--epochs N] [--crop N] [--base-c N] [--batch-size N] [--lr LR] [--threads T] [--workers W]
      [--limit-train N] [--limit-test N] [--eval-every K] [--data DIR] [--out DIR]
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from gen_unet_fixtures import UNet  # noqa: E402  (the reference model, defined once)

DRIVE_MEAN = (0.709, 0.381, 0.224)
DRIVE_STD = (0.127, 0.079, 0.043)
HEADS = ("sigmoid", "softmax")
# the same presets as unet_drive --preset (issue 14): cpu = what 2 cores train in reasonable time,
# paper = the reference code's train.py (base 32, crop 480) with the article's 150 epochs
PRESETS = {"cpu": dict(base_c=16, crop=256, batch_size=4, epochs=150),
           "paper": dict(base_c=32, crop=480, batch_size=4, epochs=150)}


def load_drive(root, split):
    """[(rgb uint8 HxWx3, target uint8 HxW: 0, 1, 255 outside the field of view)], as unet_drive."""
    name, first = ("training", 21) if split == "training" else ("test", 1)
    d = os.path.join(root, name)
    out = []
    for k in range(first, first + 20):
        img = np.asarray(Image.open(os.path.join(d, "images", "%02d_%s.tif" % (k, name))).convert("RGB"))
        manual = np.asarray(Image.open(os.path.join(d, "1st_manual", "%02d_manual1.gif" % k)).convert("L"))
        mask = np.asarray(Image.open(os.path.join(d, "mask", "%02d_%s_mask.gif" % (k, name))).convert("L"))
        # the reference: clip(manual / 255 + (255 - mask), 0, 255), as integers
        t = np.clip((manual == 255).astype(np.int32) + (255 - mask.astype(np.int32)), 0, 255).astype(np.uint8)
        out.append((img, t))
    return out


def normalise(rgb):
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255)
    return (x - torch.tensor(DRIVE_MEAN).view(3, 1, 1)) / torch.tensor(DRIVE_STD).view(3, 1, 1)


class TrainSet(torch.utils.data.Dataset):
    """The reference training transform; sample i of epoch e draws from a generator seeded by (seed, e, i),
    so the batches depend only on the seed (the same for both heads), not on workers."""

    def __init__(self, samples, base, crop, seed):
        self.samples, self.base, self.crop, self.seed, self.epoch = samples, base, crop, seed, 0

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        rgb, t = self.samples[i]
        img, tgt = Image.fromarray(rgb), Image.fromarray(t)
        size = int(rng.integers(int(0.5 * self.base), int(1.2 * self.base) + 1))
        w, h = img.size  # torchvision resize(int): shorter side = size, longer int(size * long / short)
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        img, tgt = img.resize((nw, nh), Image.BILINEAR), tgt.resize((nw, nh), Image.NEAREST)
        if rng.random() < 0.5:
            img, tgt = img.transpose(Image.FLIP_LEFT_RIGHT), tgt.transpose(Image.FLIP_LEFT_RIGHT)
        if rng.random() < 0.5:
            img, tgt = img.transpose(Image.FLIP_TOP_BOTTOM), tgt.transpose(Image.FLIP_TOP_BOTTOM)
        a, b = np.asarray(img), np.asarray(tgt)
        ph, pw = max(nh, self.crop), max(nw, self.crop)
        if (ph, pw) != (nh, nw):  # pad: image 0, target 255
            a = np.pad(a, ((0, ph - nh), (0, pw - nw), (0, 0)))
            b = np.pad(b, ((0, ph - nh), (0, pw - nw)), constant_values=255)
        y0 = int(rng.integers(0, ph - self.crop + 1))
        x0 = int(rng.integers(0, pw - self.crop + 1))
        a, b = a[y0:y0 + self.crop, x0:x0 + self.crop], b[y0:y0 + self.crop, x0:x0 + self.crop]
        return normalise(a), torch.from_numpy(b.astype(np.int64))


def head_loss(head, logits, y, cw):
    """The loss of unet_drive's head_loss: weighted CE with ignore 255, or its 1-channel BCE twin."""
    if head == "softmax":
        return F.cross_entropy(logits, y, weight=cw, ignore_index=255)
    counted = (y == 0) | (y == 1)
    w = torch.where(counted, cw[y.clamp(0, 1)], torch.zeros((), dtype=cw.dtype))
    t = (y == 1).float()
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], t, weight=w, reduction="sum")
    return bce / w.sum()


def lr_factor(k, warmup_steps, total_steps, warmup_factor=1e-3, power=0.9):
    """The reference's create_lr_scheduler (and tg_sched_warmup_poly) at scheduler step k."""
    if warmup_steps > 0 and k <= warmup_steps:
        alpha = k / warmup_steps
        return warmup_factor * (1 - alpha) + alpha
    r = 1 - (k - warmup_steps) / (total_steps - warmup_steps)
    return r ** power if r > 0 else 0.0


@torch.no_grad()
def evaluate(m, head, test, cw):
    m.eval()
    conf = np.zeros((2, 2), np.int64)
    dice_sum, loss_sum, fwd, t_start = 0.0, 0.0, 0.0, time.perf_counter()
    for rgb, t in test:
        x, y = normalise(rgb).unsqueeze(0), torch.from_numpy(t.astype(np.int64)).unsqueeze(0)
        t0 = time.perf_counter()
        logits = m(x)
        fwd += time.perf_counter() - t0
        loss_sum += head_loss(head, logits, y, cw).item()
        pred = (logits[0, 0] > 0) if head == "sigmoid" else (logits[0, 1] > logits[0, 0])
        pred, tt = pred.numpy().astype(np.int64), y[0].numpy()
        keep = tt != 255
        p, g = pred[keep], tt[keep]
        conf += np.bincount(g * 2 + p, minlength=4).reshape(2, 2)
        inter, sets = int(((p == 1) & (g == 1)).sum()), int((p == 1).sum() + (g == 1).sum())
        if sets == 0:
            sets = 2 * inter
        dice_sum += (2 * inter + 1e-6) / (sets + 1e-6)
    m.train()
    diag, rows, cols = np.diag(conf), conf.sum(1), conf.sum(0)
    iou = diag / (rows + cols - diag)
    n = len(test)
    return {"test_loss": loss_sum / n, "dice": dice_sum / n, "miou": float(iou.mean()),
            "global_acc": float(diag.sum() / conf.sum()), "acc_background": float(diag[0] / rows[0]),
            "acc_vessel": float(diag[1] / rows[1]), "iou_background": float(iou[0]), "iou_vessel": float(iou[1]),
            "eval_seconds": time.perf_counter() - t_start, "infer_ms_per_image": 1e3 * fwd / n}


def train_head(a, head, seed, train_samples, test, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    classes = 1 if head == "sigmoid" else 2
    torch.manual_seed(seed)  # same draws for every layer but out_conv in both heads
    m = UNet(3, classes, a.base_c)
    params = sum(p.numel() for p in m.parameters())
    opt = torch.optim.SGD(m.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    ds = TrainSet(train_samples, 565, a.crop, seed)
    g = torch.Generator()
    g.manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, generator=g,
                                         num_workers=a.workers, persistent_workers=False)
    steps_per_epoch = len(loader)
    warmup = min(a.warmup_epochs, a.epochs - 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: lr_factor(k, warmup * steps_per_epoch, a.epochs * steps_per_epoch))
    cw = torch.tensor(a.class_weight, dtype=torch.float32)
    run = {"framework": "pytorch " + torch.__version__, "head": head, "num_classes": classes, "params": params,
           "base_c": a.base_c, "crop": a.crop, "batch": a.batch_size, "epochs": a.epochs}
    print("%s head (%d output channel%s): %d parameters, %d training images, %d test images, %d steps per epoch"
          % (head, classes, "" if classes == 1 else "s", params, len(ds), len(test), steps_per_epoch), flush=True)
    epochs = []
    with open(os.path.join(out_dir, "log.jsonl"), "w") as log:
        for epoch in range(1, a.epochs + 1):
            ds.epoch = epoch - 1
            m.train()
            t0 = time.perf_counter()
            loss_sum, steps, images, wait = 0.0, 0, 0, 0.0
            tw = time.perf_counter()
            for x, y in loader:
                wait += time.perf_counter() - tw
                loss = head_loss(head, m(x), y, cw)
                loss.backward()
                opt.step()
                sched.step()
                opt.zero_grad()
                loss_sum += loss.item()
                steps += 1
                images += x.shape[0]
                tw = time.perf_counter()
            secs = time.perf_counter() - t0
            e = {"epoch": epoch, "lr": opt.param_groups[0]["lr"], "train_loss": loss_sum / steps,
                 "train_seconds": secs, "images_per_second": images / secs, "data_wait_share": wait / secs,
                 "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            if epoch % a.eval_every == 0 or epoch == a.epochs:
                e.update(evaluate(m, head, test, cw))
                print("%s epoch %d/%d: train loss %.4f, test loss %.4f, Dice %.4f, mIoU %.4f, acc %.4f, %.1f s "
                      "(%.2f img/s), eval %.1f s" % (head, epoch, a.epochs, e["train_loss"], e["test_loss"],
                                                     e["dice"], e["miou"], e["global_acc"], secs,
                                                     e["images_per_second"], e["eval_seconds"]), flush=True)
            else:
                print("%s epoch %d/%d: train loss %.4f, %.1f s" % (head, epoch, a.epochs, e["train_loss"], secs),
                      flush=True)
            epochs.append(e)
            log.write(json.dumps({**run, **{k: (round(v, 6) if isinstance(v, float) else v)
                                            for k, v in e.items()}}) + "\n")
            log.flush()
    torch.save(m.state_dict(), os.path.join(out_dir, "last.pt"))
    return run, epochs


def table(runs):
    """unet_drive's table for the runs of one seed."""
    def med(v):
        v = [x for x in v if x is not None]
        return statistics.median(v) if v else float("nan")
    print("%-32s" % "" + "".join("%22s" % ("%s (%d ch)" % (r["head"], r["num_classes"])) for r, _ in runs))
    rows = []
    for r, ep in runs:
        ev = [e for e in ep if "dice" in e]
        last, best = ev[-1], max(ev, key=lambda e: e["dice"])
        rows.append({"parameters": "%d" % r["params"], "epochs trained": "%d" % len(ep),
                     "final test Dice": "%.4f" % last["dice"],
                     "best test Dice (epoch)": "%.4f (%d)" % (best["dice"], best["epoch"]),
                     "final mean IoU": "%.4f" % last["miou"], "final global accuracy": "%.4f" % last["global_acc"],
                     "final vessel accuracy": "%.4f" % last["acc_vessel"],
                     "final vessel IoU": "%.4f" % last["iou_vessel"], "final test loss": "%.4f" % last["test_loss"],
                     "final train loss": "%.4f" % ep[-1]["train_loss"],
                     "train time (min)": "%.1f" % (sum(e["train_seconds"] for e in ep) / 60),
                     "train images/s (median epoch)": "%.2f" % med([e["images_per_second"] for e in ep]),
                     "inference ms/test image": "%.0f" % med([e.get("infer_ms_per_image") for e in ev]),
                     "data-wait share of step time": "%.2f%%" % (100 * med([e["data_wait_share"] for e in ep])),
                     "peak memory (MB)": "%.0f" % ep[-1]["peak_rss_mb"]})
    for k in rows[0]:
        print("%-32s" % k + "".join("%22s" % row[k] for row in rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--seeds", default="0")
    p.add_argument("--head", choices=("both",) + HEADS, default="both")
    p.add_argument("--epochs", type=int)
    p.add_argument("--crop", type=int)
    p.add_argument("--base-c", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--class-weight", default="1,2")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--limit-test", type=int, default=0)
    p.add_argument("--data", default=os.environ.get("TG_DRIVE_DIR") or (  # as tg_drive_default_root
        "data/DRIVE" if os.path.isdir("data/DRIVE/test") else
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "DRIVE")))
    p.add_argument("--out", default="runs/unet_drive_torch")
    a = p.parse_args()
    base = dict(base_c=16, crop=480, batch_size=4, epochs=40)  # unet_drive's defaults
    base.update(PRESETS.get(a.preset, {}))
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    try:
        seeds = [int(s) for s in a.seeds.split(",")]
        a.class_weight = [float(w) for w in a.class_weight.split(",")]
        assert len(a.class_weight) == 2 and len(set(seeds)) == len(seeds) and min(seeds) >= 0
    except (ValueError, AssertionError):
        p.error("--seeds takes distinct whole numbers >= 0 (0,1,2), --class-weight two numbers W0,W1")
    if not os.path.isfile(os.path.join(a.data, "test", "images", "01_test.tif")):
        sys.exit("unet_drive_torch: no DRIVE dataset at %s (pass --data DIR or set TG_DRIVE_DIR)" % a.data)
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    train_samples, test = load_drive(a.data, "training"), load_drive(a.data, "test")
    if a.limit_train:
        train_samples = train_samples[:a.limit_train]
    if a.limit_test:
        test = test[:a.limit_test]
    print("unet_drive_torch: torch %s, DRIVE at %s, output in %s; base width %d, crop %d, batch %d, %d epochs, lr %g, "
          "seeds %s, %d threads, %d loader workers" % (torch.__version__, a.data, a.out, a.base_c, a.crop,
                                                       a.batch_size, a.epochs, a.lr, a.seeds,
                                                       torch.get_num_threads(), a.workers), flush=True)
    heads = HEADS if a.head == "both" else (a.head,)
    for seed in seeds:
        runs = [train_head(a, h, seed, train_samples, test, os.path.join(a.out, "seed_%d" % seed, h)) for h in heads]
        print("\nseed %d:" % seed)
        table(runs)
        print(flush=True)
    print("logs: %s/seed_S/<head>/log.jsonl; report over the seeds: build/bin/unet_drive --report-only --overlays 0 "
          "--out %s" % (a.out, a.out))


if __name__ == "__main__":
    main()
