#!/usr/bin/python3
"""Checks a `unet_drive step-dump` against PyTorch 1.13 (not part of the test suite; needs python3-torch).

Loads the checkpoint into the reference UNet (tests/gen_unet_fixtures.py, load_state_dict strict), runs
the dump's `input` through it in train mode, the same loss on its `target` (class weights from the dump's
metadata), backward, and prints the relative L2 difference of the logits, the loss, every parameter
gradient and, for a --trace dump, every block output and its gradient (forward hooks + retain_grad), both
for PyTorch in float32 and against PyTorch in float64 (the reference for both).

Usage: /usr/bin/python3 tests/check_stepdump_torch.py CHECKPOINT DUMP [--top K]
Exit status 1 if any difference from float64 exceeds the float32 one by more than 10x and 1e-3."""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_py  # noqa: E402
from gen_unet_fixtures import UNet  # noqa: E402

BLOCKS = ["in_conv", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "out_conv"]


def step(state, dump, meta, dtype):
    classes = state["out_conv.0.weight"].shape[0]
    base_c = state["in_conv.0.weight"].shape[0]
    m = UNet(3, classes, base_c)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    m.to(dtype).train()
    seen = {}

    def hook(name):
        def fn(_mod, _inp, out):
            out.retain_grad()
            seen[name] = out
        return fn

    for name in BLOCKS:
        getattr(m, name).register_forward_hook(hook(name))
    x = torch.from_numpy(dump["input"]).to(dtype)
    y = torch.from_numpy(dump["target"])
    cw = [float(meta.get("class_weight_0", 1)), float(meta.get("class_weight_1", 2))]
    logits = m(x)
    if classes == 2:
        loss = F.cross_entropy(logits, y, weight=torch.tensor(cw, dtype=dtype), ignore_index=255)
    else:
        t = (y == 1).to(dtype)
        w = torch.where(y == 0, cw[0], torch.where(y == 1, cw[1], 0.0)).to(dtype)
        loss = F.binary_cross_entropy_with_logits(logits[:, 0], t, weight=w, reduction="sum") / w.sum()
    loss.backward()
    out = {"logits": logits, "loss": loss}
    out.update({"grad." + k: p.grad for k, p in m.named_parameters()})
    out.update(seen)
    out.update({"grad." + k: v.grad for k, v in seen.items()})
    return {k: v.detach().double().numpy() for k, v in out.items()}


def rel(a, e):
    a, e = np.asarray(a, np.float64).ravel(), np.asarray(e, np.float64).ravel()
    d = np.linalg.norm(e)
    return float(np.linalg.norm(a - e) / d) if d > 0 else float(np.linalg.norm(a))


def main():
    args = sys.argv[1:]
    top = 10
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    state, _ = safetensors_py.load(args[0])
    dump, meta = safetensors_py.load(args[1])
    t32, t64 = step(state, dump, meta, torch.float32), step(state, dump, meta, torch.float64)
    rows = sorted(((rel(dump[k], t64[k]), rel(t32[k], t64[k]), k) for k in t64 if k in dump), reverse=True)
    print("loss: tapegrad %.9g, torch float32 %.9g, torch float64 %.9g" % (float(dump["loss"]), t32["loss"], t64["loss"]))
    print("%d tensors compared; relative L2 difference from torch float64, worst first:" % len(rows))
    print("  tapegrad   torch f32  name")
    for r in rows[:top]:
        print("  %-9.3g  %-9.3g  %s" % r)
    bad = [r for r in rows if r[0] > 1e-3 and r[0] > 10 * r[1]]
    print("%d tensors more than 10x (and 1e-3) further from float64 than torch float32 is" % len(bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
