#!/usr/bin/python3
"""Golden values for the nn ops (conv, pooling, upsampling, batch norm) from PyTorch.

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tests/gen_nn_ops_fixtures.py
Writes tests/fixtures/nn_ops_{conv,pool,upsample,batchnorm,linear}.json. Each case holds the inputs,
the options, the output y, an upstream gradient gy and the gradients of sum(y * gy) with
respect to every input (gx, gw, gb). Non-finite numbers are the strings "NaN"/"Infinity".
"""
import json
import os

import torch
import torch.nn.functional as F

import fixture_util

torch.manual_seed(1234)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def enc(t):
    """float32 round-trips through 9 significant digits; tensors as float64 (ints too)."""
    return fixture_util.enc(t.double() if isinstance(t, torch.Tensor) else t, "9g")


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def run(fn, inputs):
    """y = fn(*inputs); gradients of sum(y * gy) for inputs that are tensors."""
    leaves = [None if t is None else t.clone().requires_grad_(True) for t in inputs]
    y = fn(*leaves)
    gy = rnd(*y.shape)
    (y * gy).sum().backward()
    return y, gy, [None if t is None else t.grad for t in leaves]


def dump(name, cases):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
    print(name, len(cases), "cases")


# ---- conv2d / conv_transpose2d ----------------------------------------------------------------

def conv_cases():
    cases = []
    specs = [
        # name, N, C, H, W, O, kh, kw, stride, padding, dilation, groups, bias, transposed, output_padding
        ("basic3x3", 2, 3, 7, 6, 4, 3, 3, (1, 1), (0, 0), (1, 1), 1, True, False, (0, 0)),
        ("pad1", 2, 3, 6, 5, 2, 3, 3, (1, 1), (1, 1), (1, 1), 1, True, False, (0, 0)),
        ("stride2_pad1_odd", 1, 2, 9, 8, 3, 3, 3, (2, 2), (1, 1), (1, 1), 1, False, False, (0, 0)),
        ("stride_hw_rect_kernel", 2, 2, 8, 9, 3, 2, 3, (2, 1), (1, 0), (1, 1), 1, True, False, (0, 0)),
        ("dilation2", 1, 2, 9, 9, 2, 3, 3, (1, 1), (2, 2), (2, 2), 1, True, False, (0, 0)),
        ("groups2", 2, 4, 6, 6, 6, 3, 3, (1, 1), (1, 1), (1, 1), 2, True, False, (0, 0)),
        ("depthwise_stride2", 1, 3, 7, 7, 3, 3, 3, (2, 2), (1, 1), (1, 1), 3, True, False, (0, 0)),
        ("pointwise", 2, 5, 4, 3, 3, 1, 1, (1, 1), (0, 0), (1, 1), 1, True, False, (0, 0)),
        ("pointwise_groups", 1, 4, 3, 3, 2, 1, 1, (1, 1), (0, 0), (1, 1), 2, False, False, (0, 0)),
        ("pointwise_stride2", 1, 3, 5, 5, 2, 1, 1, (2, 2), (0, 0), (1, 1), 1, True, False, (0, 0)),
        ("mixed_all", 2, 4, 10, 9, 4, 3, 2, (2, 3), (1, 2), (2, 1), 2, True, False, (0, 0)),
        # transposed: w is (C, O/groups, kh, kw)
        ("t_basic", 2, 3, 4, 5, 2, 3, 3, (1, 1), (0, 0), (1, 1), 1, True, True, (0, 0)),
        ("t_stride2_up", 1, 4, 4, 4, 2, 2, 2, (2, 2), (0, 0), (1, 1), 1, True, True, (0, 0)),
        ("t_stride2_pad1_outpad1", 2, 2, 3, 4, 3, 3, 3, (2, 2), (1, 1), (1, 1), 1, True, True, (1, 1)),
        ("t_groups2_dilation", 1, 4, 4, 3, 4, 3, 2, (1, 2), (1, 0), (2, 1), 2, False, True, (0, 1)),
        ("t_outpad_lt_dilation", 1, 2, 3, 3, 2, 3, 3, (1, 1), (0, 0), (2, 2), 1, True, True, (1, 0)),
        ("t_pointwise", 2, 3, 3, 4, 2, 1, 1, (1, 1), (0, 0), (1, 1), 1, True, True, (0, 0)),
    ]
    for (name, N, C, H, W, O, kh, kw, s, p, d, g, has_b, tr, op) in specs:
        x = rnd(N, C, H, W)
        w = rnd(C, O // g, kh, kw) if tr else rnd(O, C // g, kh, kw)
        b = rnd(O) if has_b else None
        if tr:
            fn = lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d)
        else:
            fn = lambda x, w, b: F.conv2d(x, w, b, s, p, d, g)
        y, gy, (gx, gw, gb) = run(fn, [x, w, b])
        cases.append(dict(name=name, transposed=tr, stride=s, padding=p, dilation=d, groups=g, output_padding=op,
                          x=enc(x), w=enc(w), b=enc(b), y=enc(y), gy=enc(gy), gx=enc(gx), gw=enc(gw), gb=enc(gb)))
    return cases


# ---- pooling ----------------------------------------------------------------------------------

def pool_cases():
    cases = []
    max_specs = [
        # name, shape, kernel, stride, padding, dilation, ceil_mode
        ("max2x2", (2, 3, 6, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
        ("max2x2_odd_floor", (1, 2, 7, 5), (2, 2), (2, 2), (0, 0), (1, 1), False),
        ("max2x2_odd_ceil", (1, 2, 7, 5), (2, 2), (2, 2), (0, 0), (1, 1), True),
        ("max3x3_s2_p1", (2, 2, 7, 8), (3, 3), (2, 2), (1, 1), (1, 1), False),
        ("max3x3_s2_p1_ceil", (1, 2, 8, 6), (3, 3), (2, 2), (1, 1), (1, 1), True),
        ("max_ceil_last_window_dropped", (1, 1, 5, 5), (2, 2), (3, 3), (1, 1), (1, 1), True),
        ("max_dilation2", (1, 2, 9, 8), (3, 2), (1, 2), (1, 1), (2, 2), False),
        ("max_drive_73x70", (1, 2, 73, 70), (2, 2), (2, 2), (0, 0), (1, 1), False),
        ("max_3d_input", (2, 6, 6), (3, 3), (3, 3), (0, 0), (1, 1), False),
    ]
    for (name, shape, k, s, p, d, cm) in max_specs:
        x = rnd(*shape)
        y, gy, (gx,) = run(lambda x: F.max_pool2d(x, k, s, p, d, cm), [x])
        cases.append(dict(name=name, kind="max", kernel=k, stride=s, padding=p, dilation=d, ceil_mode=cm,
                          exclude_pad=False, x=enc(x), y=enc(y), gy=enc(gy), gx=enc(gx)))
    # ties: integer values, many equal maxima; the gradient goes to the first in row-major order
    x = torch.randint(0, 3, (1, 2, 6, 6)).float()
    for (name, k, s, p) in [("max_ties_2x2", (2, 2), (2, 2), (0, 0)), ("max_ties_3x3_overlap", (3, 3), (1, 1), (1, 1))]:
        y, gy, (gx,) = run(lambda x: F.max_pool2d(x, k, s, p), [x])
        cases.append(dict(name=name, kind="max", kernel=k, stride=s, padding=p, dilation=(1, 1), ceil_mode=False,
                          exclude_pad=False, x=enc(x), y=enc(y), gy=enc(gy), gx=enc(gx)))
    avg_specs = [
        ("avg2x2", (2, 2, 6, 6), (2, 2), (2, 2), (0, 0), False, True),
        ("avg3x3_p1_include", (1, 2, 7, 6), (3, 3), (2, 2), (1, 1), False, True),
        ("avg3x3_p1_exclude", (1, 2, 7, 6), (3, 3), (2, 2), (1, 1), False, False),
        ("avg3x3_p1_ceil_include", (1, 2, 8, 7), (3, 3), (2, 2), (1, 1), True, True),
        ("avg3x3_p1_ceil_exclude", (1, 2, 8, 7), (3, 3), (2, 2), (1, 1), True, False),
        ("avg2x3_s1x2_ceil", (2, 1, 5, 7), (2, 3), (1, 2), (0, 1), True, True),
        ("avg_ceil_no_pad", (1, 1, 5, 5), (2, 2), (2, 2), (0, 0), True, True),
    ]
    for (name, shape, k, s, p, cm, inc) in avg_specs:
        x = rnd(*shape)
        y, gy, (gx,) = run(lambda x: F.avg_pool2d(x, k, s, p, cm, inc), [x])
        cases.append(dict(name=name, kind="avg", kernel=k, stride=s, padding=p, dilation=(1, 1), ceil_mode=cm,
                          exclude_pad=not inc, x=enc(x), y=enc(y), gy=enc(gy), gx=enc(gx)))
    for (name, shape, out) in [("adaptive_7x5_to_3x2", (2, 2, 7, 5), (3, 2)), ("adaptive_to_1x1", (2, 3, 5, 4), (1, 1)),
                               ("adaptive_up_3x3_to_5x4", (1, 2, 3, 3), (5, 4)), ("adaptive_10x9_to_4x4", (1, 1, 10, 9), (4, 4))]:
        x = rnd(*shape)
        y, gy, (gx,) = run(lambda x: F.adaptive_avg_pool2d(x, out), [x])
        cases.append(dict(name=name, kind="adaptive", out_size=out, x=enc(x), y=enc(y), gy=enc(gy), gx=enc(gx)))
    return cases


# ---- upsampling -------------------------------------------------------------------------------

def upsample_cases():
    cases = []
    specs = [
        # name, shape, mode, size, scale, align_corners
        ("bilinear_x2_ac", (1, 2, 4, 5), "bilinear", None, 2.0, True),
        ("bilinear_x2", (1, 2, 4, 5), "bilinear", None, 2.0, False),
        ("bilinear_size_ac", (2, 1, 5, 4), "bilinear", (7, 9), None, True),
        ("bilinear_size", (2, 1, 5, 4), "bilinear", (7, 9), None, False),
        ("bilinear_down_size", (1, 1, 9, 8), "bilinear", (4, 3), None, False),
        ("bilinear_scale_1_7", (1, 2, 5, 6), "bilinear", None, 1.7, False),
        ("bilinear_scale_2_5_ac", (1, 1, 4, 3), "bilinear", None, 2.5, True),
        ("bilinear_scale_0_6", (1, 1, 10, 7), "bilinear", None, 0.6, False),
        ("bilinear_drive_36x35_x2", (1, 1, 36, 35), "bilinear", None, 2.0, True),
        ("bilinear_drive_36x35_to_73x70", (1, 1, 36, 35), "bilinear", (73, 70), None, True),
        ("bilinear_to_1x1_ac", (1, 1, 3, 3), "bilinear", (1, 1), None, True),
        ("nearest_x2", (1, 2, 3, 4), "nearest", None, 2.0, False),
        ("nearest_size", (2, 1, 4, 5), "nearest", (7, 8), None, False),
        ("nearest_down", (1, 1, 7, 9), "nearest", (3, 4), None, False),
        ("nearest_scale_1_5", (1, 1, 5, 4), "nearest", None, 1.5, False),
        ("nearest_scale_2_7", (1, 1, 3, 4), "nearest", None, 2.7, False),
    ]
    for (name, shape, mode, size, scale, ac) in specs:
        x = rnd(*shape)
        kw = dict(mode=mode)
        if mode == "bilinear":
            kw["align_corners"] = ac
        if size is not None:
            fn = lambda x: F.interpolate(x, size=size, **kw)
        else:
            fn = lambda x: F.interpolate(x, scale_factor=scale, **kw)
        y, gy, (gx,) = run(fn, [x])
        cases.append(dict(name=name, mode=mode, size=size, scale=scale, align_corners=ac,
                          x=enc(x), y=enc(y), gy=enc(gy), gx=enc(gx)))
    return cases


# ---- batch norm -------------------------------------------------------------------------------

def batchnorm_cases():
    cases = []
    specs = [
        # name, shape, affine, momentum
        ("train_nchw_affine", (3, 4, 5, 6), True, 0.1),
        ("train_nc_affine", (6, 5), True, 0.1),
        ("train_nchw_no_affine", (2, 3, 4, 3), False, 0.1),
        ("train_cumulative_momentum_none", (4, 3, 2, 5), True, None),
        ("train_momentum_0_3_ncl", (3, 2, 7), True, 0.3),
    ]
    for (name, shape, affine, mom) in specs:
        C = shape[1]
        bn = torch.nn.BatchNorm2d(C, momentum=mom, affine=affine) if len(shape) == 4 else \
            torch.nn.BatchNorm1d(C, momentum=mom, affine=affine)
        if affine:
            with torch.no_grad():
                bn.weight.copy_(rnd(C) * 0.5 + 1.0)
                bn.bias.copy_(rnd(C))
        w0 = bn.weight.detach().clone() if affine else None
        b0 = bn.bias.detach().clone() if affine else None
        bn.train()
        steps = []
        for _ in range(2):  # two steps: the running stats and num_batches_tracked move twice
            x = (rnd(*shape) * 2.0 + 0.5).requires_grad_(True)
            bn.zero_grad()
            y = bn(x)
            gy = rnd(*shape)
            (y * gy).sum().backward()
            steps.append(dict(x=enc(x), y=enc(y), gy=enc(gy), gx=enc(x.grad),
                              gw=enc(bn.weight.grad) if affine else None, gb=enc(bn.bias.grad) if affine else None,
                              running_mean=enc(bn.running_mean), running_var=enc(bn.running_var),
                              num_batches_tracked=int(bn.num_batches_tracked)))
        bn.eval()
        x = rnd(*shape).requires_grad_(True)
        bn.zero_grad()
        y = bn(x)
        gy = rnd(*shape)
        (y * gy).sum().backward()
        ev = dict(x=enc(x), y=enc(y), gy=enc(gy), gx=enc(x.grad), gw=enc(bn.weight.grad) if affine else None,
                  gb=enc(bn.bias.grad) if affine else None)
        cases.append(dict(name=name, affine=affine, momentum=mom if mom is not None else "NaN", eps=bn.eps,
                          weight=enc(w0), bias=enc(b0), train_steps=steps, eval=ev))
    return cases


# ---- linear -----------------------------------------------------------------------------------

def linear_cases():
    cases = []
    for (name, xshape, out, has_b) in [("linear_2d_bias", (4, 5), 3, True), ("linear_3d_no_bias", (2, 3, 4), 6, False),
                                       ("linear_1d_bias", (7,), 2, True)]:
        x, w = rnd(*xshape), rnd(out, xshape[-1])
        b = rnd(out) if has_b else None
        y, gy, (gx, gw, gb) = run(lambda x, w, b: F.linear(x, w, b), [x, w, b])
        cases.append(dict(name=name, x=enc(x), w=enc(w), b=enc(b), y=enc(y), gy=enc(gy), gx=enc(gx), gw=enc(gw),
                          gb=enc(gb)))
    return cases


if __name__ == "__main__":
    dump("nn_ops_conv.json", conv_cases())
    dump("nn_ops_pool.json", pool_cases())
    dump("nn_ops_upsample.json", upsample_cases())
    dump("nn_ops_batchnorm.json", batchnorm_cases())
    dump("nn_ops_linear.json", linear_cases())
