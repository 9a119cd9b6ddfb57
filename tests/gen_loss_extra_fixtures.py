#!/usr/bin/python3
"""Golden values for ops/loss_extra_*.c from PyTorch 1.13 (Debian python3-torch).

Writes tests/fixtures/loss_extra_{margin,embedding,nll,ctc}.json. Each file is a list of
cases: {"loss", "name", "opts", "float": {arg: tensor}, "const": {arg: float tensor}, "int": {arg: int64 tensor},
"grad_out": tensor, "output": tensor, "grads": {arg: tensor}}. Every float argument
requires grad; "grads" holds d(sum(output * grad_out))/d(arg) from torch.autograd.
Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".

Run from the repository root: /usr/bin/python3 tests/gen_loss_extra_fixtures.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from fixture_util import SPECIALS, enc, poke

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def case(loss, name, fn, floats, consts, opts, double=False):
    """fn(**floats, **consts) -> output; records output and gradients of every float arg.
    consts (targets, weights, lengths) take no gradient; int64 ones go to "int", others to "const".
    double: run PyTorch in float64 on the float32 inputs (used for CTC: PyTorch's float32
    recursion drifts by ~1e-4 relative over 60 frames, tapegrad's runs in double)."""
    dt = torch.float64 if double else torch.float32
    leaves = {k: v.detach().clone().float().to(dt).requires_grad_(True) for k, v in floats.items()}
    try:
        out = fn(**leaves, **consts)
    except (RuntimeError, ValueError) as e:  # PyTorch refuses the inputs: so must tapegrad
        return {"loss": loss, "name": name, "opts": opts, "float": {k: enc(v) for k, v in leaves.items()},
                "int": {k: enc(v) for k, v in consts.items() if not v.is_floating_point()},
                "const": {k: enc(v) for k, v in consts.items() if v.is_floating_point()},
                "error": str(e).splitlines()[0]}
    if out.dim() == 0:
        grad_out = torch.tensor(0.7)
    else:
        grad_out = 0.5 + torch.rand(out.shape)
    grad_out = grad_out.float().to(dt)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
    grads = {k: (g if g is not None else torch.zeros_like(leaves[k])) for k, g in zip(leaves, grads)}
    return {
        "loss": loss,
        "name": name,
        "opts": opts,
        "float": {k: enc(v) for k, v in leaves.items()},
        "int": {k: enc(v) for k, v in consts.items() if not v.is_floating_point()},
        "const": {k: enc(v) for k, v in consts.items() if v.is_floating_point()},
        "grad_out": enc(grad_out),
        "output": enc(out),
        "grads": {k: enc(v) for k, v in grads.items()},
    }


REDS = ["mean", "sum", "none"]


def margin_cases():
    cs = []
    # multi_margin
    x = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 2, 3])
    w = torch.rand(4) + 0.5
    for r in REDS:
        cs.append(case("multi_margin", f"default_{r}", lambda input, target: F.multi_margin_loss(input, target, reduction=r),
                       {"input": x}, {"target": y}, {"reduction": r}))
        cs.append(case("multi_margin", f"p2_margin07_weight_{r}",
                       lambda input, target, weight: F.multi_margin_loss(input, target, p=2, margin=0.7, weight=weight, reduction=r),
                       {"input": x}, {"target": y, "weight": w}, {"reduction": r, "p": 2, "margin": 0.7}))
    cs.append(case("multi_margin", "margin0_explicit", lambda input, target: F.multi_margin_loss(input, target, margin=0.0),
                   {"input": x}, {"target": y}, {"reduction": "mean", "margin": 0.0, "has_margin": True}))
    x1 = torch.randn(6)
    cs.append(case("multi_margin", "vector_target1_none", lambda input, target: F.multi_margin_loss(input, target, reduction="none"),
                   {"input": x1}, {"target": torch.tensor([2])}, {"reduction": "none"}))
    cs.append(case("multi_margin", "vector_scalar_target_none", lambda input, target: F.multi_margin_loss(input, target, reduction="none"),
                   {"input": x1}, {"target": torch.tensor(4)}, {"reduction": "none"}))
    cs.append(case("multi_margin", "scalar_input", lambda input, target: F.multi_margin_loss(input, target, reduction="none"),
                   {"input": torch.tensor(0.3)}, {"target": torch.tensor(0)}, {"reduction": "none"}))
    # multilabel_margin
    cs.append(case("multilabel_margin", "docs_example_085", lambda input, target: F.multilabel_margin_loss(input, target),
                   {"input": torch.tensor([[0.1, 0.2, 0.4, 0.8]])}, {"target": torch.tensor([[3, 0, -1, 1]])}, {"reduction": "mean"}))
    xm = torch.randn(4, 5)
    ym = torch.tensor([[1, 3, -1, 0, 2], [4, -1, -1, -1, -1], [-1, 2, 3, 4, 0], [0, 1, 2, 3, -1]])
    for r in REDS:
        cs.append(case("multilabel_margin", f"random_{r}", lambda input, target: F.multilabel_margin_loss(input, target, reduction=r),
                       {"input": xm}, {"target": ym}, {"reduction": r}))
    cs.append(case("multilabel_margin", "vector_none_is_scalar", lambda input, target: F.multilabel_margin_loss(input, target, reduction="none"),
                   {"input": torch.randn(5)}, {"target": torch.tensor([2, 0, -1, 3, 1])}, {"reduction": "none"}))
    cs.append(case("multilabel_margin", "duplicate_targets_count_twice", lambda input, target: F.multilabel_margin_loss(input, target),
                   {"input": torch.tensor([[0.1, 0.2, 0.4, 0.8]])}, {"target": torch.tensor([[3, 3, -1, 1]])}, {"reduction": "mean"}))
    # hinge_embedding
    xh = torch.randn(3, 4) * 1.5
    yh = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [0.0, 2.0, -1.0, 1.0]])
    for r in REDS:
        cs.append(case("hinge_embedding", f"default_{r}", lambda input, target: F.hinge_embedding_loss(input, target, reduction=r),
                       {"input": xh}, {"target": yh}, {"reduction": r}))
        cs.append(case("hinge_embedding", f"margin05_{r}", lambda input, target: F.hinge_embedding_loss(input, target, margin=0.5, reduction=r),
                       {"input": xh}, {"target": yh}, {"reduction": r, "margin": 0.5}))
    cs.append(case("hinge_embedding", "margin0_explicit", lambda input, target: F.hinge_embedding_loss(input, target, margin=0.0),
                   {"input": xh}, {"target": yh}, {"reduction": "mean", "margin": 0.0, "has_margin": True}))
    cs.append(case("hinge_embedding", "int_target", lambda input, target: F.hinge_embedding_loss(input, target, reduction="none"),
                   {"input": xh}, {"target": yh.long()}, {"reduction": "none"}))
    # margin_ranking
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    yr = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    for r in REDS:
        for m in (0.0, 0.5):
            cs.append(case("margin_ranking", f"margin{m}_{r}",
                           lambda input1, input2, target: F.margin_ranking_loss(input1, input2, target, margin=m, reduction=r),
                           {"input1": a, "input2": b}, {"target": yr}, {"reduction": r, "margin": m}))
    cs.append(case("margin_ranking", "vector_int_target",
                   lambda input1, input2, target: F.margin_ranking_loss(input1, input2, target, margin=0.2, reduction="none"),
                   {"input1": torch.randn(6), "input2": torch.randn(6)}, {"target": torch.tensor([1, -1, 1, 1, -1, -1])},
                   {"reduction": "none", "margin": 0.2}))
    return cs


def embedding_cases():
    cs = []
    x1, x2 = torch.randn(5, 4), torch.randn(5, 4)
    x2[1] = x1[1] + 0.6 * torch.randn(4)              # y=-1 row with cos near 0.8: hinge active for every margin
    r = torch.randn(4)                                  # y=-1 row with cos = 0.1: active for margin -0.3 and 0, not 0.3
    u = x1[3] / x1[3].norm()
    r = r - (r @ u) * u
    x2[3] = 0.1 * u + math.sqrt(1 - 0.01) * r / r.norm()
    y = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0])
    for r in REDS:
        for m in (0.0, -0.3, 0.3):
            cs.append(case("cosine_embedding", f"margin{m}_{r}",
                           lambda input1, input2, target: F.cosine_embedding_loss(input1, input2, target, margin=m, reduction=r),
                           {"input1": x1, "input2": x2}, {"target": y}, {"reduction": r, "margin": m}))
    z1 = x1.clone()
    z1[0] = 0.0
    cs.append(case("cosine_embedding", "zero_vector_gives_1",
                   lambda input1, input2, target: F.cosine_embedding_loss(input1, input2, target, reduction="none"),
                   {"input1": z1, "input2": x2}, {"target": y}, {"reduction": "none"}))
    cs.append(case("cosine_embedding", "vector_scalar_target",
                   lambda input1, input2, target: F.cosine_embedding_loss(input1, input2, target, reduction="none"),
                   {"input1": torch.randn(7), "input2": torch.randn(7)}, {"target": torch.tensor(-1)}, {"reduction": "none", "margin": -0.5}))
    # the margin above is not passed to torch; fix the opts to what was computed
    cs[-1]["opts"] = {"reduction": "none"}
    a, p, n = torch.randn(6, 5), torch.randn(6, 5), torch.randn(6, 5)
    for r in REDS:
        cs.append(case("triplet_margin", f"default_{r}", lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, reduction=r),
                       {"anchor": a, "positive": p, "negative": n}, {}, {"reduction": r}))
        cs.append(case("triplet_margin", f"p1_margin2_swap_{r}",
                       lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, margin=2.0, p=1, swap=True, reduction=r),
                       {"anchor": a, "positive": p, "negative": n}, {}, {"reduction": r, "margin": 2.0, "p": 1, "swap": True}))
    cs.append(case("triplet_margin", "p3_eps0_explicit",
                   lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, margin=1.5, p=3, eps=0.0, reduction="none"),
                   {"anchor": a, "positive": p, "negative": n}, {}, {"reduction": "none", "margin": 1.5, "p": 3, "eps": 0.0, "has_eps": True}))
    cs.append(case("triplet_margin", "swap_eps01_margin0",
                   lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, margin=0.0, eps=0.1, swap=True, reduction="none"),
                   {"anchor": a, "positive": p, "negative": n}, {}, {"reduction": "none", "margin": 0.0, "has_margin": True, "eps": 0.1, "swap": True}))
    cs.append(case("triplet_margin", "vector",
                   lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, margin=3.0, reduction="none"),
                   {"anchor": torch.randn(8), "positive": torch.randn(8), "negative": torch.randn(8)}, {}, {"reduction": "none", "margin": 3.0}))
    cs.append(case("triplet_margin", "3d_p05_mean",
                   lambda anchor, positive, negative: F.triplet_margin_loss(anchor, positive, negative, margin=4.0, p=0.5),
                   {"anchor": torch.randn(2, 3, 5), "positive": torch.randn(2, 3, 5), "negative": torch.randn(2, 3, 5)}, {},
                   {"reduction": "mean", "margin": 4.0, "p": 0.5}))
    return cs


def nll_cases():
    cs = []
    x = torch.randn(3, 4)
    y = torch.tensor([[0.0, 0.5, 1.0, 1.5], [2.0, 3.0, 7.0, 0.2], [1.0, 1.01, 4.0, 0.0]])
    xr = torch.rand(3, 4) * 3 + 0.05
    for r in REDS:
        for full in (False, True):
            cs.append(case("poisson_nll", f"log_full{int(full)}_{r}",
                           lambda input, target: F.poisson_nll_loss(input, target, log_input=True, full=full, reduction=r),
                           {"input": x}, {"target": y}, {"reduction": r, "full": full}))
            cs.append(case("poisson_nll", f"rate_full{int(full)}_{r}",
                           lambda input, target: F.poisson_nll_loss(input, target, log_input=False, full=full, reduction=r),
                           {"input": xr}, {"target": y}, {"reduction": r, "full": full, "no_log_input": True}))
    cs.append(case("poisson_nll", "rate_eps05",
                   lambda input, target: F.poisson_nll_loss(input, target, log_input=False, eps=0.5, reduction="none"),
                   {"input": xr}, {"target": y}, {"reduction": "none", "no_log_input": True, "eps": 0.5}))
    cs.append(case("poisson_nll", "log_input_overflow_inf",
                   lambda input, target: F.poisson_nll_loss(input, target, reduction="none"),
                   {"input": torch.tensor([100.0, 0.5])}, {"target": torch.tensor([1.0, 2.0])}, {"reduction": "none"}))
    # gaussian
    xg, yg = torch.randn(4, 3), torch.randn(4, 3)
    v_same = torch.rand(4, 3) + 0.1
    v_same[0, 0] = 0.0    # clamped to eps (x - y kept small so the loss stays moderate)
    v_same[1, 2] = 1e-8   # clamped to eps
    xg[0, 0] = yg[0, 0] + 5e-4
    xg[1, 2] = yg[1, 2] - 2e-3
    v_col = torch.rand(4, 1) + 0.2
    v_row = torch.rand(4) + 0.2
    for r in REDS:
        for full in (False, True):
            cs.append(case("gaussian_nll", f"same_full{int(full)}_{r}",
                           lambda input, target, var: F.gaussian_nll_loss(input, target, var, full=full, reduction=r),
                           {"input": xg, "var": v_same}, {"target": yg}, {"reduction": r, "full": full}))
    cs.append(case("gaussian_nll", "var_last_dim_1",
                   lambda input, target, var: F.gaussian_nll_loss(input, target, var, reduction="none"),
                   {"input": xg, "var": v_col}, {"target": yg}, {"reduction": "none"}))
    cs.append(case("gaussian_nll", "var_one_dim_fewer",
                   lambda input, target, var: F.gaussian_nll_loss(input, target, var, reduction="sum"),
                   {"input": xg, "var": v_row}, {"target": yg}, {"reduction": "sum"}))
    cs.append(case("gaussian_nll", "vector_scalar_var_eps01",
                   lambda input, target, var: F.gaussian_nll_loss(input, target, var, eps=0.1, reduction="none"),
                   {"input": torch.randn(5), "var": torch.tensor(0.05)}, {"target": torch.randn(5)}, {"reduction": "none", "eps": 0.1}))
    return cs


def ctc_cases():
    cs = []

    def case(*args, **kw):  # every CTC golden in float64 (see case's docstring)
        return globals()["case"](*args, double=True, **kw)
    T, N, C = 12, 3, 5
    logits = torch.randn(T, N, C)
    lp = logits.log_softmax(-1)
    padded = torch.tensor([[1, 2, 2, 3], [4, 1, 0, 0], [3, 3, 3, 1]])  # repeats need blanks between
    tl = torch.tensor([4, 2, 3])
    il = torch.tensor([12, 9, 10])
    concat = torch.cat([padded[b, :tl[b]] for b in range(N)])

    def ctc(r, blank=0, zi=False):
        return lambda log_probs, targets, input_lengths, target_lengths: F.ctc_loss(
            log_probs, targets, input_lengths, target_lengths, blank=blank, reduction=r, zero_infinity=zi)

    for r in REDS:
        cs.append(case("ctc", f"padded_{r}", ctc(r), {"log_probs": lp},
                       {"targets": padded, "input_lengths": il, "target_lengths": tl}, {"reduction": r}))
    cs.append(case("ctc", "concatenated_mean", ctc("mean"), {"log_probs": lp},
                   {"targets": concat, "input_lengths": il, "target_lengths": tl}, {"reduction": "mean"}))
    # blank = 4: labels from 0..3
    padded_b = torch.tensor([[0, 1, 1, 2], [3, 0, 9, 9], [2, 2, 0, 1]])
    cs.append(case("ctc", "blank4_sum", ctc("sum", blank=4), {"log_probs": lp},
                   {"targets": padded_b, "input_lengths": il, "target_lengths": torch.tensor([4, 2, 4])}, {"reduction": "sum", "blank": 4}))
    # an empty target
    cs.append(case("ctc", "empty_target_none", ctc("none"), {"log_probs": lp},
                   {"targets": padded, "input_lengths": il, "target_lengths": torch.tensor([4, 0, 3])}, {"reduction": "none"}))
    cs.append(case("ctc", "empty_target_mean", ctc("mean"), {"log_probs": lp},
                   {"targets": padded, "input_lengths": il, "target_lengths": torch.tensor([4, 0, 3])}, {"reduction": "mean"}))
    # impossible alignment: [3,3,3,1] needs 6 frames, sample 2 has 4
    il_bad = torch.tensor([12, 9, 4])
    for r in REDS:
        cs.append(case("ctc", f"impossible_{r}", ctc(r), {"log_probs": lp},
                       {"targets": padded, "input_lengths": il_bad, "target_lengths": tl}, {"reduction": r}))
        cs.append(case("ctc", f"impossible_zero_infinity_{r}", ctc(r, zi=True), {"log_probs": lp},
                       {"targets": padded, "input_lengths": il_bad, "target_lengths": tl}, {"reduction": r, "zero_infinity": True}))
    # log_probs that are not normalised: PyTorch's gradient formula still applies
    cs.append(case("ctc", "unnormalised_log_probs_none", ctc("none"), {"log_probs": logits * 0.5 - 1.0},
                   {"targets": padded, "input_lengths": il, "target_lengths": tl}, {"reduction": "none"}))
    # unbatched (T, C)
    lp2 = torch.randn(9, 6).log_softmax(-1)
    cs.append(case("ctc", "unbatched_none", ctc("none"), {"log_probs": lp2},
                   {"targets": torch.tensor([5, 2, 2]), "input_lengths": torch.tensor(9), "target_lengths": torch.tensor(3)},
                   {"reduction": "none"}))
    cs.append(case("ctc", "unbatched_mean_padded_target", ctc("mean"), {"log_probs": lp2},
                   {"targets": torch.tensor([[5, 2, 2, 1]]), "input_lengths": torch.tensor([7]), "target_lengths": torch.tensor([3])},
                   {"reduction": "mean"}))
    # longer sequence (exercises the log-space recursion over many steps)
    T2, N2, C2 = 60, 4, 8
    lp3 = torch.randn(T2, N2, C2).mul(2).log_softmax(-1)
    tg3 = torch.randint(1, C2, (N2, 15))
    cs.append(case("ctc", "long_mean", ctc("mean"), {"log_probs": lp3},
                   {"targets": tg3, "input_lengths": torch.tensor([60, 55, 41, 60]), "target_lengths": torch.tensor([15, 10, 7, 1])},
                   {"reduction": "mean"}))
    return cs


def nonfinite_cases():
    """Every loss above with one NaN / +Inf / -Inf in each float argument (inputs, float
    targets, weights, var), reductions none and mean: PyTorch's values and gradients."""
    torch.manual_seed(4321)
    cs = []

    def add(loss, name, fn, floats, consts, opts):
        for r in ["none", "mean"]:
            cs.append(case(loss, f"{name}_{r}", lambda **kw: fn(r, **kw), floats, consts, dict(opts, reduction=r)))

    x = torch.randn(3, 4)
    y = torch.tensor([0, 3, 1])
    w = torch.rand(4) + 0.5
    xm = torch.randn(2, 4)
    ym = torch.tensor([[1, 3, -1, 0], [2, -1, 0, 0]])
    xh = torch.randn(3, 4) * 1.5
    yh = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [0.0, 2.0, -1.0, 1.0]])
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    yr = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    c1, c2 = torch.randn(4, 3), torch.randn(4, 3)
    yc = torch.tensor([1.0, -1.0, -1.0, 0.0])
    ta, tp, tn = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    xp, yp = torch.randn(3, 4), torch.rand(3, 4) * 3
    xg, yg, vg = torch.randn(3, 4), torch.randn(3, 4), torch.rand(3, 4) + 0.1
    T, N, C = 6, 2, 4
    lp = torch.randn(T, N, C).log_softmax(-1)
    ctc_t = torch.tensor([[1, 2], [3, 3]])
    for sn, v in SPECIALS:
        # multi_margin: the target's logit (row 1, class 3 = index 7), another logit (index 5), a weight
        for where, idx in [("target_logit", 7), ("other_logit", 5)]:
            for p in (1, 2):
                add("multi_margin", f"{sn}_{where}_p{p}",
                    lambda r, input, target, weight, p=p: F.multi_margin_loss(input, target, p=p, weight=weight, reduction=r),
                    {"input": poke(x, idx, v)}, {"target": y, "weight": w}, {"p": p})
        for where, c in [("used", 3), ("unused", 2)]:
            add("multi_margin", f"weight_{sn}_{where}",
                lambda r, input, target, weight: F.multi_margin_loss(input, target, weight=weight, reduction=r),
                {"input": x}, {"target": y, "weight": poke(w, c, v)}, {})
        # multilabel_margin: a target class's logit (row 0 class 1) and a non-target's (row 0 class 2)
        for where, idx in [("target_class", 1), ("other_class", 2)]:
            add("multilabel_margin", f"{sn}_{where}",
                lambda r, input, target: F.multilabel_margin_loss(input, target, reduction=r),
                {"input": poke(xm, idx, v)}, {"target": ym}, {})
        # hinge_embedding: input where the target is 1, -1, other; a float target
        for where, idx in [("y1", 0), ("y-1", 1), ("y_other", 8)]:
            add("hinge_embedding", f"{sn}_input_{where}",
                lambda r, input, target: F.hinge_embedding_loss(input, target, reduction=r),
                {"input": poke(xh, idx, v)}, {"target": yh}, {})
        add("hinge_embedding", f"{sn}_target",
            lambda r, input, target: F.hinge_embedding_loss(input, target, reduction=r),
            {"input": xh}, {"target": poke(yh, 1, v)}, {})
        # margin_ranking: input1 (target 1 and -1), input2, target
        for where, idx in [("y1", 0), ("y-1", 1)]:
            add("margin_ranking", f"{sn}_input1_{where}",
                lambda r, input1, input2, target: F.margin_ranking_loss(input1, input2, target, margin=0.5, reduction=r),
                {"input1": poke(a, idx, v), "input2": b}, {"target": yr}, {"margin": 0.5})
        add("margin_ranking", f"{sn}_input2",
            lambda r, input1, input2, target: F.margin_ranking_loss(input1, input2, target, reduction=r),
            {"input1": a, "input2": poke(b, 1, v)}, {"target": yr}, {})
        add("margin_ranking", f"{sn}_target",
            lambda r, input1, input2, target: F.margin_ranking_loss(input1, input2, target, reduction=r),
            {"input1": a, "input2": b}, {"target": poke(yr, 1, v)}, {})
        # cosine_embedding: a row with target 1, -1, 0; a float target
        for where, idx in [("y1", 1), ("y-1", 4), ("y-1_b", 7), ("y0", 10)]:
            add("cosine_embedding", f"{sn}_input1_{where}",
                lambda r, input1, input2, target: F.cosine_embedding_loss(input1, input2, target, margin=0.2, reduction=r),
                {"input1": poke(c1, idx, v), "input2": c2}, {"target": yc}, {"margin": 0.2})
        add("cosine_embedding", f"{sn}_input2",
            lambda r, input1, input2, target: F.cosine_embedding_loss(input1, input2, target, reduction=r),
            {"input1": c1, "input2": poke(c2, 5, v)}, {"target": yc}, {})
        add("cosine_embedding", f"{sn}_target",
            lambda r, input1, input2, target: F.cosine_embedding_loss(input1, input2, target, reduction=r),
            {"input1": c1, "input2": c2}, {"target": poke(yc, 1, v)}, {})
        # triplet_margin: each of the three, p 2 and 1, swap
        for arg in ["anchor", "positive", "negative"]:
            for p, swap in [(2, False), (1, True)]:
                fl = {"anchor": ta, "positive": tp, "negative": tn}
                fl[arg] = poke(fl[arg], 5, v)
                add("triplet_margin", f"{sn}_{arg}_p{p}_swap{int(swap)}",
                    lambda r, anchor, positive, negative, p=p, swap=swap: F.triplet_margin_loss(
                        anchor, positive, negative, p=p, swap=swap, reduction=r),
                    fl, {}, {"p": p, "swap": swap})
        # poisson_nll: input, target; log and rate inputs, full
        for log_input in (True, False):
            xin = xp if log_input else xp.abs() + 0.1
            for full in (False, True):
                tag = f"{'log' if log_input else 'rate'}_full{int(full)}"
                opts = {"full": full, "no_log_input": not log_input}
                add("poisson_nll", f"{sn}_input_{tag}",
                    lambda r, input, target, li=log_input, fu=full: F.poisson_nll_loss(input, target, log_input=li, full=fu, reduction=r),
                    {"input": poke(xin, 5, v)}, {"target": yp}, opts)
                add("poisson_nll", f"{sn}_target_{tag}",
                    lambda r, input, target, li=log_input, fu=full: F.poisson_nll_loss(input, target, log_input=li, full=fu, reduction=r),
                    {"input": xin}, {"target": poke(yp, 5, v)}, opts)
        # gaussian_nll: input, target, var (same shape and per row)
        for arg in ["input", "target", "var"]:
            fl, co = {"input": xg, "var": vg}, {"target": yg}
            (fl if arg != "target" else co)[arg] = poke((fl if arg != "target" else co)[arg], 5, v)
            add("gaussian_nll", f"{sn}_{arg}",
                lambda r, input, target, var: F.gaussian_nll_loss(input, target, var, reduction=r), fl, co, {})
        add("gaussian_nll", f"{sn}_var_per_row",
            lambda r, input, target, var: F.gaussian_nll_loss(input, target, var, reduction=r),
            {"input": xg, "var": poke(torch.rand(3) + 0.1, 1, v)}, {"target": yg}, {})
        # ctc: a special log-probability on a used frame (t=1, n=0, label 1) and on a padded frame
        for where, idx in [("used", (1 * N + 0) * C + 1), ("after_input_length", (5 * N + 1) * C + 2)]:
            for zi in (False, True):
                cs.append(case("ctc", f"{sn}_{where}_zi{int(zi)}_none",
                               lambda log_probs, targets, input_lengths, target_lengths, zi=zi: F.ctc_loss(
                                   log_probs, targets, input_lengths, target_lengths, reduction="none", zero_infinity=zi),
                               {"log_probs": poke(lp, idx, v)},
                               {"targets": ctc_t, "input_lengths": torch.tensor([6, 5]), "target_lengths": torch.tensor([2, 2])},
                               {"reduction": "none", "zero_infinity": zi}, double=True))
    return cs


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, fn in [("margin", margin_cases), ("embedding", embedding_cases), ("nll", nll_cases), ("ctc", ctc_cases),
                     ("nonfinite", nonfinite_cases)]:
        cases = fn()
        path = os.path.join(OUT, f"loss_extra_{name}.json")
        with open(path, "w") as f:
            json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
        print(f"{path}: {len(cases)} cases")


if __name__ == "__main__":
    main()
