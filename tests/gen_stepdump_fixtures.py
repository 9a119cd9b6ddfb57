#!/usr/bin/python3
"""PyTorch 1.13 golden values for `unet_drive step-dump` and tensor tracing (tests/test_unet_stepdump.c),
with the reference UNet of tests/gen_unet_fixtures.py (imported, not copied).

Writes, under tests/fixtures/:
  stepdump_data/training/{images,labels,masks}/img_{01,02,10}.png  a tiny dataset in unet_drive's folder layout
        (RGB noise with a smooth ramp; labels 0/255; masks 0 outside a disc; test/ holds a copy of img_10), so the
        test does not depend on DRIVE; the test passes DRIVE's mean/std with --mean/--std
  stepdump_softmax_ckpt.safetensors  state_dict of UNet(3, 2, base_c=2) (seed 1; BN affine parameters and
        running statistics drawn at random so they are not the trivial 1/0), as torch writes it
  stepdump_softmax_expected.safetensors  one training-mode step on the first 2 images (name order),
        centre crop 32 (top-left ((H-32)//2, (W-32)//2)), DRIVE normalisation, CE weight [1, 2],
        ignore_index 255: input, target, logits, loss, grad.<param> for every parameter
  stepdump_sigmoid_ckpt.safetensors / stepdump_sigmoid_expected.safetensors  the same for UNet(3, 1, 2)
        (seed 2), crop 24, class weights [1, 3], the 1-channel loss sum(w_y * BCE) / sum(w_y), and the
        trace: forward-hook outputs of in_conv, down1..4, up1..4, out_conv with retain_grad() gradients
        (grad.<block>)
Usage: /usr/bin/python3 tests/gen_stepdump_fixtures.py"""
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_py  # noqa: E402
from gen_unet_fixtures import UNet  # noqa: E402

FIX = os.path.join(HERE, "fixtures")
DATA = os.path.join(FIX, "stepdump_data")
MEAN, STD = (0.709, 0.381, 0.224), (0.127, 0.079, 0.043)  # TG_DRIVE_MEAN / TG_DRIVE_STD
BLOCKS = ["in_conv", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "out_conv"]
IMAGES = [("img_01", 37, 40), ("img_02", 36, 45), ("img_10", 33, 33)]  # name, height, width (name order)


def write_png(path, arr):
    """8-bit gray (H, W) or RGB (H, W, 3) PNG, no filtering."""
    h, w = arr.shape[:2]
    color = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_data(rng):
    """The folder's images; returns {name: (rgb uint8, target int64 0/1/255)}."""
    for split in ("training", "test"):
        for sub in ("images", "labels", "masks"):
            os.makedirs(os.path.join(DATA, split, sub), exist_ok=True)
    out = {}
    for name, h, w in IMAGES:
        yy, xx = np.mgrid[0:h, 0:w]
        ramp = np.stack([xx * 200 // w, yy * 150 // h, (xx + yy) * 100 // (w + h)], -1)
        rgb = np.clip(ramp + rng.integers(0, 56, (h, w, 3)), 0, 255).astype(np.uint8)
        label = np.where(rng.random((h, w)) < 0.25, 255, 0).astype(np.uint8)
        mask = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (0.45 * min(h, w)) ** 2, 255, 0).astype(np.uint8)
        for split in ("training", "test") if name == IMAGES[-1][0] else ("training",):
            write_png(os.path.join(DATA, split, "images", name + ".png"), rgb)
            write_png(os.path.join(DATA, split, "labels", name + ".png"), label)
            write_png(os.path.join(DATA, split, "masks", name + ".png"), mask)
        target = np.where(mask == 0, 255, np.where(label != 0, 1, 0)).astype(np.int64)
        out[name] = (rgb, target)
    return out


def batch(data, b, s):
    """First b images in name order, centre crop s, ToTensor + Normalize (float32), target int64."""
    xs, ys = [], []
    for name, h, w in IMAGES[:b]:
        rgb, target = data[name]
        top, left = (h - s) // 2, (w - s) // 2
        x = torch.from_numpy(rgb[top:top + s, left:left + s].copy()).permute(2, 0, 1).float().div(255)
        x = (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
        xs.append(x)
        ys.append(torch.from_numpy(target[top:top + s, left:left + s].copy()))
    return torch.stack(xs), torch.stack(ys)


def head_loss(head, logits, y, cw):
    """unet_drive's training loss (examples/unet_drive/head_loss.c)."""
    if head == "softmax":
        return F.cross_entropy(logits, y, weight=torch.tensor(cw), ignore_index=255)
    t = (y == 1).float()
    w = torch.where(y == 0, cw[0], torch.where(y == 1, cw[1], 0.0)).float()
    return F.binary_cross_entropy_with_logits(logits[:, 0], t, weight=w, reduction="sum") / w.sum()


def case(data, head, seed, b, s, cw, trace):
    torch.manual_seed(seed)
    m = UNet(3, 1 if head == "sigmoid" else 2, 2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.num_batches_tracked.fill_(7)
    safetensors_py.save(os.path.join(FIX, "stepdump_%s_ckpt.safetensors" % head),
                        {k: v.detach().clone().numpy() for k, v in m.state_dict().items()},
                        {"made_by": "tests/gen_stepdump_fixtures.py", "torch": torch.__version__})
    seen = {}

    def hook(name):
        def fn(_module, _inputs, output):
            output.retain_grad()
            seen[name] = output
        return fn

    if trace:
        for name in BLOCKS:
            getattr(m, name).register_forward_hook(hook(name))
    x, y = batch(data, b, s)
    m.train()
    logits = m(x)
    loss = head_loss(head, logits, y, cw)
    loss.backward()
    out = {"input": x.numpy(), "target": y.numpy(), "logits": logits.detach().numpy(),
           "loss": loss.detach().numpy()}
    for name in BLOCKS if trace else []:
        out[name] = seen[name].detach().numpy()
        out["grad." + name] = seen[name].grad.numpy()
    for k, p in m.named_parameters():
        out["grad." + k] = p.grad.numpy()
    meta = {"made_by": "tests/gen_stepdump_fixtures.py", "torch": torch.__version__, "head": head,
            "base_c": "2", "batch": str(b), "crop": str(s), "class_weight": "%g,%g" % tuple(cw)}
    path = os.path.join(FIX, "stepdump_%s_expected.safetensors" % head)
    safetensors_py.save(path, out, meta)
    print("%s: loss %.6f, %d entries, %d bytes" % (head, loss.item(), len(out), os.path.getsize(path)))


def main():
    data = make_data(np.random.default_rng(17))
    case(data, "softmax", 1, 2, 32, [1.0, 2.0], False)
    case(data, "sigmoid", 2, 2, 24, [1.0, 3.0], True)


if __name__ == "__main__":
    main()
