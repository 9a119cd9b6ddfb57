#!/usr/bin/env python3
"""PyTorch counterpart of examples/mnist, for side-by-side speed and accuracy.

Same models, init rules, loss, optimizer, batch and data order rule (a fresh
random permutation per epoch, last partial batch kept); trains and prints one
line per epoch in the same words as build/bin/mnist.

  /usr/bin/python3 bench/mnist_torch.py [--model cnn|mlp] [--epochs 3] [--batch 64]
      [--optimizer adam|sgd] [--lr LR] [--momentum M] [--threads 2] [--limit N] [--data DIR]
"""
import argparse, gzip, os, struct, time

import numpy as np
import torch
from torch import nn


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem + ".gz", stem):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    raise SystemExit(f"missing {stem}[.gz] in {d}")


def model(kind):
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(784, 10))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cnn")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    xtr = torch.from_numpy(idx(find(a.data, "train-images-idx3-ubyte")).astype(np.float32) / 255).unsqueeze(1)
    ytr = torch.from_numpy(idx(find(a.data, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(idx(find(a.data, "t10k-images-idx3-ubyte")).astype(np.float32) / 255).unsqueeze(1)
    yte = torch.from_numpy(idx(find(a.data, "t10k-labels-idx1-ubyte")).astype(np.int64))
    if a.limit:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    m = model(a.model)
    lr = a.lr if a.lr else (0.01 if a.optimizer == "sgd" else 1e-3)
    opt = (torch.optim.SGD(m.parameters(), lr=lr, momentum=a.momentum) if a.optimizer == "sgd"
           else torch.optim.Adam(m.parameters(), lr=lr))
    lossf = nn.CrossEntropyLoss()
    n = len(xtr)
    print(f"pytorch {torch.__version__}: {a.model}, {n} training images, batch {a.batch}, {a.optimizer} lr {lr}, "
          f"{torch.get_num_threads()} threads")
    for epoch in range(1, a.epochs + 1):
        m.train()
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        total = 0.0
        for s in range(0, n, a.batch):
            idxs = perm[s:s + a.batch]
            xb, yb = xtr[idxs], ytr[idxs]
            opt.zero_grad()
            loss = lossf(m(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idxs)
        dt = time.perf_counter() - t0
        m.eval()
        with torch.no_grad():
            correct = sum((m(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum().item()
                          for s in range(0, len(xte), 1000))
        print(f"epoch {epoch}: train loss {total / n:.4f}, test accuracy {correct / len(xte):.4f}, "
              f"{dt:.1f} s, {n / dt:.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
