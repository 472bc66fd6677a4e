"""update_block_matrix_ (the decode walk's in-place transition update) against the reference, on
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
@pytest.mark.parametrize("num_keys", [1, 2, 64, 65, 66, 128, 129, 700, 1000])
@pytest.mark.parametrize("as_view", [False, True])
def test_update_block_matrix(device, num_keys, as_view):
    n = R.ceil_div(num_keys, B)
    s = (num_keys - 1) % B
    cap = n + 3
    big = torch.rand(2, cap, cap, device=device) + 0.1
    big = big / big.sum(-1, keepdim=True)
    if s == 0:
        poison(big[:, n - 1, :])  # the new block's row and column hold garbage
        poison(big[:, :, n - 1])
    poison(big[:, n:, :])
    poison(big[:, :, n:])
    a = big[:, :n, :n] if as_view else big[:, :n, :n].contiguous()
    r = torch.rand(2, n, device=device)
    r = r / r.sum(-1, keepdim=True)
    expected = R.update_block_matrix(a, r, num_keys, B)
    before = big.clone()
    ops().update_block_matrix_(a, r, num_keys, B)
    assert torch.isfinite(a).all(), "garbage leaked into the block matrix"
    assert_close64(a, expected, scale_atol=10)
    torch.testing.assert_close(
        a.double().sum(-1), torch.ones(2, n, dtype=torch.float64, device=device), atol=1e-5, rtol=0
    )
    if as_view:
        outside = torch.ones(cap, cap, dtype=torch.bool, device=device)
        outside[:n, :n] = False
        assert torch.equal(big[:, outside].nan_to_num(), before[:, outside].nan_to_num())
        assert torch.equal(big[:, outside].isnan(), before[:, outside].isnan())


@pytest.mark.parametrize("device", device_params())
def test_update_block_matrix_order(device):
    # Row c is normalized BEFORE the column blend (authors' order): distinguishable from
    # blending both first because row sums of a non-stochastic A differ from 1.
    num_keys = 64 * 2 + 10  # n = 3 blocks
    a = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]], device=device)
    r = torch.tensor([[0.2, 0.3, 0.5]], device=device)
    expected = R.update_block_matrix(a, r, num_keys, B)
    ops().update_block_matrix_(a, r, num_keys, B)
    assert_close64(a, expected)


# Cached window logits (the incremental form of docs/spec.md section 6 step 1).
