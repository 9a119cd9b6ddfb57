#!/usr/bin/python3
"""Golden values for matmul and the shape ops, from PyTorch (checked with 1.13).

Writes tests/fixtures/shape_ops.json: a list of cases, each with the op name, its
parameters, the inputs, the forward output, an upstream gradient `gout` and the
gradients PyTorch gives the float inputs for it (null where an input has none).
Run: /usr/bin/python3 tests/gen_shape_fixtures.py
"""
import json
import os

import torch
import torch.nn.functional as F
from fixture_util import enc

torch.manual_seed(1234)


cases = []


def case(name, op, fn, inputs, **params):
    """inputs: list of tensors (float ones get gradients)."""
    leaves = [x.clone().requires_grad_(x.dtype == torch.float32) for x in inputs]
    out = fn(*leaves)
    gout = torch.randn(out.shape)
    float_leaves = [x for x in leaves if x.requires_grad]
    grads = torch.autograd.grad(out, float_leaves, gout, allow_unused=True) if out.numel() else [None] * len(float_leaves)
    it = iter(grads)
    gl = []
    for x in leaves:
        if x.requires_grad:
            g = next(it)
            gl.append(enc(g if g is not None else torch.zeros_like(x)))
        else:
            gl.append(None)
    cases.append({
        "name": name,
        "op": op,
        "params": params,
        "inputs": [enc(x) for x in inputs],
        "int_inputs": [x.dtype == torch.int64 for x in inputs],
        "out": enc(out),
        "out_shape": list(out.shape),
        "gout": enc(gout),
        "grads": gl,
    })


def r(*shape):
    return torch.randn(*shape)


# matmul
for name, sa, sb in [
    ("mm_2d", (3, 4), (4, 5)),
    ("mm_batched", (2, 3, 4), (2, 4, 5)),
    ("mm_broadcast_batch", (2, 1, 3, 4), (3, 4, 2)),
    ("mm_batched_x_2d", (2, 3, 4), (4, 5)),
    ("mm_2d_x_batched", (3, 4), (2, 4, 5)),
    ("mm_vec_mat", (4,), (4, 5)),
    ("mm_mat_vec", (3, 4), (4,)),
    ("mm_dot", (4,), (4,)),
    ("mm_vec_batched", (4,), (2, 4, 3)),
    ("mm_batched_vec", (2, 3, 4), (4,)),
]:
    case(name, "matmul", torch.matmul, [r(*sa), r(*sb)])

# reshape
case("reshape_infer", "reshape", lambda a: a.reshape(4, -1), [r(2, 3, 4)], shape=[4, -1])
case("reshape_flat", "reshape", lambda a: a.reshape(-1), [r(2, 3)], shape=[-1])

# permute / transpose
case("permute_3d", "permute", lambda a: a.permute(2, 0, 1).contiguous(), [r(2, 3, 4)], perm=[2, 0, 1])
case("permute_4d_nhwc", "permute", lambda a: a.permute(0, 2, 3, 1).contiguous(), [r(2, 3, 4, 5)], perm=[0, 2, 3, 1])
case("permute_4d_mixed", "permute", lambda a: a.permute(3, 1, 0, 2).contiguous(), [r(2, 3, 4, 5)], perm=[3, 1, 0, 2])
case("permute_big_2d", "permute", lambda a: a.permute(1, 0).contiguous(), [r(37, 70)], perm=[1, 0])
case("transpose_3d", "transpose", lambda a: a.transpose(0, 2).contiguous(), [r(2, 3, 4)], dim0=0, dim1=2)

# slice: a[..., start:end:step] (Python semantics)
for name, shape, dim, start, end, step in [
    ("slice_step2", (5, 6), 1, 1, 5, 2),
    ("slice_negative", (5, 6), 0, -4, -1, 1),
    ("slice_clamped", (5, 6), 1, -100, 100, 3),
    ("slice_3d_step", (2, 7, 3), 1, 2, -1, 2),
    ("slice_empty", (4, 3), 0, 3, 1, 1),
]:
    def fn(a, dim=dim, start=start, end=end, step=step):
        idx = [slice(None)] * a.dim()
        idx[dim] = slice(start, end, step)
        return a[tuple(idx)].contiguous()

    case(name, "slice", fn, [r(*shape)], dim=dim, start=start, end=end, step=step)

# concat
case("concat_dim0", "concat", lambda *t: torch.cat(t, 0), [r(2, 3), r(1, 3), r(3, 3)], dim=0)
case("concat_dim1", "concat", lambda *t: torch.cat(t, 1), [r(2, 2, 3), r(2, 1, 3)], dim=1)
case("concat_dim_neg1", "concat", lambda *t: torch.cat(t, -1), [r(2, 2), r(2, 3)], dim=-1)

# pad (constant mode; negative pads crop)
for name, shape, pads, value in [
    ("pad_last", (2, 3, 4), [1, 2], 0.0),
    ("pad_neg_mixed", (2, 3, 4), [1, -1, -1, 2], 0.5),
    ("pad_three_dims", (2, 3, 4), [-1, -1, 0, 0, 1, 0], -2.0),
    ("pad_crop_all", (3, 4), [-4, 0], 0.0),
]:
    case(name, "pad", lambda a, p=pads, v=value: F.pad(a, p, mode="constant", value=v), [r(*shape)],
         pads=pads, value=value)

# gather
idx2 = torch.tensor([[0, 3], [2, 2], [1, 0]])
case("gather_nc_dim1", "gather", lambda a, i: torch.gather(a, 1, i), [r(3, 4), idx2], dim=1)
idx4 = torch.randint(0, 3, (2, 4, 2, 3))
case("gather_nchw_dim1", "gather", lambda a, i: torch.gather(a, 1, i), [r(2, 3, 2, 3), idx4], dim=1)
idx4s = torch.randint(0, 5, (1, 2, 2, 1))
case("gather_smaller_index", "gather", lambda a, i: torch.gather(a, 3, i), [r(2, 3, 2, 5), idx4s], dim=3)
idx0 = torch.randint(0, 4, (2, 3))
case("gather_dim0", "gather", lambda a, i: torch.gather(a, 0, i), [r(4, 3), idx0], dim=0)

# where
cf = (torch.randn(3, 1) > 0).float()
case("where_float_cond_broadcast", "where", lambda c, a, b: torch.where(c != 0, a, b), [cf, r(1, 4), r(3, 4)])
ci = torch.tensor([1, 0, 0, 3])
case("where_int_cond_scalar_b", "where", lambda c, a, b: torch.where(c != 0, a, b), [ci, r(2, 3, 4), r(())])
cs = (torch.randn(2, 3) > 0).float()
case("where_same_shape", "where", lambda c, a, b: torch.where(c != 0, a, b), [cs, r(2, 3), r(2, 3)])

os.makedirs(os.path.join(os.path.dirname(__file__), "fixtures"), exist_ok=True)
path = os.path.join(os.path.dirname(__file__), "fixtures", "shape_ops.json")
with open(path, "w") as f:
    json.dump({"torch_version": torch.__version__, "cases": cases}, f, indent=None)
    f.write("\n")
print("wrote", path, len(cases), "cases")
