"""In-place decode-state updates against the reference, on NaN-poisoned buffers."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from tolerances import assert_close64
from utils import ops

B = 64


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
    assert torch.equal(buf[:, :, others].nan_to_num(), before[:, :, others].nan_to_num()), \
        "slots other than j changed"


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


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("position", [0, 5, 31, 32, 1000])
def test_push_query_window(device, position):
    w, m = 32, 16
    win = torch.randn(2, 4, w, m, device=device)
    poison(win[:, :, position % w])
    qs = torch.randn(2, 4, 1, m, device=device)
    expected = R.push_query_window(win, qs, position)
    ops().push_query_window_(win, qs, position)
    assert torch.equal(win.double().nan_to_num(), expected.nan_to_num())
    assert torch.equal(win.isnan(), expected.isnan())


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
    torch.testing.assert_close(a.double().sum(-1), torch.ones(2, n, dtype=torch.float64,
                                                              device=device), atol=1e-5, rtol=0)
    if as_view:
        outside = torch.ones(cap, cap, dtype=torch.bool, device=device)
        outside[:n, :n] = False
        assert torch.equal(big[:, outside].nan_to_num(), before[:, outside].nan_to_num())
        assert torch.equal(big[:, outside].isnan(), before[:, outside].isnan())


@pytest.mark.parametrize("device", device_params())
def test_update_block_matrix_order(device):
    # Row c is normalized BEFORE the column blend (authors' order): distinguishable from
    # blending both first because row sums of a non-stochastic A differ from 1.
    n, num_keys = 3, 64 * 2 + 10
    a = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]], device=device)
    r = torch.tensor([[0.2, 0.3, 0.5]], device=device)
    expected = R.update_block_matrix(a, r, num_keys, B)
    ops().update_block_matrix_(a, r, num_keys, B)
    assert_close64(a, expected)
