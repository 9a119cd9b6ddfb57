#!/usr/bin/python3
"""Golden values for the core loss family (ops/loss.h), from PyTorch 1.13.

Writes tests/fixtures/loss_<family>.json: {"cases": [case, ...]} where a case is
  name, fn, options (reduction, weight, pos_weight, ignore_index, label_smoothing,
  log_target, beta, delta, alpha, gamma, eps), input, target (+ target_int),
  out (the loss), grad_out (upstream gradient fed to backward) and grad (d/d input).
Non-finite numbers are written as "NaN", "Infinity", "-Infinity".
Run: /usr/bin/python3 tests/gen_loss_fixtures.py   (tests/test_loss_fixtures.c reads the files)
"""
import json
import os

import torch
import torch.nn.functional as F
from fixture_util import SPECIALS, dice, enc, focal, poke

torch.manual_seed(1234)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


def tolist(t):
    return enc(t)


def case(name, fn, call, x, target, **opts):
    """call(x) -> loss; records value and gradient for a random upstream gradient.
    If PyTorch refuses the inputs, the case records "error" (its message) instead."""
    x = x.detach().clone().float().requires_grad_(True)
    try:
        out = call(x)
    except (RuntimeError, ValueError) as e:
        c = {"name": name, "fn": fn, "input": tolist(x), "target": tolist(target),
             "target_int": target.dtype == torch.int64, "error": str(e).splitlines()[0]}
        for k, v in opts.items():
            if v is not None:
                c[k] = tolist(v) if isinstance(v, torch.Tensor) else v
        return c
    g = torch.rand(out.shape) + 0.5
    out.backward(g)
    grad = x.grad if x.grad is not None else torch.zeros_like(x)
    c = {"name": name, "fn": fn, "input": tolist(x), "target": tolist(target),
         "target_int": target.dtype == torch.int64, "out": tolist(out), "grad_out": tolist(g),
         "grad": tolist(grad)}
    for k, v in opts.items():
        if v is None:
            continue
        c[k] = tolist(v) if isinstance(v, torch.Tensor) else v
    return c


def write(fam, cases):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, f"loss_{fam}.json"), "w") as f:
        json.dump({"generator": "tests/gen_loss_fixtures.py", "torch": torch.__version__, "cases": cases}, f)
    print(f"loss_{fam}.json: {len(cases)} cases")


REDS = ["mean", "sum", "none"]


def class_targets(shape, C, ignore=None, frac=0.25):
    t = torch.randint(0, C, shape)
    if ignore is not None:
        m = torch.rand(shape) < frac
        t[m] = ignore
    return t


# ---- cross_entropy / nll_loss ----
def gen_ce():
    cases = []
    shapes = [(5,), (4, 3), (2, 3, 4), (2, 4, 3, 5), (2, 3, 2, 2, 2), (3, 2, 6, 5)]
    for shp in shapes:
        C = shp[0] if len(shp) == 1 else shp[1]
        tshape = () if len(shp) == 1 else (shp[0],) + shp[2:]
        for red in REDS:
            for wmode in [None, "w"]:
                for ign in [None, 1, 255]:
                    for ls in [0.0, 0.1]:
                        x = torch.randn(shp) * 2
                        w = torch.rand(C) + 0.2 if wmode else None
                        t = class_targets(tshape, C, ignore=ign if ign == 255 else None)
                        kw = dict(weight=w, reduction=red, label_smoothing=ls)
                        if ign is not None:
                            kw["ignore_index"] = ign
                        name = f"ce{list(shp)}_{red}_w{int(w is not None)}_ign{ign}_ls{ls}"
                        cases.append(case(name, "cross_entropy", lambda x: F.cross_entropy(x, t, **kw), x, t,
                                          reduction=red, weight=w, ignore_index=ign, label_smoothing=ls))
                        if ls == 0.0:
                            kw2 = dict(kw)
                            del kw2["label_smoothing"]
                            lp = torch.log_softmax(torch.randn(shp) * 2, dim=0 if len(shp) == 1 else 1)
                            cases.append(case("nll" + name[2:], "nll_loss", lambda x: F.nll_loss(x, t, **kw2), lp, t,
                                              reduction=red, weight=w, ignore_index=ign))
    # extreme logits
    for scale in [100.0, 200.0]:
        x = torch.tensor([[scale, -scale, 0.0], [-scale, scale, scale], [0.0, 0.0, -scale], [scale, scale, scale]])
        t = torch.tensor([1, 0, 2, 2])
        for red in REDS:
            for ls in [0.0, 0.2]:
                cases.append(case(f"ce_extreme{int(scale)}_{red}_ls{ls}", "cross_entropy",
                                  lambda x: F.cross_entropy(x, t, reduction=red, label_smoothing=ls), x, t,
                                  reduction=red, label_smoothing=ls))
    # all ignored
    for red in REDS:
        x = torch.randn(2, 3, 2, 2)
        t = torch.full((2, 2, 2), 255, dtype=torch.int64)
        w = torch.tensor([0.5, 1.0, 2.0])
        for ls in [0.0, 0.3]:
            cases.append(case(f"ce_all_ignored_{red}_ls{ls}", "cross_entropy",
                              lambda x: F.cross_entropy(x, t, weight=w, ignore_index=255, reduction=red,
                                                        label_smoothing=ls), x, t,
                              reduction=red, weight=w, ignore_index=255, label_smoothing=ls))
        cases.append(case(f"nll_all_ignored_{red}", "nll_loss",
                          lambda x: F.nll_loss(x, t, ignore_index=255, reduction=red), x, t,
                          reduction=red, ignore_index=255))
    # probability targets
    for shp in [(5,), (4, 3), (2, 3, 4), (2, 4, 3, 5)]:
        C = shp[0] if len(shp) == 1 else shp[1]
        for red in REDS:
            for wmode in [None, "w"]:
                for ls in [0.0, 0.15, 1.0]:
                    x = torch.randn(shp) * 3
                    t = torch.softmax(torch.randn(shp), dim=0 if len(shp) == 1 else 1)
                    w = torch.rand(C) + 0.2 if wmode else None
                    cases.append(case(f"ce_prob{list(shp)}_{red}_w{int(w is not None)}_ls{ls}", "cross_entropy",
                                      lambda x: F.cross_entropy(x, t, weight=w, reduction=red, label_smoothing=ls),
                                      x, t, reduction=red, weight=w, label_smoothing=ls))
    # the experiment's head: (N,2,H,W), class weight, ignore 255
    x = torch.randn(2, 2, 5, 7) * 4
    t = class_targets((2, 5, 7), 2, ignore=255, frac=0.2)
    w = torch.tensor([0.3, 2.5])
    for red in REDS:
        cases.append(case(f"ce_seg2_{red}", "cross_entropy",
                          lambda x: F.cross_entropy(x, t, weight=w, ignore_index=255, reduction=red), x, t,
                          reduction=red, weight=w, ignore_index=255))
    write("cross_entropy", cases)


# ---- binary losses ----
def gen_binary():
    cases = []
    for shp in [(7,), (3, 4), (2, 3, 2, 3)]:
        for red in REDS:
            for wshape in [None, shp[-1:], (1,) * (len(shp) - 1) + (shp[-1],), shp]:
                x = torch.rand(shp) * 0.9 + 0.05
                y = torch.rand(shp)
                w = torch.rand(wshape) + 0.2 if wshape is not None else None
                cases.append(case(f"bce{list(shp)}_{red}_w{None if w is None else list(w.shape)}", "bce",
                                  lambda x: F.binary_cross_entropy(x, y, weight=w, reduction=red), x, y,
                                  reduction=red, weight=w))
    # probabilities exactly 0 and 1 (log clamp at -100; unclamped backward)
    x = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30])
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5, 1.0])
    for red in REDS:
        cases.append(case(f"bce_zero_one_{red}", "bce", lambda x: F.binary_cross_entropy(x, y, reduction=red), x, y,
                          reduction=red))
    # with logits
    for shp in [(7,), (3, 4), (2, 3, 2, 3)]:
        for red in REDS:
            for wshape in [None, shp[-1:], shp]:
                for pw in [None, "last"]:
                    x = torch.randn(shp) * 3
                    y = (torch.rand(shp) > 0.5).float()
                    w = torch.rand(wshape) + 0.2 if wshape is not None else None
                    p = torch.rand(shp[-1]) * 3 + 0.1 if pw else None
                    cases.append(case(f"bcel{list(shp)}_{red}_w{None if w is None else list(w.shape)}_pw{pw}", "bce_logits",
                                      lambda x: F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=p,
                                                                                   reduction=red),
                                      x, y, reduction=red, weight=w, pos_weight=p))
    # NCHW with pos_weight (C,1,1) and soft targets
    x = torch.randn(2, 3, 4, 5) * 2
    y = torch.rand(2, 3, 4, 5)
    p = torch.tensor([0.5, 2.0, 4.0]).reshape(3, 1, 1)
    for red in REDS:
        cases.append(case(f"bcel_nchw_posweight_{red}", "bce_logits",
                          lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=p, reduction=red), x, y,
                          reduction=red, pos_weight=p))
    # extreme logits
    x = torch.tensor([100.0, -100.0, 200.0, -200.0, 0.0, 30.0, -30.0, 100.0, -200.0])
    y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.3, 0.7])
    for red in REDS:
        cases.append(case(f"bcel_extreme_{red}", "bce_logits",
                          lambda x: F.binary_cross_entropy_with_logits(x, y, reduction=red), x, y, reduction=red))
        cases.append(case(f"bcel_extreme_pw_{red}", "bce_logits",
                          lambda x: F.binary_cross_entropy_with_logits(x, y, pos_weight=torch.tensor([3.0]),
                                                                       reduction=red),
                          x, y, reduction=red, pos_weight=torch.tensor([3.0])))
    # soft margin
    for red in REDS:
        x = torch.randn(3, 5) * 2
        y = torch.where(torch.rand(3, 5) > 0.5, 1.0, -1.0)
        cases.append(case(f"soft_margin_{red}", "soft_margin", lambda x: F.soft_margin_loss(x, y, reduction=red), x, y,
                          reduction=red))
    # multilabel soft margin
    for shp in [(4, 3), (6,), (2, 3, 5)]:
        for red in REDS:
            for wm in [None, "w"]:
                x = torch.randn(shp) * 3
                y = (torch.rand(shp) > 0.5).float()
                w = torch.rand(shp[-1]) + 0.2 if wm else None
                cases.append(case(f"mlsm{list(shp)}_{red}_w{int(w is not None)}", "multilabel_soft_margin",
                                  lambda x: F.multilabel_soft_margin_loss(x, y, weight=w, reduction=red), x, y,
                                  reduction=red, weight=w))
    # sigmoid focal loss (torchvision's formula: fixture_util.focal)
    for red in REDS:
        for alpha, gamma in [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.25, 1.5), (0.25, 1.0)]:
            x = torch.randn(3, 4) * 3
            y = (torch.rand(3, 4) > 0.6).float()
            cases.append(case(f"focal_{red}_a{alpha}_g{gamma}", "focal", lambda x: focal(x, y, alpha, gamma, red), x, y,
                              reduction=red, alpha=alpha, gamma=gamma))
    write("binary", cases)


# ---- regression, kl_div, dice ----
def gen_regression():
    cases = []
    for red in REDS:
        for shp in [(6,), (3, 4), (2, 2, 3)]:
            x = torch.randn(shp) * 2
            y = torch.randn(shp) * 2
            x.view(-1)[0] = y.view(-1)[0]  # x == y somewhere: L1 grad 0
            cases.append(case(f"mse{list(shp)}_{red}", "mse", lambda x: F.mse_loss(x, y, reduction=red), x, y,
                              reduction=red))
            cases.append(case(f"l1{list(shp)}_{red}", "l1", lambda x: F.l1_loss(x, y, reduction=red), x, y,
                              reduction=red))
            for beta in [1.0, 0.5, 0.0, 3.0]:
                cases.append(case(f"smooth_l1{list(shp)}_{red}_b{beta}", "smooth_l1",
                                  lambda x: F.smooth_l1_loss(x, y, reduction=red, beta=beta), x, y, reduction=red,
                                  beta=beta))
            for delta in [1.0, 0.3, 2.5]:
                cases.append(case(f"huber{list(shp)}_{red}_d{delta}", "huber",
                                  lambda x: F.huber_loss(x, y, reduction=red, delta=delta), x, y, reduction=red,
                                  delta=delta))
    # |d| exactly beta / delta
    x = torch.tensor([1.0, -1.0, 0.5, 0.0])
    y = torch.zeros(4)
    cases.append(case("smooth_l1_at_beta", "smooth_l1", lambda x: F.smooth_l1_loss(x, y, reduction="sum", beta=1.0),
                      x, y, reduction="sum", beta=1.0))
    cases.append(case("huber_at_delta", "huber", lambda x: F.huber_loss(x, y, reduction="sum", delta=1.0), x, y,
                      reduction="sum", delta=1.0))
    for red in REDS + ["batchmean"]:
        for lt in [False, True]:
            x = torch.log_softmax(torch.randn(3, 5), dim=1)
            y = torch.softmax(torch.randn(3, 5), dim=1)
            if lt:
                y = torch.log(y)
            else:
                y[0, 1] = 0.0  # y == 0 contributes 0
            cases.append(case(f"kl_div_{red}_lt{int(lt)}", "kl_div",
                              lambda x: F.kl_div(x, y, reduction=red, log_target=lt), x, y, reduction=red,
                              log_target=lt))

    # Dice, milesial-style per image and class, ignore pixels excluded (see ops/loss.h): fixture_util.dice
    for C in [1, 2, 3]:
        for ign in [None, 255]:
            x = torch.randn(2, C, 4, 5) * 2
            t = class_targets((2, 4, 5), max(C, 2), ignore=ign, frac=0.2)
            cases.append(case(f"dice_C{C}_ign{ign}", "dice", lambda x: dice(x, t, ign), x, t, ignore_index=ign))
    # an image whose pixels are all ignored
    x = torch.randn(2, 2, 3, 3)
    t = class_targets((2, 3, 3), 2)
    t[1] = 255
    cases.append(case("dice_image_all_ignored", "dice", lambda x: dice(x, t, 255), x, t, ignore_index=255))
    write("regression", cases)


# ---- NaN and +-Inf in the input, the (float) target and the weights ----
def gen_nonfinite():
    """Every loss of ops/loss.h with one NaN / +Inf / -Inf placed in each float argument
    (several places where it matters: a target logit, another logit, an ignored pixel, the
    weight of a class that no target uses). Reductions none and mean (the gradient of
    every element is then checked too)."""
    torch.manual_seed(4321)
    cases = []

    def add(name, fn, call, x, t, **opts):
        for red in ["none", "mean"]:
            cases.append(case(f"{name}_{red}", fn, lambda x: call(x, red), x, t, reduction=red, **opts))

    # cross_entropy / nll_loss, class-index targets: (N,C) and (N,C,H,W)
    x2 = torch.randn(4, 3) * 2
    t2 = torch.tensor([0, 2, 1, 2])
    x4 = torch.randn(2, 3, 2, 2) * 2
    t4 = torch.tensor([[[0, 2], [1, 255]], [[2, 2], [0, 1]]])
    w3 = torch.tensor([0.5, 1.5, 2.0])
    for sn, v in SPECIALS:
        # row 1: target logit (index 1*3+2 = 5), another logit (3); image 0 pixel 3 is ignored (index 3)
        for where, idx in [("target_logit", 5), ("other_logit", 3)]:
            for ls in [0.0, 0.1]:
                xs = poke(x2, idx, v)
                add(f"ce_{sn}_{where}_ls{ls}", "cross_entropy",
                    lambda x, red: F.cross_entropy(x, t2, weight=w3, reduction=red, label_smoothing=ls), xs, t2,
                    weight=w3, label_smoothing=ls)
            lp = poke(torch.log_softmax(x2, 1), idx, v)
            add(f"nll_{sn}_{where}", "nll_loss", lambda x, red: F.nll_loss(x, t2, weight=w3, reduction=red), lp, t2,
                weight=w3)
        for where, idx in [("pixel", 4 + 1), ("ignored_pixel", 3), ("ignored_pixel_c2", 2 * 4 + 3)]:
            for ls in [0.0, 0.1]:
                xs = poke(x4, idx, v)
                add(f"ce4_{sn}_{where}_ls{ls}", "cross_entropy",
                    lambda x, red: F.cross_entropy(x, t4, ignore_index=255, reduction=red, label_smoothing=ls), xs,
                    t4, ignore_index=255, label_smoothing=ls)
            lp = poke(torch.log_softmax(x4, 1), idx, v)
            add(f"nll4_{sn}_{where}", "nll_loss", lambda x, red: F.nll_loss(x, t4, ignore_index=255, reduction=red),
                lp, t4, ignore_index=255)
        # all logits of a row the same special
        xs = x2.clone()
        xs[1] = v
        add(f"ce_{sn}_whole_row", "cross_entropy", lambda x, red: F.cross_entropy(x, t2, reduction=red), xs, t2)
        # weights: of a used class (2) and of a class no target uses (1 is used by row 2: use targets without it)
        t_no1 = torch.tensor([0, 2, 0, 2])
        for where, c in [("used", 2), ("unused", 1)]:
            ws = poke(w3, c, v)
            for ls in [0.0, 0.1]:
                add(f"ce_weight_{sn}_{where}_ls{ls}", "cross_entropy",
                    lambda x, red: F.cross_entropy(x, t_no1, weight=ws, reduction=red, label_smoothing=ls), x2, t_no1,
                    weight=ws, label_smoothing=ls)
            add(f"nll_weight_{sn}_{where}", "nll_loss",
                lambda x, red: F.nll_loss(x, t_no1, weight=ws, reduction=red), torch.log_softmax(x2, 1), t_no1,
                weight=ws)
        ws = poke(torch.ones(3), 1, v)
        t4u = torch.tensor([[[0, 2], [0, 255]], [[2, 2], [0, 255]]])
        add(f"ce4_weight_{sn}_unused", "cross_entropy",
            lambda x, red: F.cross_entropy(x, t4u, weight=ws, ignore_index=255, reduction=red), x4, t4u, weight=ws,
            ignore_index=255)
        # the case: weight [NaN, 1], every target 1
        if sn == "nan":
            xb = torch.randn(3, 2)
            tb = torch.tensor([1, 1, 1])
            add("ce_issue_weight_nan_1", "cross_entropy",
                lambda x, red: F.cross_entropy(x, tb, weight=torch.tensor([v, 1.0]), reduction=red), xb, tb,
                weight=torch.tensor([v, 1.0]))
        # probability targets: special in the input or in the target
        tp = torch.softmax(torch.randn(4, 3), 1)
        add(f"ce_prob_{sn}_input", "cross_entropy", lambda x, red: F.cross_entropy(x, tp, reduction=red),
            poke(x2, 4, v), tp)
        tps = poke(tp, 4, v)
        add(f"ce_prob_{sn}_target", "cross_entropy", lambda x, red: F.cross_entropy(x, tps, reduction=red), x2, tps)

    # elementwise and row losses: input (3,4), float target, optional weight
    xr = torch.randn(3, 4) * 2
    yr = torch.randn(3, 4) * 2
    pr = torch.rand(3, 4) * 0.8 + 0.1
    yb = (torch.rand(3, 4) > 0.5).float()
    ys = torch.where(torch.rand(3, 4) > 0.5, 1.0, -1.0)
    wr = torch.rand(4) + 0.5
    lpr = torch.log_softmax(torch.randn(3, 4), 1)
    ypr = torch.softmax(torch.randn(3, 4), 1)

    # (fn, x, y, extra opts, call(x, y, w, red), weight or None)
    table = [
        ("bce", pr, yb, {}, lambda x, y, w, red: F.binary_cross_entropy(x, y, weight=w, reduction=red), wr),
        ("bce_logits", xr, yb, {}, lambda x, y, w, red: F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=red), wr),
        ("soft_margin", xr, ys, {}, lambda x, y, w, red: F.soft_margin_loss(x, y, reduction=red), None),
        ("multilabel_soft_margin", xr, yb, {},
         lambda x, y, w, red: F.multilabel_soft_margin_loss(x, y, weight=w, reduction=red), wr),
        ("focal", xr, yb, {"alpha": 0.25, "gamma": 2.0}, lambda x, y, w, red: focal(x, y, reduction=red), None),
        ("mse", xr, yr, {}, lambda x, y, w, red: F.mse_loss(x, y, reduction=red), None),
        ("l1", xr, yr, {}, lambda x, y, w, red: F.l1_loss(x, y, reduction=red), None),
        ("smooth_l1", xr, yr, {"beta": 1.0}, lambda x, y, w, red: F.smooth_l1_loss(x, y, reduction=red, beta=1.0), None),
        ("smooth_l1", xr, yr, {"beta": 0.0}, lambda x, y, w, red: F.smooth_l1_loss(x, y, reduction=red, beta=0.0), None),
        ("huber", xr, yr, {"delta": 1.0}, lambda x, y, w, red: F.huber_loss(x, y, reduction=red, delta=1.0), None),
        ("kl_div", lpr, ypr, {"log_target": False}, lambda x, y, w, red: F.kl_div(x, y, reduction=red), None),
        ("kl_div", lpr, torch.log(ypr), {"log_target": True},
         lambda x, y, w, red: F.kl_div(x, y, reduction=red, log_target=True), None),
    ]
    for fn, x, y, extra, call, w in table:
        tag = fn + "".join(f"_{k}{v}" for k, v in extra.items())
        for sn, v in SPECIALS:
            places = [("input", poke(x, 5, v), y, w), ("target", x, poke(y, 5, v), w)]
            if w is not None:
                places.append(("weight", x, y, poke(w, 1, v)))
            for where, xs, ys_, ws in places:
                add(f"{tag}_{sn}_{where}", fn, lambda x, red, ys_=ys_, ws=ws, call=call: call(x, ys_, ws, red), xs, ys_,
                    weight=ws, **extra)
        if fn == "bce_logits":
            for sn, v in SPECIALS:
                pw = poke(torch.rand(4) + 0.5, 1, v)
                add(f"bce_logits_{sn}_pos_weight", fn,
                    lambda x, red, pw=pw: F.binary_cross_entropy_with_logits(x, yb, pos_weight=pw, reduction=red),
                    xr, yb, pos_weight=pw)

    # dice: a special logit (softmax and sigmoid heads)
    for C in [1, 2]:
        xd = torch.randn(2, C, 2, 3)
        td = torch.randint(0, 2, (2, 2, 3))
        for sn, v in SPECIALS:
            cases.append(case(f"dice_C{C}_{sn}", "dice", lambda x: dice(x, td), poke(xd, 4, v), td))
    write("nonfinite", cases)


if __name__ == "__main__":
    gen_ce()
    gen_binary()
    gen_regression()
    gen_nonfinite()
