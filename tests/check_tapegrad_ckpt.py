#!/usr/bin/python3
"""Checks that PyTorch loads a tapegrad-written checkpoint: reads
tests/fixtures/tapegrad_seq.safetensors (written by test_layers with TG_WRITE_FIXTURES=1)
with tests/safetensors_py.py, loads it into the equivalent nn.Sequential with
load_state_dict(strict=True) (training-state names "optim.", "sched.", "rng." dropped),
and compares the eval forward on tapegrad's input with tapegrad's output
(tests/fixtures/tapegrad_seq.json). Exit status 0 only if everything matches.
    TG_WRITE_FIXTURES=1 build/bin/test_layers --filter 'layers/tapegrad_checkpoint_for_pytorch'
    /usr/bin/python3 tests/check_tapegrad_ckpt.py [path.safetensors]"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(FIX, "tapegrad_seq.safetensors")
    tensors, meta = safetensors_py.load(path)
    state = {k: torch.from_numpy(v) for k, v in tensors.items()
             if not k.startswith(("optim.", "sched.", "rng."))}
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    result = m.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    for k, v in m.state_dict().items():
        assert v.dtype == state[k].dtype and v.shape == state[k].shape, (k, v.dtype, state[k].dtype)
    assert m[1].num_batches_tracked.dtype == torch.int64
    print("load_state_dict(strict=True): ok;", len(state), "tensors; metadata", meta)
    ref = json.load(open(os.path.join(FIX, "tapegrad_seq.json")))
    x = torch.tensor(ref["x"]["data"], dtype=torch.float32).reshape(ref["x"]["shape"])
    want = np.array(ref["y_eval"]["data"], dtype=np.float32).reshape(ref["y_eval"]["shape"])
    m.eval()
    with torch.no_grad():
        got = m(x).numpy()
    err = float(np.max(np.abs(got - want)))
    print(f"eval forward: max |torch - tapegrad| = {err:.3g}")
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        print("MISMATCH")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
