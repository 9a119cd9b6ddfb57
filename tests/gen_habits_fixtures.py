#!/usr/bin/python3
"""Golden values for tests/test_habits_optim.c from PyTorch 1.13 (Debian python3-torch):
frozen parameters under SGD (momentum, dampening) and AdamW, two parameter groups with two
learning rates under a schedule, clip_grad_norm_ and clip_grad_value_. Run from the
repository root:
    /usr/bin/python3 tests/gen_habits_fixtures.py
Writes tests/fixtures/nn_habits.json."""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
STEPS = 6


def tolist(t):
    return t.detach().double().tolist()


def make_opt(kind, params, kw):
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
    return cls(params, **kw)


def plain(kw):
    o = dict(kw)
    if "betas" in o:
        o["beta1"], o["beta2"] = o.pop("betas")
    return o


def main():
    g = torch.Generator().manual_seed(12)
    p0 = torch.randn(3, 4, generator=g)
    p1 = torch.randn(5, generator=g)
    grads = [(torch.randn(3, 4, generator=g), torch.randn(5, generator=g)) for _ in range(STEPS)]

    # p1 frozen (grad None, as requires_grad=False gives) on the steps marked True
    frozen_cases = []
    for name, kind, kw, frozen in [
        ("sgd_momentum_p1_frozen", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.05), [True] * STEPS),
        ("sgd_dampening_p1_unfrozen_late", "sgd", dict(lr=0.1, momentum=0.9, dampening=0.4, weight_decay=0.05),
         [True, True, False, False, True, False]),
        ("adamw_p1_frozen", "adamw", dict(lr=0.01, weight_decay=0.1), [True] * STEPS),
        ("adamw_p1_unfrozen_late", "adamw", dict(lr=0.01, weight_decay=0.1), [True, True, True, False, False, False]),
        ("adam_amsgrad_p1_frozen_mid", "adam", dict(lr=0.02, weight_decay=0.01, amsgrad=True),
         [False, True, True, False, False, False]),
    ]:
        a = p0.clone().requires_grad_()
        b = p1.clone().requires_grad_()
        opt = make_opt(kind, [a, b], kw)
        steps = []
        for (ga, gb), fr in zip(grads, frozen):
            a.grad = ga.clone()
            b.grad = None if fr else gb.clone()
            opt.step()
            steps.append({"p0": tolist(a), "p1": tolist(b)})
        frozen_cases.append({"name": name, "kind": kind, "opts": plain(kw), "p1_frozen": frozen, "steps": steps})

    # two groups: p0 in the default group, p1 in a group with its own options; a schedule over both
    group_cases = []
    S = torch.optim.lr_scheduler
    for name, kind, kw, g1, sched, make in [
        ("sgd_two_lrs_steplr", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=0.01),
         dict(lr=0.02, weight_decay=0.0, momentum=0.5), dict(kind="step", step_size=2, gamma=0.5),
         lambda o: S.StepLR(o, step_size=2, gamma=0.5)),
        ("adamw_two_lrs_cosine", "adamw", dict(lr=0.01, weight_decay=0.1),
         dict(lr=0.05, weight_decay=0.0, betas=(0.8, 0.99)), dict(kind="cosine", t_max=4, eta_min=0.001),
         lambda o: S.CosineAnnealingLR(o, T_max=4, eta_min=0.001)),
    ]:
        a = p0.clone().requires_grad_()
        b = p1.clone().requires_grad_()
        opt = make_opt(kind, [{"params": [a]}, dict(params=[b], **g1)], kw)
        s = make(opt)
        steps = []
        for ga, gb in grads:
            a.grad = ga.clone()
            b.grad = gb.clone()
            opt.step()
            s.step()
            steps.append({"p0": tolist(a), "p1": tolist(b), "lr0": opt.param_groups[0]["lr"],
                          "lr1": opt.param_groups[1]["lr"]})
        group_cases.append({"name": name, "kind": kind, "opts": plain(kw), "group1": plain(g1), "sched": sched,
                            "steps": steps})

    # clipping: gradients of p0 and p1 (and a frozen p2 whose grad is None: left out)
    clip_cases = []
    for max_norm in (1.0, 3.0, 100.0, 0.0):
        a = p0.clone().requires_grad_()
        b = p1.clone().requires_grad_()
        c = torch.zeros(2, requires_grad=True)
        a.grad = grads[0][0].clone()
        b.grad = grads[0][1].clone()
        total = torch.nn.utils.clip_grad_norm_([a, b, c], max_norm)
        clip_cases.append({"max_norm": max_norm, "total": float(total), "p0": tolist(a.grad), "p1": tolist(b.grad)})
    a = p0.clone().requires_grad_()
    b = p1.clone().requires_grad_()
    a.grad = grads[1][0].clone()
    b.grad = grads[1][1].clone()
    torch.nn.utils.clip_grad_value_([a, b], 0.7)
    clip_value = {"clip_value": 0.7, "p0": tolist(a.grad), "p1": tolist(b.grad)}

    out = {"p0": tolist(p0), "p1": tolist(p1), "grads": [{"p0": tolist(x), "p1": tolist(y)} for x, y in grads],
           "frozen": frozen_cases, "groups": group_cases, "clip_norm": clip_cases, "clip_value": clip_value}
    with open(os.path.join(OUT, "nn_habits.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("wrote nn_habits.json")


if __name__ == "__main__":
    main()
