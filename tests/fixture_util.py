"""What the PyTorch fixture generators (tests/gen_*.py) share: tensors and numbers to JSON,
one non-finite value poked into a tensor, and the reference losses torch.nn.functional lacks
(torchvision's sigmoid focal loss, milesial's Dice). Imported by the generators; not a test.

JSON: non-finite floats become the strings "NaN", "Infinity", "-Infinity" (what the C tests
read); finite floats are written as float64 values unless a format is asked for."""
import math

import torch
import torch.nn.functional as F

SPECIALS = [("nan", float("nan")), ("inf", float("inf")), ("ninf", float("-inf"))]


def enc(x, fmt=None):
    """A tensor (its values as float64/int), list or number, JSON-ready. fmt: None keeps floats as
    they are; "f32" the shortest text that reads back as the same float32; "9g" 9 significant
    digits. bool, int, str and None are kept."""
    if isinstance(x, torch.Tensor):
        x = x.detach().tolist()
    if isinstance(x, list):
        return [enc(v, fmt) for v in x]
    if x is None or isinstance(x, (bool, int, str)):
        return x
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if fmt == "f32":
        import numpy as np
        return float(str(np.float32(x)))
    if fmt == "9g":
        return float("%.9g" % x)
    return x


def poke(t, idx, v):
    """A copy of t with flat element idx set to v."""
    t = t.detach().clone()
    t.view(-1)[idx] = v
    return t


def focal(input, target, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, written out (alpha < 0: no alpha factor)."""
    p = torch.sigmoid(input)
    ce = F.binary_cross_entropy_with_logits(input, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


def dice(input, target, ignore_index=None, eps=1e-6):
    """Soft Dice loss, milesial-style per image and class (ops/loss.h's tg_dice_loss): softmax over
    C (sigmoid for C == 1), pixels equal to ignore_index left out of every sum."""
    N, C = input.shape[:2]
    if C == 1:
        p, g = torch.sigmoid(input), (target == 1).float().unsqueeze(1)
    else:
        p = torch.softmax(input, dim=1)
        g = F.one_hot(target.clamp(0, C - 1), C).movedim(-1, 1).float()
    m = (torch.ones_like(target) if ignore_index is None else (target != ignore_index)).float().unsqueeze(1)
    p, g = (p * m).reshape(N, C, -1), (g * m).reshape(N, C, -1)
    inter, sets = (p * g).sum(-1), p.sum(-1) + g.sum(-1)
    sets = torch.where(sets == 0, 2 * inter, sets)
    return 1 - ((2 * inter + eps) / (sets + eps)).mean()
