#!/usr/bin/python3
"""Golden values for nn/seg_metrics from the reference DRIVE evaluation, re-implemented here in
PyTorch as WZMIAOMIAO pytorch_segmentation/unet/train_utils (ConfusionMatrix, DiceCoefficient,
build_target, dice_coeff, multiclass_dice_coeff) compute them, with evaluation batches of one image.
A 1-channel head predicts class 1 where sigmoid(logit) > 0.5.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/gen_seg_metrics_fixtures.py
Writes tests/fixtures/seg_metrics.json: per case the logits (N,K,H,W), the targets (N,H,W) and the
reference's global accuracy, per-class accuracy and IoU, mean IoU and Dice.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(77)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


class ConfusionMatrix:
    def __init__(self, num_classes):
        self.num_classes = num_classes
        self.mat = None

    def update(self, a, b):
        n = self.num_classes
        if self.mat is None:
            self.mat = torch.zeros((n, n), dtype=torch.int64)
        k = (a >= 0) & (a < n)
        inds = n * a[k].to(torch.int64) + b[k]
        self.mat += torch.bincount(inds, minlength=n ** 2).reshape(n, n)

    def compute(self):
        h = self.mat.float()
        acc_global = torch.diag(h).sum() / h.sum()
        acc = torch.diag(h) / h.sum(1)
        iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
        return acc_global, acc, iu


def build_target(target, num_classes=2, ignore_index=-100):
    dice_target = target.clone()
    if ignore_index >= 0:
        ignore_mask = torch.eq(target, ignore_index)
        dice_target[ignore_mask] = 0
        dice_target = F.one_hot(dice_target, num_classes).float()
        dice_target[ignore_mask] = ignore_index
    else:
        dice_target = F.one_hot(dice_target, num_classes).float()
    return dice_target.permute(0, 3, 1, 2)


def dice_coeff(x, target, ignore_index=-100, epsilon=1e-6):
    d = 0.
    batch_size = x.shape[0]
    for i in range(batch_size):
        x_i = x[i].reshape(-1)
        t_i = target[i].reshape(-1)
        if ignore_index >= 0:
            roi_mask = torch.ne(t_i, ignore_index)
            x_i = x_i[roi_mask]
            t_i = t_i[roi_mask]
        inter = torch.dot(x_i, t_i)
        sets_sum = torch.sum(x_i) + torch.sum(t_i)
        if sets_sum == 0:
            sets_sum = 2 * inter
        d += (2 * inter + epsilon) / (sets_sum + epsilon)
    return d / batch_size


def multiclass_dice_coeff(x, target, ignore_index=-100, epsilon=1e-6):
    dice = 0.
    for channel in range(x.shape[1]):
        dice += dice_coeff(x[:, channel, ...], target[:, channel, ...], ignore_index, epsilon)
    return dice / x.shape[1]


class DiceCoefficient:
    def __init__(self, num_classes=2, ignore_index=-100):
        self.cumulative_dice = None
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.count = None

    def update(self, pred, target):
        if self.cumulative_dice is None:
            self.cumulative_dice = torch.zeros(1, dtype=pred.dtype)
            self.count = torch.zeros(1, dtype=pred.dtype)
        pred = F.one_hot(pred.argmax(dim=1), self.num_classes).permute(0, 3, 1, 2).float()
        dice_target = build_target(target, self.num_classes, self.ignore_index)
        self.cumulative_dice += multiclass_dice_coeff(pred[:, 1:], dice_target[:, 1:], ignore_index=self.ignore_index)
        self.count += 1

    @property
    def value(self):
        return self.cumulative_dice / self.count


def reference(logits, target, classes):
    """The reference evaluate(): one image per batch."""
    confmat = ConfusionMatrix(classes)
    dice = DiceCoefficient(num_classes=classes, ignore_index=255)
    for i in range(logits.shape[0]):
        out, t = logits[i:i + 1], target[i:i + 1]
        if out.shape[1] == 1:  # sigmoid head as two-class scores: class 1 where sigmoid > 0.5
            p1 = (torch.sigmoid(out) > 0.5).float()
            out = torch.cat([1 - p1, p1], 1)
        confmat.update(t.flatten(), out.argmax(1).flatten())
        dice.update(out, t)
    g, acc, iu = confmat.compute()
    return {"global_acc": g.item(), "acc": acc.tolist(), "iou": iu.tolist(), "miou": iu.mean().item(),
            "dice": dice.value.item()}


def case(name, logits, target, classes):
    r = reference(logits, target, classes)
    return {"name": name, "classes": classes, "logits": logits.tolist(), "target": target.tolist(), **r}


def random_target(n, h, w, classes, ignore_share):
    t = torch.randint(0, classes, (n, h, w))
    t[torch.rand(n, h, w) < ignore_share] = 255
    return t


cases = []
# two channels, ignored pixels, logits correlated with the target so the scores are not trivial
t = random_target(3, 9, 11, 2, 0.2)
x = torch.randn(3, 2, 9, 11) + 1.5 * F.one_hot(t.clamp(max=1), 2).permute(0, 3, 1, 2)
cases.append(case("two_channels", x, t, 2))
# one channel (sigmoid head)
t = random_target(2, 7, 13, 2, 0.3)
x = torch.randn(2, 1, 7, 13) + 2.0 * (t.clamp(max=1).float().unsqueeze(1) - 0.5)
cases.append(case("one_channel", x, t, 2))
# three classes
t = random_target(2, 6, 8, 3, 0.1)
x = torch.randn(2, 3, 6, 8) + 1.0 * F.one_hot(torch.where(t == 255, torch.zeros_like(t), t), 3).permute(0, 3, 1, 2)
cases.append(case("three_classes", x, t, 3))
# an image with no vessel in the target and none predicted: sets_sum == 0, Dice 1 for it
t = torch.zeros(2, 5, 5, dtype=torch.int64)
t[0, 1:3, 1:4] = 1
t[:, 0, :] = 255
x = torch.zeros(2, 2, 5, 5)
x[:, 0] = 1.0
x[0, 1, 1:3, 2:4] = 2.0
cases.append(case("empty_image", x, t, 2))

os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "seg_metrics.json"), "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
print("seg_metrics.json", len(cases), "cases")
