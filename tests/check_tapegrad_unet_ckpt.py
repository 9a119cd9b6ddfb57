#!/usr/bin/python3
"""Checks that PyTorch loads a tapegrad-written UNet checkpoint (not part of the test suite; needs torch):
reads tests/fixtures/tapegrad_unet.safetensors (a base-4 UNet trained 3 SGD steps by test_unet) and
tapegrad_unet_io.safetensors (its input and eval logits), loads the state_dict into the reference UNet
(copied from tests/gen_unet_fixtures.py) with load_state_dict(strict=True), and compares eval logits.
Exit status 0 only if everything matches. (The two input files are not committed: ~350 KB.)
    TG_WRITE_FIXTURES=1 build/bin/test_unet --filter 'unet/tapegrad_checkpoint*'
    /usr/bin/python3 tests/check_tapegrad_unet_ckpt.py"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_py  # noqa: E402
from gen_unet_fixtures import FIX, UNet  # noqa: E402


def main():
    tensors, _ = safetensors_py.load(os.path.join(FIX, "tapegrad_unet.safetensors"))
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    m = UNet(3, 2, 4)
    result = m.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys, result
    for k, v in m.state_dict().items():
        assert v.dtype == state[k].dtype and v.shape == state[k].shape, (k, v.dtype, state[k].dtype)
    assert int(m.in_conv[1].num_batches_tracked) == 3, m.in_conv[1].num_batches_tracked
    print("load_state_dict(strict=True): ok;", len(state), "tensors")
    io, _ = safetensors_py.load(os.path.join(FIX, "tapegrad_unet_io.safetensors"))
    m.eval()
    with torch.no_grad():
        got = m(torch.from_numpy(io["x"])).numpy()
    want = io["logits_eval"]
    err = float(np.max(np.abs(got - want)))
    print(f"eval logits {want.shape}: max |torch - tapegrad| = {err:.3g} (max |logit| {np.abs(want).max():.3g})")
    if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        print("MISMATCH")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
