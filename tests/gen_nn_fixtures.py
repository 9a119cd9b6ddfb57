#!/usr/bin/python3
"""Golden values for tests/test_optim.c, test_sched.c, test_safetensors.c, test_layers.c,
from PyTorch 1.13 (Debian python3-torch). Run from the repository root:
    /usr/bin/python3 tests/gen_nn_fixtures.py
Writes tests/fixtures/nn_optim.json, nn_sched.json, nn_seq.json and torch_seq.safetensors."""
import json
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def tolist(t):
    return t.detach().double().tolist()


def dump(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=1)
    print("wrote", name)


# ---- optimizers: two parameters (3,4) and (4,), 5 steps with fixed gradients ----
def optim_cases():
    g = torch.Generator().manual_seed(1)
    p0 = torch.randn(3, 4, generator=g)
    p1 = torch.randn(4, generator=g)
    grads = [(torch.randn(3, 4, generator=g), torch.randn(4, generator=g)) for _ in range(5)]
    configs = [
        ("sgd", "sgd", dict(lr=0.1), False),
        ("sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9), False),
        ("sgd_dampening_wd", "sgd", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), False),
        ("sgd_nesterov_wd", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05), False),
        ("sgd_nesterov_nodecay_1d", "sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05), True),
        ("adam", "adam", dict(lr=0.01), False),
        ("adam_wd_amsgrad", "adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True), False),
        ("adamw", "adamw", dict(lr=0.01, weight_decay=0.1), False),
        ("adamw_amsgrad", "adamw", dict(lr=0.02, betas=(0.85, 0.995), weight_decay=0.2, amsgrad=True), False),
        ("adamw_nodecay_1d", "adamw", dict(lr=0.01, weight_decay=0.1), True),
    ]
    cases = []
    for name, kind, kw, nodecay in configs:
        a = p0.clone().requires_grad_()
        b = p1.clone().requires_grad_()
        cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]
        if nodecay:
            opt = cls([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], **kw)
        else:
            opt = cls([a, b], **kw)
        steps = []
        for ga, gb in grads:
            a.grad = ga.clone()
            b.grad = gb.clone()
            opt.step()
            steps.append({"p0": tolist(a), "p1": tolist(b)})
        opts = dict(kw)
        if "betas" in opts:
            opts["beta1"], opts["beta2"] = opts.pop("betas")
        cases.append({"name": name, "kind": kind, "opts": opts, "no_decay_1d": nodecay, "steps": steps})
    dump("nn_optim.json", {"p0": tolist(p0), "p1": tolist(p1),
                           "grads": [{"p0": tolist(x), "p1": tolist(y)} for x, y in grads], "cases": cases})


# ---- LR schedules: lr after construction and after each of n steps ----
def create_lr_scheduler(optimizer, num_step, epochs, warmup=True, warmup_epochs=1, warmup_factor=1e-3):
    """The reference UNet training's schedule (WZMIAOMIAO deep-learning-for-image-processing)."""
    if warmup is False:
        warmup_epochs = 0

    def f(x):
        if warmup is True and x <= (warmup_epochs * num_step):
            alpha = float(x) / (warmup_epochs * num_step)
            return warmup_factor * (1 - alpha) + alpha
        return (1 - (x - warmup_epochs * num_step) / ((epochs - warmup_epochs) * num_step)) ** 0.9

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=f)


def sched_cases():
    S = torch.optim.lr_scheduler
    specs = [
        ("step", dict(step_size=3, gamma=0.5), lambda o: S.StepLR(o, step_size=3, gamma=0.5), 12),
        ("multistep", dict(milestones=[2, 5, 6], gamma=0.1), lambda o: S.MultiStepLR(o, [2, 5, 6], gamma=0.1), 10),
        ("cosine", dict(t_max=7, eta_min=0.001), lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.001), 7),
        ("cosine_past_tmax", dict(t_max=5, eta_min=0.0), lambda o: S.CosineAnnealingLR(o, T_max=5), 12),
        ("exponential", dict(gamma=0.9), lambda o: S.ExponentialLR(o, gamma=0.9), 10),
        ("warmup_poly", dict(warmup_steps=4, total_steps=20, warmup_factor=1e-3, power=0.9),
         lambda o: create_lr_scheduler(o, num_step=4, epochs=5), 20),
        ("poly_no_warmup", dict(warmup_steps=0, total_steps=20, warmup_factor=1e-3, power=0.9),
         lambda o: create_lr_scheduler(o, num_step=4, epochs=5, warmup=False), 20),
    ]
    cases = []
    for name, args, make, n in specs:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        s = make(opt)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(n):
            opt.step()
            s.step()
            lrs.append(opt.param_groups[0]["lr"])
        cases.append({"name": name, "base_lr": 0.1, "args": args, "lrs": lrs})
    dump("nn_sched.json", {"cases": cases})


# ---- a small Conv-BN-ReLU-Conv model: state_dict as safetensors + forward values ----
def seq_model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    with torch.no_grad():
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-0.5, 0.5)
    m.train()
    for _ in range(2):  # running stats and num_batches_tracked move away from their initial values
        m(torch.randn(2, 3, 5, 5))
    state = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    safetensors_py.save(os.path.join(OUT, "torch_seq.safetensors"), state, {"format": "pt", "made_by": "torch"})
    print("wrote torch_seq.safetensors", list(state))
    x = torch.randn(2, 3, 5, 5)
    m.eval()
    with torch.no_grad():
        y_eval = m(x)
    m.train()
    with torch.no_grad():
        y_train = m(x)
    lin = nn.Linear(5, 3)
    xl = torch.randn(4, 5)
    with torch.no_grad():
        yl = lin(xl)
    dump("nn_seq.json", {"linear": {"weight": tolist(lin.weight), "bias": tolist(lin.bias), "x": tolist(xl),
                                    "y": tolist(yl)},
                         "x": tolist(x), "y_eval": tolist(y_eval), "y_train": tolist(y_train),
                         "running_mean_after": tolist(m[1].running_mean),
                         "running_var_after": tolist(m[1].running_var),
                         "num_batches_tracked_after": int(m[1].num_batches_tracked)})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    optim_cases()
    sched_cases()
    seq_model()
