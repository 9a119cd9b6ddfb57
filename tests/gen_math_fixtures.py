#!/usr/bin/python3
"""Golden values for the elementwise, activation, softmax and reduction ops.

Writes tests/fixtures/math_ops.json with PyTorch (checked with 1.13):
    {"torch_version": ..., "cases": [{"name", "op", "args", "inputs": [...],
      "out", "gout", "grads": [...]}]}
`gout` is a random upstream gradient; `grads` are the inputs' gradients for
out.backward(gout) (absent for argmax). Non-finite numbers are the strings
"NaN", "Infinity", "-Infinity".

Max/min over several dims (or all) send the gradient to the FIRST extreme
element in row-major order of each reduced slice (as torch.max(dim) does for
one dim); torch.amax would split it among ties, so those cases are built from
a permute + flatten + max(dim=-1).

Run: /usr/bin/python3 tests/gen_math_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F

import fixture_util

torch.manual_seed(1234)
CASES = []


def enc(v):
    return fixture_util.enc(v, "f32")  # shortest text that reads back as the same float32


def t2j(t):
    return enc(t.detach().tolist())


def add(name, op, fn, inputs, args=None, grad=True):
    xs = [x.detach().clone().float().requires_grad_(grad) for x in inputs]
    out = fn(*xs)
    case = {"name": name, "op": op, "args": {k: enc(v) for k, v in (args or {}).items()}, "inputs": [t2j(x) for x in xs], "out": t2j(out)}
    if grad:
        gout = torch.randn(out.shape)
        out.backward(gout)
        case["gout"] = t2j(gout)
        case["grads"] = [t2j(x.grad if x.grad is not None else torch.zeros_like(x)) for x in xs]
    CASES.append(case)


def randn(*s, scale=1.0):
    return torch.randn(tuple(s)) * scale


def positive(*s):
    return torch.rand(tuple(s)) + 0.5


# ---- binary, broadcasting ----
binops = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
shapes = [
    ((2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (3, 1)),
    ((4,), (2, 3, 4)),
    ((2, 1, 4), (1, 3, 1)),
    ((3, 1), (1, 4)),
    ((2, 3, 4, 5), (3, 1, 1)),   # a per-channel bias against NCHW
    ((5, 6), (6,)),              # a trailing row vector
    ((2, 3), ()),                # a 0-dim operand
    ((), (2, 3)),
    ((1, 3, 1), (2, 1, 1, 5)),
]
for op, fn in binops.items():
    for sa, sb in shapes:
        a = randn(*sa)
        b = positive(*sb) * torch.sign(randn(*sb)) if op == "div" else randn(*sb)
        if op == "div" and len(sb) == 0:
            b = torch.tensor(1.7)
        add(f"{op} {sa}x{sb}", op, fn, [a, b])

add("add_scalar", "add_scalar", lambda x: x + 2.5, [randn(3, 4)], {"s": 2.5})
add("mul_scalar", "mul_scalar", lambda x: x * -1.5, [randn(3, 4)], {"s": -1.5})

# ---- unary ----
add("neg", "neg", torch.neg, [randn(3, 4)])
add("exp", "exp", torch.exp, [torch.tensor([-110.0, -100.0, -87.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 10.0,
                                            80.0, 88.0, 88.7, 89.0, 100.0, float("inf"), float("-inf"),
                                            float("nan")])], grad=False)
add("exp grad", "exp", torch.exp, [randn(2, 3, 4, scale=3.0)])
add("log", "log", torch.log, [positive(3, 4)])
add("log special", "log", torch.log, [torch.tensor([0.0, -1.0, 1e-30, float("inf")])], grad=False)
add("sqrt", "sqrt", torch.sqrt, [positive(3, 4)])
for p in [2.0, 3.0, 0.5, -1.0, 1.5, 0.0, 1.0]:
    add(f"pow {p}", "pow", lambda x, p=p: torch.pow(x, p), [positive(2, 5)], {"p": p})
add("abs", "abs", torch.abs, [torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0, 0.0])])
add("clamp", "clamp", lambda x: torch.clamp(x, -0.5, 0.5),
    [torch.tensor([-1.0, -0.5, -0.2, 0.0, 0.5, 0.7, 2.0])], {"lo": -0.5, "hi": 0.5})
add("clamp min only", "clamp", lambda x: torch.clamp(x, min=0.0), [randn(3, 4)],
    {"lo": 0.0, "hi": float("inf")})
add("clamp lo>hi", "clamp", lambda x: torch.clamp(x, 1.0, -1.0), [randn(6)], {"lo": 1.0, "hi": -1.0})

# ---- activations ----
extreme = torch.tensor([-200.0, -100.0, -30.0, -20.0, -1.0, 0.0, 1e-4, 1.0, 19.9, 20.0, 20.1, 30.0, 100.0, 200.0])
add("relu", "relu", torch.relu, [torch.tensor([-2.0, -0.0, 0.0, 0.5, 3.0, -1e-8])])
add("relu grad", "relu", torch.relu, [randn(3, 4)])
add("leaky_relu", "leaky_relu", lambda x: F.leaky_relu(x, 0.1), [torch.tensor([-2.0, 0.0, 0.5, -0.5, 3.0])],
    {"slope": 0.1})
add("sigmoid", "sigmoid", torch.sigmoid, [extreme])
add("sigmoid grad", "sigmoid", torch.sigmoid, [randn(3, 4, scale=3.0)])
add("tanh", "tanh", torch.tanh, [torch.cat([extreme, torch.tensor([1e-6, -3e-3, 0.3, -0.6])])])
add("softplus", "softplus", F.softplus, [extreme], {"beta": 1.0, "threshold": 20.0})
add("softplus beta2 th5", "softplus", lambda x: F.softplus(x, beta=2.0, threshold=5.0),
    [torch.tensor([-200.0, -3.0, 0.0, 1.0, 2.4, 2.5, 2.6, 10.0, 100.0])], {"beta": 2.0, "threshold": 5.0})
add("softplus grad", "softplus", lambda x: F.softplus(x, beta=0.5, threshold=3.0), [randn(3, 4, scale=4.0)],
    {"beta": 0.5, "threshold": 3.0})

for fname, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    logits = torch.tensor([[200.0, -200.0, 0.0], [100.0, -100.0, 0.0], [-200.0, -200.0, -200.0],
                           [1.0, 2.0, 3.0]])
    for dim in [-1, 0]:
        add(f"{fname} extreme dim{dim}", fname, lambda x, d=dim: fn(x, dim=d), [logits], {"dim": dim})
    x = randn(2, 3, 4, scale=3.0)
    for dim in [0, 1, -1, 2, -3]:
        add(f"{fname} 3d dim{dim}", fname, lambda x, d=dim: fn(x, dim=d), [x], {"dim": dim})
    add(f"{fname} tiles", fname, lambda x: fn(x, dim=1), [randn(1, 3, 520, scale=2.0)], {"dim": 1})
    add(f"{fname} long row", fname, lambda x: fn(x, dim=-1), [randn(3, 37, scale=5.0)], {"dim": -1})
    add(f"{fname} 0-dim", fname, lambda x: fn(x, dim=0), [torch.tensor(3.0)], {"dim": 0})

# ---- reductions ----


def first_extreme(x, dims, keepdim, mode):
    nd = x.dim()
    dims = sorted(d % nd for d in dims) if dims else list(range(nd))
    kept = [d for d in range(nd) if d not in dims]
    xp = x.permute(kept + dims).reshape([x.shape[d] for d in kept] + [-1])
    vals, idx = (xp.max(dim=-1) if mode == "max" else xp.min(dim=-1))
    flat = xp.detach().reshape(-1, xp.shape[-1]).numpy()
    ref = flat.argmax(axis=1) if mode == "max" else flat.argmin(axis=1)
    assert (idx.reshape(-1).numpy() == ref).all(), "torch did not pick the first extreme"
    if keepdim:
        vals = vals.reshape([1 if d in dims else x.shape[d] for d in range(nd)])
    return vals


x3 = randn(2, 3, 4)
ties = torch.randint(0, 3, (2, 3, 4)).float()
red_dims = [([1], False), ([0, 2], True), ([-1], False), ([], False), ([], True), ([2, 0], False), ([0], True),
            ([0, 1, 2], False)]
for dims, keep in red_dims:
    d_or_all = dims if dims else list(range(3))
    args = {"dims": dims, "keepdim": keep}
    add(f"sum {dims} keep={keep}", "sum", lambda x: torch.sum(x, dim=d_or_all, keepdim=keep), [x3], args)
    add(f"mean {dims} keep={keep}", "mean", lambda x: torch.mean(x, dim=d_or_all, keepdim=keep), [x3], args)
    for mode in ["max", "min"]:
        add(f"{mode} ties {dims} keep={keep}", mode, lambda x, m=mode: first_extreme(x, dims, keep, m), [ties], args)
        add(f"{mode} {dims} keep={keep}", mode, lambda x, m=mode: first_extreme(x, dims, keep, m), [x3], args)
add("sum cols tiles", "sum", lambda x: torch.sum(x, dim=0), [randn(3, 300)], {"dims": [0], "keepdim": False})
add("sum bias NCHW", "sum", lambda x: torch.sum(x, dim=(0, 2, 3), keepdim=True), [randn(2, 3, 4, 5)],
    {"dims": [0, 2, 3], "keepdim": True})
add("max cols tiles", "max", lambda x: first_extreme(x, [0], False, "max"), [randn(3, 300)],
    {"dims": [0], "keepdim": False})
add("mean 4d mixed", "mean", lambda x: torch.mean(x, dim=(1, 3)), [randn(2, 3, 4, 5)], {"dims": [1, 3], "keepdim": False})
add("sum_all", "sum_all", torch.sum, [randn(3, 5)])
add("mean_all", "mean_all", torch.mean, [randn(3, 5)])
add("sum_all 0-dim", "sum_all", torch.sum, [torch.tensor(2.5)])
add("max nan", "max", lambda x: first_extreme(x, [1], False, "max"),
    [torch.tensor([[1.0, float("nan"), 3.0], [2.0, 5.0, 4.0]])], {"dims": [1], "keepdim": False}, grad=False)
for dim, keep in [(1, False), (-1, True), (0, False)]:
    add(f"argmax ties dim{dim} keep={keep}", "argmax", lambda x, d=dim, k=keep: torch.argmax(x, dim=d, keepdim=k),
        [ties], {"dim": dim, "keepdim": keep}, grad=False)

out = {"torch_version": torch.__version__, "cases": CASES}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "math_ops.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print(f"wrote {len(CASES)} cases to {path}")
