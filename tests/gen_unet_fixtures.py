#!/usr/bin/python3
"""PyTorch 1.13 golden values for nn/unet.c (tests/test_unet.c), from a copy of the reference UNet
(WZMIAOMIAO deep-learning-for-image-processing, pytorch_segmentation/unet/src/unet.py, bilinear=True).

Writes, under tests/fixtures/:
  unet_b4_init.safetensors      state_dict of UNet(3, 2, base_c=4) after torch.manual_seed(0)
  unet_b4_expected.safetensors  one odd-sized batch x (2, 3, 37, 45) (three of the four up blocks pad),
                                a target with ignored pixels, and in train mode:
                                  logits1, loss1 (CE weight [1, 2], ignore_index 255), grad.<param> for every
                                  parameter, grad.x, after1.<buffer> (running stats after that forward);
                                then SGD(lr 0.05, momentum 0.9, wd 1e-4) step 1, forward 2: loss2, backward,
                                step 2 (momentum buffers in use): step2.<param>, after2.<buffer>;
                                then eval mode: logits_eval.
  unet_b16_state_dict.json      names, shapes and dtypes of UNet(3, 2, 16)'s state_dict, in order.
Usage: /usr/bin/python3 tests/gen_unet_fixtures.py"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_py  # noqa: E402

FIX = os.path.join(HERE, "fixtures")
# parameters whose gradients and post-step values are stored (all would exceed the fixture budget):
# first conv, a BN pair, a deep conv, the last DoubleConv's BN, the output conv
CHECKED = ["in_conv.0.weight", "in_conv.1.weight", "in_conv.1.bias", "down3.1.0.weight", "down4.1.4.weight",
           "up1.conv.0.weight", "up4.conv.4.bias", "out_conv.0.weight", "out_conv.0.bias"]


class DoubleConv(nn.Sequential):
    def __init__(self, i, o, m=None):
        m = m or o
        super().__init__(nn.Conv2d(i, m, 3, padding=1, bias=False), nn.BatchNorm2d(m), nn.ReLU(inplace=True),
                         nn.Conv2d(m, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class Down(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.MaxPool2d(2, stride=2), DoubleConv(i, o))


class Up(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = DoubleConv(i, o, i // 2)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], 1))


class UNet(nn.Module):
    def __init__(self, inc=3, nc=2, c=16):
        super().__init__()
        self.in_conv = DoubleConv(inc, c)
        self.down1, self.down2 = Down(c, 2 * c), Down(2 * c, 4 * c)
        self.down3, self.down4 = Down(4 * c, 8 * c), Down(8 * c, 8 * c)
        self.up1, self.up2, self.up3, self.up4 = Up(16 * c, 4 * c), Up(8 * c, 2 * c), Up(4 * c, c), Up(2 * c, c)
        self.out_conv = nn.Sequential(nn.Conv2d(c, nc, 1))

    def forward(self, x):
        x1 = self.in_conv(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up4(self.up3(self.up2(self.up1(x5, x4), x3), x2), x1)
        return self.out_conv(x)


def np32(t):
    return t.detach().clone().contiguous().numpy()


def main():
    torch.manual_seed(0)
    m16 = UNet(3, 2, 16)
    sd16 = m16.state_dict()
    assert len(sd16) == 110 and sum(p.numel() for p in m16.parameters()) == 1080946
    with open(os.path.join(FIX, "unet_b16_state_dict.json"), "w") as f:
        json.dump({"num_params": sum(p.numel() for p in m16.parameters()),
                   "entries": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                                "param": k in dict(m16.named_parameters())} for k, v in sd16.items()]},
                  f, separators=(",", ":"))
        f.write("\n")

    torch.manual_seed(0)
    m = UNet(3, 2, 4)
    safetensors_py.save(os.path.join(FIX, "unet_b4_init.safetensors"),
                        {k: np32(v) for k, v in m.state_dict().items()}, {"made_by": "tests/gen_unet_fixtures.py"})
    params = dict(m.named_parameters())
    buffers = {k: v for k, v in m.state_dict().items() if k not in params}

    x = torch.randn(2, 3, 37, 45, requires_grad=True)
    g = torch.Generator().manual_seed(1)
    target = (torch.rand(2, 37, 45, generator=g) < 0.3).long()
    target[torch.rand(2, 37, 45, generator=g) < 0.1] = 255
    w = torch.tensor([1.0, 2.0])
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    out = {"x": np32(x), "target": target.numpy().copy()}

    m.train()
    logits1 = m(x)
    loss1 = F.cross_entropy(logits1, target, weight=w, ignore_index=255)
    loss1.backward()
    out["logits1"] = np32(logits1)
    out["loss1"] = np32(loss1)
    out["grad.x"] = np32(x.grad)
    for k in CHECKED:
        out["grad." + k] = np32(params[k].grad)
    for k, b in buffers.items():
        out["after1." + k] = np32(b)
    opt.step()
    opt.zero_grad()

    loss2 = F.cross_entropy(m(x.detach()), target, weight=w, ignore_index=255)
    loss2.backward()
    opt.step()
    out["loss2"] = np32(loss2)
    for k in CHECKED:
        out["step2." + k] = np32(params[k])
    for k, b in buffers.items():
        out["after2." + k] = np32(b)

    m.eval()
    with torch.no_grad():
        out["logits_eval"] = np32(m(x.detach()))
    safetensors_py.save(os.path.join(FIX, "unet_b4_expected.safetensors"), out,
                        {"made_by": "tests/gen_unet_fixtures.py", "torch": torch.__version__,
                         "sgd": "lr 0.05 momentum 0.9 weight_decay 1e-4", "ce": "weight [1, 2] ignore_index 255"})
    print("loss1 %.6f loss2 %.6f; %d state_dict entries (base 4), %d parameters"
          % (loss1.item(), loss2.item(), len(m.state_dict()), sum(p.numel() for p in params.values())))


if __name__ == "__main__":
    main()
