"""score_blocks against the float64 reference."""

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from tolerances import assert_close64
from utils import GQA, assert_raises_naming, ops, reuse_poisoned


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("hq,hkv", GQA)
@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 16), (16, 16), (5, 9), (33, 33)])
@pytest.mark.parametrize("m", [64, 128])
def test_score_blocks_matches_reference(device, hq, hkv, rows, cols, m):
    qs = torch.randn(2, hq, rows, m, device=device)
    ks = torch.randn(2, hkv, cols, m, device=device)
    scale = R.logit_scale(m, m) * 5  # spread the softmax so head mapping matters
    got = ops().score_blocks(qs, ks, scale)
    exp = R.score_blocks(qs, ks, scale)
    assert got.shape == (2, rows, cols) and got.dtype == torch.float32
    assert_close64(got, exp, scale_atol=10)
    torch.testing.assert_close(
        got.double().sum(-1),
        torch.ones(2, rows, dtype=torch.float64, device=device),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_strided_and_large_logits(device):
    # Large logits: needs max-subtracted softmax; strided inputs (last dim contiguous).
    qs = strided_copy(torch.randn(1, 8, 10, 32, device=device) * 30)
    ks = strided_copy(torch.randn(1, 2, 12, 32, device=device) * 30)
    got = ops().score_blocks(qs, ks, 1.0)
    exp = R.score_blocks(qs, ks, 1.0)
    assert torch.isfinite(got).all()
    assert_close64(got, exp, scale_atol=10)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("hq,hkv", [(4, 4), (6, 2)])
@pytest.mark.parametrize("cols", [1, 5, 70])
def test_score_blocks_num_kv_blocks_matches_reference(device, hq, hkv, cols):
    batch, rows, m = 3, 9, 32
    qs = torch.randn(batch, hq, rows, m, device=device)
    ks = torch.randn(batch, hkv, cols, m, device=device)
    counts = torch.tensor([cols, max(1, cols // 2), 1], dtype=torch.int32, device=device)
    reuse_poisoned(batch * rows * cols * 4 * 8, device)
    got = ops().score_blocks(qs, ks, 0.3, counts)
    exp = R.score_blocks(qs, ks, 0.3, counts.cpu())
    assert_close64(got, exp, scale_atol=10)
    for b in range(batch):
        assert torch.all(got[b, :, int(counts[b]) :] == 0)
        assert torch.allclose(
            got[b, :, : int(counts[b])].sum(-1),
            torch.ones(rows, device=device, dtype=torch.float32),
        )


def test_score_blocks_num_kv_blocks_errors_name_the_argument():
    qs, ks = torch.randn(2, 2, 3, 8), torch.randn(2, 1, 4, 8)
    score = ops().score_blocks
    for bad in (
        torch.tensor([4, 5], dtype=torch.int32),
        torch.tensor([0, 1], dtype=torch.int32),
        torch.tensor([1], dtype=torch.int32),
        torch.tensor([1, 1]),
    ):
        assert_raises_naming(lambda: score(qs, ks, 0.1, bad), "num_kv_blocks")
