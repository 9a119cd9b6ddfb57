#!/usr/bin/python3
"""Random cases for every loss losslab knows, with PyTorch 1.13's answers.

  /usr/bin/python3 tests/gen_losslab_cases.py
      writes tests/fixtures/losslab_cases.jsonl (losslab --jsonl input) and
      tests/fixtures/losslab_expected.jsonl ({"id", "loss", "grad"} from torch; bare NaN/Infinity),
      read by tests/test_losslab.c.
  /usr/bin/python3 tests/gen_losslab_cases.py --check build/bin/losslab [--seed N] [--per-loss K]
      draws FRESH random cases, runs losslab on them and compares (loss: 1e-5 relative + 1e-5
      absolute; gradients: 1e-4 relative + 1e-5 absolute); exit status 1 on any mismatch.

Gradients are those of sum(loss) with respect to every float tensor argument except targets.
sigmoid_focal_loss is written out as torchvision defines it; dice_loss as ops/loss.h defines it.
"""
import json
import math
import os
import random
import re
import subprocess
import sys

import torch
import torch.nn.functional as F
from fixture_util import dice, focal

HERE = os.path.dirname(os.path.abspath(__file__))


def red(r, extra=()):
    return r.choice(["mean", "sum", "none"] + list(extra))


def shape(r, lo=1, hi=3):
    return tuple(r.randint(2, 4) for _ in range(r.randint(lo, hi)))


def make(name, r):
    """One random case: (tensor args dict, options dict, int arg names)."""
    g = torch.Generator().manual_seed(r.randrange(1 << 30))
    rn = lambda *s: torch.randn(*s, generator=g)
    ru = lambda *s: torch.rand(*s, generator=g)
    ri = lambda lo, hi, s: torch.randint(lo, hi, s, generator=g)
    o = {}
    if name == "binary_cross_entropy":
        s = shape(r)
        a = {"input": ru(s) * 0.9 + 0.05, "target": ru(s)}
        if r.random() < 0.5:
            o["weight"] = ru(s[-1:]) + 0.2
    elif name == "binary_cross_entropy_with_logits":
        s = shape(r)
        a = {"input": rn(s) * 4, "target": (ru(s) > 0.5).float()}
        if r.random() < 0.5:
            o["weight"] = ru(s[-1:]) + 0.2
        if r.random() < 0.5:
            o["pos_weight"] = ru(s[-1:]) * 3 + 0.1
    elif name in ("cross_entropy", "nll_loss"):
        N, C = r.randint(1, 3), r.randint(2, 4)
        s = (N, C) + tuple(r.randint(1, 3) for _ in range(r.randint(0, 2)))
        x = rn(s) * 3
        prob = name == "cross_entropy" and r.random() < 0.3
        if prob:
            t = torch.softmax(rn(s), dim=1)
        else:
            t = ri(0, C, (N,) + s[2:])
            if r.random() < 0.5:
                o["ignore_index"] = r.choice([255, 0, 1])
                if o["ignore_index"] == 255:
                    t[ru(t.shape) < 0.3] = 255
        if name == "nll_loss":
            x = torch.log_softmax(x, dim=1)
        if r.random() < 0.5:
            o["weight"] = ru(C) + 0.2
        if name == "cross_entropy" and r.random() < 0.5:
            o["label_smoothing"] = r.choice([0.1, 0.25, 1.0])
        a = {"input": x, "target": t}
    elif name == "kl_div":
        s = (r.randint(1, 3), r.randint(2, 5))
        lt = r.random() < 0.5
        y = torch.softmax(rn(s), 1)
        a = {"input": torch.log_softmax(rn(s), 1), "target": torch.log(y) if lt else y}
        o["log_target"] = lt
        o["reduction"] = red(r, ["batchmean"])
    elif name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        s = shape(r)
        a = {"input": rn(s) * 2, "target": rn(s) * 2}
        if name == "smooth_l1_loss":
            o["beta"] = r.choice([1.0, 0.5, 2.0])
        if name == "huber_loss":
            o["delta"] = r.choice([1.0, 0.5, 2.0])
    elif name == "soft_margin_loss":
        s = shape(r)
        a = {"input": rn(s) * 2, "target": torch.where(ru(s) > 0.5, 1.0, -1.0)}
    elif name == "multilabel_soft_margin_loss":
        s = (r.randint(1, 4), r.randint(2, 5))
        a = {"input": rn(s) * 3, "target": (ru(s) > 0.5).float()}
        if r.random() < 0.5:
            o["weight"] = ru(s[1]) + 0.2
    elif name == "multi_margin_loss":
        N, C = r.randint(1, 4), r.randint(2, 5)
        a = {"input": rn(N, C), "target": ri(0, C, (N,))}
        o["p"] = r.choice([1, 2])
        o["margin"] = r.choice([1.0, 0.5, 2.0])
        if r.random() < 0.5:
            o["weight"] = ru(C) + 0.2
    elif name == "multilabel_margin_loss":
        N, C = r.randint(1, 3), r.randint(3, 5)
        t = torch.full((N, C), -1, dtype=torch.int64)
        for n in range(N):
            k = r.randint(1, C - 1)
            t[n, :k] = torch.tensor(r.sample(range(C), k))
        a = {"input": rn(N, C), "target": t}
    elif name == "hinge_embedding_loss":
        s = shape(r)
        a = {"input": rn(s) * 2, "target": torch.where(ru(s) > 0.5, 1.0, -1.0)}
        o["margin"] = r.choice([1.0, 0.5, 2.0])
    elif name in ("cosine_embedding_loss", "margin_ranking_loss"):
        N, D = r.randint(1, 4), r.randint(2, 5)
        s = (N, D) if name[0] == "c" else (N,)
        a = {"input1": rn(s), "input2": rn(s), "target": torch.where(ru(N) > 0.5, 1.0, -1.0)}
        o["margin"] = r.choice([0.0, 0.3, -0.2])
    elif name == "triplet_margin_loss":
        s = (r.randint(1, 4), r.randint(2, 5))
        a = {"anchor": rn(s), "positive": rn(s), "negative": rn(s)}
        o.update(margin=r.choice([1.0, 0.5]), p=r.choice([2.0, 1.0, 3.0]), eps=1e-6, swap=r.random() < 0.5)
    elif name == "poisson_nll_loss":
        s = shape(r)
        li = r.random() < 0.5
        a = {"input": rn(s) if li else ru(s) * 3 + 0.1, "target": torch.poisson(ru(s) * 4, generator=g)}
        o.update(log_input=li, full=r.random() < 0.5)
    elif name == "gaussian_nll_loss":
        s = shape(r, 2, 3)
        a = {"input": rn(s), "target": rn(s), "var": ru(s) + 0.1}
        o["full"] = r.random() < 0.5
    elif name == "ctc_loss":
        T, N, C, S = r.randint(6, 9), r.randint(1, 3), r.randint(3, 5), r.randint(1, 3)
        tl = torch.tensor([r.randint(1, S) for _ in range(N)])
        a = {"log_probs": torch.log_softmax(rn(T, N, C), 2), "targets": ri(1, C, (N, S)),
             "input_lengths": torch.tensor([r.randint(T - 2, T) for _ in range(N)]), "target_lengths": tl}
        o["zero_infinity"] = r.random() < 0.5
    elif name == "sigmoid_focal_loss":
        s = shape(r)
        a = {"input": rn(s) * 3, "target": (ru(s) > 0.6).float()}
        o.update(alpha=r.choice([0.25, -1.0, 0.7]), gamma=r.choice([2.0, 0.0, 1.5]))
        o["reduction"] = red(r)
    elif name == "dice_loss":
        N, C = r.randint(1, 2), r.choice([1, 2, 3])
        a = {"input": rn(N, C, 3, 4) * 2, "target": ri(0, max(C, 2), (N, 3, 4))}
        if r.random() < 0.5:
            o["ignore_index"] = 255
            a["target"][ru(N, 3, 4) < 0.2] = 255
    else:
        raise ValueError(name)
    if "reduction" not in o and name != "dice_loss" and r.random() < 0.8:
        o["reduction"] = red(r)
    return a, o


def torch_loss(name, args, o):
    """PyTorch's loss `name` of the tensors args with options o (a list becomes a tensor of the inputs' dtype).
    Also losslab_vs_torch.py's reference for a loss it has no generator of its own for."""
    if name == "sigmoid_focal_loss":
        return focal(args["input"], args["target"], **o)
    if name == "dice_loss":
        return dice(args["input"], args["target"], **o)
    dtype = next((v.dtype for v in args.values() if v.is_floating_point()), torch.float32)
    kw = {k: (torch.tensor(v, dtype=dtype) if isinstance(v, list) else v) for k, v in o.items()}
    return getattr(F, name)(**args, **kw)


def torch_answer(name, a, o):
    grads = {k: v.clone().requires_grad_(True) for k, v in a.items()
             if v.is_floating_point() and k not in ("target", "targets")}
    args = {k: grads.get(k, v) for k, v in a.items()}
    out = torch_loss(name, args, o)
    out.sum().backward()
    return out, {k: v.grad if v.grad is not None else torch.zeros_like(v) for k, v in grads.items()}


def listed_losses():
    """The losses of ops/op_list.h (kind LOSS), in its order: losslab has a table entry for each."""
    with open(os.path.join(HERE, "..", "ops", "op_list.h")) as f:
        return re.findall(r"X\((\w+),\s*\w+,\s*LOSS,", f.read())


LOSSES = listed_losses()


def generate(seed, per_loss):
    r = random.Random(seed)
    torch.manual_seed(seed)
    cases, answers = [], []
    for name in LOSSES:
        for k in range(per_loss):
            a, o = make(name, r)
            out, grads = torch_answer(name, a, o)
            cid = f"{name}-{k}"
            opts = {k2: (v.tolist() if isinstance(v, torch.Tensor) else v) for k2, v in o.items()}
            cases.append(json.dumps({"id": cid, "loss": name, **{k2: v.tolist() for k2, v in a.items()}, "options": opts}))
            answers.append(json.dumps({"id": cid, "loss": out.detach().tolist(),
                                       "grad": {k2: v.tolist() for k2, v in grads.items()}}))
    return cases, answers


def flat(x):
    if isinstance(x, list):
        return [y for v in x for y in flat(v)]
    return [x]


def close(a, e, rtol, atol):
    a, e = flat(a), flat(e)
    if len(a) != len(e):
        return False
    for x, y in zip(a, e):
        if isinstance(y, float) and math.isnan(y):
            if not (isinstance(x, float) and math.isnan(x)):
                return False
        elif isinstance(y, float) and math.isinf(y):
            if x != y:
                return False
        elif not abs(x - y) <= atol + rtol * abs(y):
            return False
    return True


def check(binary, seed, per_loss):
    cases, answers = generate(seed, per_loss)
    res = subprocess.run([binary, "--jsonl"], input="\n".join(cases) + "\n", capture_output=True, text=True, check=True)
    got = res.stdout.strip().split("\n")
    bad = 0
    if len(got) != len(cases):
        print(f"{len(got)} result lines for {len(cases)} cases")
        return 1
    for line, ans in zip(got, answers):
        g, e = json.loads(line), json.loads(ans)
        ok = "error" not in g and g["id"] == e["id"] and close(g["loss"], e["loss"], 1e-5, 1e-5)
        ok = ok and set(g["grad"]) == set(e["grad"])
        ok = ok and all(close(g["grad"][k], e["grad"][k], 1e-4, 1e-5) for k in e["grad"])
        if not ok:
            bad += 1
            print("MISMATCH", e["id"], "\n  losslab:", line[:300], "\n  torch:  ", ans[:300])
    print(f"seed {seed}: {len(cases) - bad}/{len(cases)} cases agree with PyTorch {torch.__version__}")
    return 1 if bad else 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else None
    per = int(argv[argv.index("--per-loss") + 1]) if "--per-loss" in argv else 6
    if "--check" in argv:
        sys.exit(check(argv[argv.index("--check") + 1], seed if seed is not None else random.randrange(1 << 30), per))
    cases, answers = generate(seed if seed is not None else 2024, per)
    out = os.path.join(HERE, "fixtures")
    with open(os.path.join(out, "losslab_cases.jsonl"), "w") as f:
        f.write("\n".join(cases) + "\n")
    with open(os.path.join(out, "losslab_expected.jsonl"), "w") as f:
        f.write("\n".join(answers) + "\n")
    print(f"{len(cases)} cases written")
