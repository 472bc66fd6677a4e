"""score_blocks against the float64 reference."""

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from tolerances import assert_close64
from utils import GQA, ops


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
    torch.testing.assert_close(got.double().sum(-1), torch.ones(2, rows, dtype=torch.float64,
                                                                device=device), atol=1e-5, rtol=0)


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_strided_and_large_logits(device):
    # Large logits: needs max-subtracted softmax; strided inputs (last dim contiguous).
    qs = strided_copy(torch.randn(1, 8, 10, 32, device=device) * 30)
    ks = strided_copy(torch.randn(1, 2, 12, 32, device=device) * 30)
    got = ops().score_blocks(qs, ks, 1.0)
    exp = R.score_blocks(qs, ks, 1.0)
    assert torch.isfinite(got).all()
    assert_close64(got, exp, scale_atol=10)
