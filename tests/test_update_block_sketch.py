"""update_block_sketch_ (the decode walk's running block sketches) against the reference, on
NaN-poisoned buffers."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from tolerances import assert_close64
from utils import (
    B,  # the one block-size constant
    ops,
)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_tokens_before", [0, 1, 63, 64, 65, 127, 999])
def test_update_block_sketch(device, num_tokens_before):
    cap, m = 20, 32
    buf = torch.randn(2, 3, cap, m, device=device)
    j = num_tokens_before // B
    c = num_tokens_before % B
    poison(buf[:, :, j + 1 :])  # slots past j are never read nor written
    if c == 0:
        poison(buf[:, :, j])  # a new block overwrites whatever was there
    tok = torch.randn(2, 3, 1, m, device=device)
    before = buf.clone()
    expected = R.update_block_sketch(before, tok, num_tokens_before, B)
    ret = ops().update_block_sketch_(buf, tok, num_tokens_before, B)
    assert ret is None or ret is buf or ret.data_ptr() == buf.data_ptr()
    assert torch.isfinite(buf[:, :, j]).all()
    assert_close64(buf[:, :, j], expected[:, :, j], msg="slot j")
    others = [i for i in range(cap) if i != j]
    assert torch.equal(buf[:, :, others].isnan(), before[:, :, others].isnan())
    assert torch.equal(buf[:, :, others].nan_to_num(), before[:, :, others].nan_to_num()), (
        "slots other than j changed"
    )


@pytest.mark.parametrize("device", device_params())
def test_update_block_sketch_running_mean_equals_block_mean(device):
    # Feeding token sketches one by one reproduces hadamard_sketch of the block means.
    d, m, tokens = 64, 64, 150
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    k = torch.randn(1, 2, tokens, d, device=device)
    tok = ops().hadamard_sketch(k, signs, coords, 1)
    buf = poison(torch.empty(1, 2, 4, m, device=device))
    for t in range(tokens):
        ops().update_block_sketch_(buf, tok[:, :, t : t + 1], t, B)
    exp = R.hadamard_sketch(k, signs, coords, B)
    assert_close64(buf[:, :, :3], exp, scale_atol=10)
