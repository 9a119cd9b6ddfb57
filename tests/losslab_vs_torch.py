#!/usr/bin/python3
"""losslab vs PyTorch: fresh random cases for every loss, run through
`build/bin/losslab --jsonl`, value and every gradient compared with PyTorch
(computed in float64 on the same float32-rounded inputs).

    tests/losslab_vs_torch.py [--n 50] [--seed S] [--bin build/bin/losslab] [-v]

Prints a per-loss table and exits 1 on any mismatch. A tool, not part of the
test suite (it needs python3-torch)."""
import argparse, json, math, os, random, re, subprocess, sys
import warnings
import torch
warnings.filterwarnings("ignore")
import torch.nn.functional as F

VAL_RTOL, VAL_ATOL, GRAD_RTOL, GRAD_ATOL = 1e-5, 1e-5, 1e-4, 1e-5
R = random.Random()

def f32(x):
    return float(torch.tensor(x, dtype=torch.float32))

def tlist(t):
    return t.tolist()

def rnd(shape, scale=1.0, extreme=False):
    t = torch.randn(shape) * scale
    if extreme and t.numel():
        m = torch.rand(shape) < 0.2
        t[m] = torch.tensor([100., -100., 200., -200.])[torch.randint(0, 4, (int(m.sum()),))]
    return t.float()

def red(*extra):
    return R.choice(["mean", "sum", "none"] + list(extra))

def shape(lo=1, hi=3, dmax=4):
    return [R.randint(1, dmax) for _ in range(R.randint(lo, hi))]

# Each generator returns (case args dict of tensors, options dict, torch function(args64, options) -> loss).
def g_bce():
    s = shape()
    x = torch.rand(s)
    x[torch.rand(s) < 0.1] = 0.0
    x[torch.rand(s) < 0.1] = 1.0
    y = torch.rand(s) if R.random() < 0.5 else (torch.rand(s) < 0.5).float()
    # keep x=0,y=1 pairs out of gradient land where torch's -1e12 is still exact but huge: fine either way
    o = {"reduction": red()}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(s[-1]) * 2)
    return {"input": x, "target": y}, o, lambda a, o: F.binary_cross_entropy(a["input"], a["target"], **o)

def g_bce_logits():
    s = shape()
    o = {"reduction": red()}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(s[-1]) * 2)
    if R.random() < 0.5: o["pos_weight"] = tlist(torch.rand(s[-1]) * 3)
    y = torch.rand(s) if R.random() < 0.3 else (torch.rand(s) < 0.5).float()
    return ({"input": rnd(s, 3, True), "target": y}, o,
            lambda a, o: F.binary_cross_entropy_with_logits(a["input"], a["target"], **o))

def class_shapes():
    C = R.randint(2, 5)
    k = R.choice([0, 1, 1, 2, 3])
    if k == 0: return C, [C], []
    N = R.randint(1, 4)
    extra = [R.randint(1, 3) for _ in range(k - 1)]
    return C, [N, C] + extra, [N] + extra

def index_target(C, tshape, o, allow_ignore=True):
    t = torch.randint(0, C, tshape) if tshape else torch.tensor(R.randrange(C))
    if allow_ignore and R.random() < 0.5:
        ig = R.choice([-100, 255, 0, C - 1])
        o["ignore_index"] = ig
        if tshape:
            m = torch.rand(tshape) < (1.0 if R.random() < 0.1 else 0.3)  # sometimes all ignored
            t[m] = ig
    return t

def g_ce():
    C, xs, ts = class_shapes()
    o = {"reduction": red()}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(C) * 2 + 0.1)
    if R.random() < 0.5: o["label_smoothing"] = R.choice([0.1, 0.25, 0.7, 1.0])
    if R.random() < 0.35:
        y = torch.softmax(torch.randn(xs) * 2, dim=1 if len(xs) > 1 else 0)
        return ({"input": rnd(xs, 3, True), "target": y}, o,
                lambda a, o: F.cross_entropy(a["input"], a["target"], **o))
    t = index_target(C, ts, o)
    return ({"input": rnd(xs, 3, True), "target": t}, o,
            lambda a, o: F.cross_entropy(a["input"], a["target"], **o))

def g_nll():
    C, xs, ts = class_shapes()
    o = {"reduction": red()}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(C) * 2 + 0.1)
    t = index_target(C, ts, o)
    return {"input": rnd(xs, 3), "target": t}, o, lambda a, o: F.nll_loss(a["input"], a["target"], **o)

def g_kl():
    s = shape(1, 3)
    o = {"reduction": red("batchmean")}
    x = torch.log_softmax(torch.randn(s), -1)
    y = torch.softmax(torch.randn(s) * 2, -1)
    y[torch.rand(s) < 0.1] = 0.0
    if R.random() < 0.5:
        o["log_target"] = True
        y = torch.log_softmax(torch.randn(s), -1)
    return {"input": x, "target": y}, o, lambda a, o: F.kl_div(a["input"], a["target"], **o)

def simple(fn, extra=None):
    def g():
        s = shape(0, 3)
        o = {"reduction": red()}
        if extra: o.update(extra())
        return {"input": rnd(s, 2), "target": rnd(s, 2)}, o, lambda a, o: fn(a["input"], a["target"], **o)
    return g

def g_soft_margin():
    s = shape()
    y = (torch.rand(s) < 0.5).float() * 2 - 1
    return {"input": rnd(s, 3), "target": y}, {"reduction": red()}, lambda a, o: F.soft_margin_loss(a["input"], a["target"], **o)

def g_ml_soft_margin():
    N, C = R.randint(1, 4), R.randint(1, 5)
    o = {"reduction": red()}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(C) * 2)
    y = (torch.rand(N, C) < 0.5).float()
    return ({"input": rnd([N, C], 3, True), "target": y}, o,
            lambda a, o: F.multilabel_soft_margin_loss(a["input"], a["target"], **o))

def g_multi_margin():
    N, C = R.randint(1, 4), R.randint(2, 5)
    o = {"reduction": red(), "p": R.choice([1, 2]), "margin": R.choice([1.0, 0.5, 2.0])}
    if R.random() < 0.5: o["weight"] = tlist(torch.rand(C) * 2)
    return ({"input": rnd([N, C]), "target": torch.randint(0, C, (N,))}, o,
            lambda a, o: F.multi_margin_loss(a["input"], a["target"], **o))

def g_ml_margin():
    N, C = R.randint(1, 4), R.randint(2, 5)
    t = torch.full((N, C), -1, dtype=torch.long)
    for n in range(N):
        k = R.randint(0, C)
        t[n, :k] = torch.randperm(C)[:k]
        if k < C and R.random() < 0.3: t[n, k + 1:] = torch.randint(0, C, (C - k - 1,))  # junk after -1
    return ({"input": rnd([N, C]), "target": t}, {"reduction": red()},
            lambda a, o: F.multilabel_margin_loss(a["input"], a["target"], **o))

def g_hinge():
    s = shape()
    y = (torch.rand(s) < 0.5).float() * 2 - 1
    o = {"reduction": red(), "margin": R.choice([1.0, 0.5, 2.0])}
    return {"input": rnd(s, 2), "target": y}, o, lambda a, o: F.hinge_embedding_loss(a["input"], a["target"], **o)

def g_cosine():
    N, D = R.randint(1, 4), R.randint(1, 5)
    y = (torch.rand(N) < 0.5).float() * 2 - 1
    o = {"reduction": red(), "margin": R.choice([0.0, 0.3, -0.2])}
    return ({"input1": rnd([N, D]), "input2": rnd([N, D]), "target": y}, o,
            lambda a, o: F.cosine_embedding_loss(a["input1"], a["input2"], a["target"], **o))

def g_ranking():
    N = R.randint(1, 6)
    y = (torch.rand(N) < 0.5).float() * 2 - 1
    o = {"reduction": red(), "margin": R.choice([0.0, 0.5, 1.0])}
    return ({"input1": rnd([N]), "input2": rnd([N]), "target": y}, o,
            lambda a, o: F.margin_ranking_loss(a["input1"], a["input2"], a["target"], **o))

def g_triplet():
    N, D = R.randint(1, 4), R.randint(1, 5)
    o = {"reduction": red(), "margin": R.choice([1.0, 0.5, 2.0]), "p": R.choice([1.0, 2.0, 3.0, 1.5]),
         "eps": R.choice([1e-6, 1e-3]), "swap": R.random() < 0.5}
    return ({"anchor": rnd([N, D]), "positive": rnd([N, D]), "negative": rnd([N, D])}, o,
            lambda a, o: F.triplet_margin_loss(a["anchor"], a["positive"], a["negative"], **o))

def g_poisson():
    s = shape()
    o = {"reduction": red(), "log_input": R.random() < 0.5, "full": R.random() < 0.5, "eps": R.choice([1e-8, 1e-3])}
    x = rnd(s) if o["log_input"] else torch.rand(s) * 3 + 0.05
    y = torch.poisson(torch.rand(s) * 4)
    return {"input": x, "target": y}, o, lambda a, o: F.poisson_nll_loss(a["input"], a["target"], **o)

def g_gaussian():
    N, D = R.randint(1, 4), R.randint(1, 4)
    vs = R.choice([[N, D], [N, 1], [N]])
    var = torch.rand(vs) * 2 + 0.01
    var[torch.rand(vs) < 0.1] = 1e-8  # below eps: clamped
    o = {"reduction": red(), "full": R.random() < 0.5, "eps": R.choice([1e-6, 1e-2])}
    return ({"input": rnd([N, D]), "target": rnd([N, D]), "var": var}, o,
            lambda a, o: F.gaussian_nll_loss(a["input"], a["target"], a["var"], **o))

def g_ctc():
    T, N, C = R.randint(3, 12), R.randint(1, 3), R.randint(2, 5)
    blank = R.randrange(C)
    labels = [c for c in range(C) if c != blank]
    S = R.randint(1, 4)
    tl = torch.tensor([R.randint(0, S) for _ in range(N)])
    tg = torch.tensor([[R.choice(labels) for _ in range(S)] for _ in range(N)])
    # input_length 0 is left out: PyTorch 1.13 reads out of bounds there (tapegrad defines it: 0 or inf)
    il = torch.tensor([R.randint(max(1, T - 4), T) for _ in range(N)])
    o = {"reduction": red(), "blank": blank, "zero_infinity": R.random() < 0.5}
    lp = torch.log_softmax(torch.randn(T, N, C) * 2, -1)
    return ({"log_probs": lp, "targets": tg, "input_lengths": il, "target_lengths": tl}, o,
            lambda a, o: F.ctc_loss(a["log_probs"], a["targets"], a["input_lengths"], a["target_lengths"], **o))

def focal_ref(x, y, alpha=0.25, gamma=2.0, reduction="none"):  # torchvision.ops.sigmoid_focal_loss
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0: loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss

def g_focal():
    s = shape()
    o = {"reduction": red(), "alpha": R.choice([0.25, 0.5, -1.0]), "gamma": R.choice([0.0, 1.0, 2.0, 2.5])}
    y = (torch.rand(s) < 0.5).float()
    return {"input": rnd(s, 3), "target": y}, o, lambda a, o: focal_ref(a["input"], a["target"], **o)

def dice_ref(x, t, ignore_index=None, eps=1e-6):
    N, C = x.shape[0], x.shape[1]
    keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    if C == 1:
        p = torch.sigmoid(x)
        g = (t == 1).unsqueeze(1).to(x.dtype)
    else:
        p = torch.softmax(x, 1)
        g = F.one_hot(torch.where(keep, t, torch.zeros_like(t)), C).movedim(-1, 1).to(x.dtype)
    m = keep.unsqueeze(1).to(x.dtype)
    p, g = p * m, g * m
    dims = tuple(range(2, x.dim()))
    inter = (p * g).sum(dims)
    s = p.sum(dims) + g.sum(dims)
    s = torch.where(s == 0, 2 * inter, s)
    dice = (2 * inter + eps) / (s + eps)
    return 1 - dice.mean()

def g_dice():
    N, H, W = R.randint(1, 3), R.randint(1, 4), R.randint(1, 4)
    C = R.choice([1, 2, 3])
    t = torch.randint(0, max(C, 2), (N, H, W))
    o = {"eps": R.choice([1e-6, 1.0])}
    if R.random() < 0.5:
        o["ignore_index"] = 255
        t[torch.rand(N, H, W) < 0.3] = 255
    return {"input": rnd([N, C, H, W], 2), "target": t}, o, lambda a, o: dice_ref(a["input"], a["target"], **o)

GENERATORS = {
    "binary_cross_entropy": g_bce, "binary_cross_entropy_with_logits": g_bce_logits, "cross_entropy": g_ce,
    "nll_loss": g_nll, "kl_div": g_kl, "mse_loss": simple(F.mse_loss), "l1_loss": simple(F.l1_loss),
    "smooth_l1_loss": simple(F.smooth_l1_loss, lambda: {"beta": R.choice([1.0, 0.5, 2.0, 0.0])}),
    "huber_loss": simple(F.huber_loss, lambda: {"delta": R.choice([1.0, 0.5, 2.0])}),
    "soft_margin_loss": g_soft_margin, "multilabel_soft_margin_loss": g_ml_soft_margin,
    "multi_margin_loss": g_multi_margin, "multilabel_margin_loss": g_ml_margin, "hinge_embedding_loss": g_hinge,
    "cosine_embedding_loss": g_cosine, "margin_ranking_loss": g_ranking, "triplet_margin_loss": g_triplet,
    "poisson_nll_loss": g_poisson, "gaussian_nll_loss": g_gaussian, "ctc_loss": g_ctc,
    "sigmoid_focal_loss": g_focal, "dice_loss": g_dice,
}

def torch_result(args, opts, fn):
    a64 = {}
    for k, t in args.items():
        if t.is_floating_point():
            a64[k] = t.double().requires_grad_(k not in ("target",))
        else:
            a64[k] = t
    o = {k: (torch.tensor(v, dtype=torch.float64) if k in ("weight", "pos_weight") else v) for k, v in opts.items()}
    loss = fn(a64, o)
    loss.sum().backward()
    grads = {k: t.grad for k, t in a64.items() if t.is_floating_point() and t.requires_grad}
    return loss.detach(), grads

def err(actual, expected, rtol, atol):
    """(max |a-e|/max(|e|,1) over the pairs, ok?) with NaN==NaN and inf==inf."""
    a = torch.tensor(actual, dtype=torch.float64).reshape(expected.shape)
    e = expected.double()
    both_nan = torch.isnan(a) & torch.isnan(e)
    same_inf = torch.isinf(a) & torch.isinf(e) & (a == e)
    fin = ~(both_nan | same_inf)
    diff = (a - e).abs()
    bad = fin & ~(diff <= atol + rtol * e.abs())
    scaled = diff / e.abs().clamp(min=1.0)  # absolute below 1, relative above
    m = float(scaled[fin].max()) if fin.any() else 0.0
    if math.isnan(m) or bad.any(): return (m if not math.isnan(m) else float("inf")), False
    return m, True

def listed_losses():
    """The losses of ops/op_list.h (kind LOSS), in its order."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ops", "op_list.h")) as f:
        return re.findall(r"X\((\w+),\s*\w+,\s*LOSS,", f.read())

def from_losslab_cases(name):
    """A generator for a loss without one here: tests/gen_losslab_cases.py's case maker and reference."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_losslab_cases as gen
    def g():
        a, o = gen.make(name, R)
        return a, o, lambda a64, o64: gen.torch_loss(name, a64, o64)
    return g

def main():
    for name in listed_losses():  # every loss of ops/op_list.h
        if name not in GENERATORS:
            GENERATORS[name] = from_losslab_cases(name)
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--bin", default="build/bin/losslab")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    R.seed(seed)
    torch.manual_seed(seed)
    cases, refs = [], []
    for name, gen in GENERATORS.items():
        for i in range(args.n):
            targs, opts, fn = gen()
            targs = {k: (v.float() if v.is_floating_point() else v) for k, v in targs.items()}
            case = {"id": len(cases), "loss": name, "options": opts}
            case.update({k: v.tolist() for k, v in targs.items()})
            cases.append(case)
            refs.append((name, targs, opts, fn))
    text = "".join(json.dumps(c, allow_nan=True) + "\n" for c in cases)
    out = subprocess.run([args.bin, "--jsonl"], input=text, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != len(cases):
        print(f"losslab failed: rc={out.returncode}, {len(lines)} lines for {len(cases)} cases\n{out.stderr}")
        return 1
    stats = {n: [0, 0.0, 0.0, 0] for n in GENERATORS}
    failures = 0
    for case, line, (name, targs, opts, fn) in zip(cases, lines, refs):
        res = json.loads(line)
        st = stats[name]
        st[0] += 1
        problem = None
        if res.get("id") != case["id"]: problem = f"id {res.get('id')} != {case['id']}"
        elif "error" in res: problem = "error: " + res["error"]
        else:
            loss, grads = torch_result(targs, opts, fn)
            ve, ok = err(res["loss"], loss, VAL_RTOL, VAL_ATOL)
            st[1] = max(st[1], ve)
            if not ok: problem = f"value {res['loss']} vs {loss.tolist()}"
            for k, g in grads.items():
                if k not in res["grad"]:
                    problem = f"no grad for {k}"
                    continue
                ge, gok = err(res["grad"][k], g, GRAD_RTOL, GRAD_ATOL)
                st[2] = max(st[2], ge)
                if not gok and not problem: problem = f"grad {k} {res['grad'][k]} vs {g.tolist()}"
        if problem:
            st[3] += 1
            failures += 1
            if args.v or st[3] <= 2:
                print(f"MISMATCH {name} case {case['id']}: {problem}\n  case: {json.dumps(case)}")
    print("errors: max |losslab - torch| / max(|torch|, 1) over all elements")
    print(f"seed {seed}, {args.n} cases per loss; value tol {VAL_RTOL} rel + {VAL_ATOL}, grad tol {GRAD_RTOL} rel + {GRAD_ATOL}")
    print(f"{'loss':34s} {'cases':>5s} {'value err':>13s} {'grad err':>13s} {'fail':>5s}")
    for n, (c, ve, ge, f) in stats.items():
        print(f"{n:34s} {c:5d} {ve:13.3g} {ge:13.3g} {f:5d}")
    print("ALL AGREE" if failures == 0 else f"{failures} MISMATCHES")
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
