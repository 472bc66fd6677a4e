"""hadamard_sketch and sketch_transform against the float64 reference."""

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from tolerances import assert_close64
from utils import SEQ_LENS, SKETCH_HEAD_DIMS, ops, sketch_params


def test_reference_hadamard_properties():
    # H H^T = n I and H is an involution up to scale (checks the oracle's own matrix).
    for n in [1, 2, 64, 256]:
        h = R.hadamard_matrix(n)
        assert torch.equal(h @ h.T, n * torch.eye(n, dtype=torch.float64))
        assert torch.equal(h, h.T)
    assert R.next_pow2(137) == 256 and R.next_pow2(1) == 1 and R.next_pow2(64) == 64


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS)
@pytest.mark.parametrize("head_dim", SKETCH_HEAD_DIMS)
def test_hadamard_sketch_matches_reference(device, tokens, head_dim):
    n = R.next_pow2(head_dim)
    batch, heads = 2, 3
    x = torch.randn(batch, heads, tokens, head_dim, device=device)
    for m in sorted({n, max(1, n // 2), 7 if n >= 7 else 1}):
        signs, coords = sketch_params(head_dim, m, device)
        for b in [64, 1] if tokens <= 65 else [64]:
            got = ops().hadamard_sketch(x, signs, coords, b)
            exp = R.hadamard_sketch(x, signs, coords, b)
            assert got.dtype == torch.float32
            assert got.shape == (batch, heads, R.ceil_div(tokens, b), m)
            assert_close64(got, exp, scale_atol=10, msg=f"m={m} b={b}")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("head_dim", [1, 5, 137])
def test_hadamard_sketch_odd_dims_dtypes_strided(device, dtype, head_dim):
    n = R.next_pow2(head_dim)
    x = strided_copy(torch.randn(1, 2, 100, head_dim, device=device).to(dtype))
    assert not x.is_contiguous() and x.stride(-1) == 1
    signs, coords = sketch_params(head_dim, max(1, n - 3), device, seed=3)
    got = ops().hadamard_sketch(x, signs, coords, 16)
    exp = R.hadamard_sketch(x, signs, coords, 16)  # from the same rounded inputs
    assert_close64(got, exp, scale_atol=10)


@pytest.mark.parametrize("device", device_params())
def test_hadamard_sketch_inner_products_when_m_equals_n(device):
    # m = n: <S(x), S(y)> = <x, y> exactly (orthogonal up to scale), whatever the draw.
    d = 128
    x = torch.randn(1, 1, 5, d, device=device)
    y = torch.randn(1, 1, 5, d, device=device)
    signs, coords = ops().sketch_transform(d, d, seed=5, device=device)
    sx = ops().hadamard_sketch(x, signs, coords, 1).double()
    sy = ops().hadamard_sketch(y, signs, coords, 1).double()
    ip = (sx * sy).sum(-1)
    torch.testing.assert_close(ip, (x.double() * y.double()).sum(-1), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "head_dim,sketch_dim", [(64, 64), (128, 128), (128, 32), (96, 128), (1, 1)]
)
def test_sketch_transform(head_dim, sketch_dim):
    o = ops()
    n = R.next_pow2(head_dim)
    signs, coords = o.sketch_transform(head_dim, sketch_dim, seed=0)
    assert signs.shape == (n,) and signs.dtype == torch.float32
    assert coords.shape == (sketch_dim,) and coords.dtype == torch.int64
    assert set(signs.unique().tolist()) <= {-1.0, 1.0}
    assert coords.unique().numel() == sketch_dim
    assert int(coords.min()) >= 0 and int(coords.max()) < n
    s2, c2 = o.sketch_transform(head_dim, sketch_dim, seed=0)
    assert torch.equal(signs, s2) and torch.equal(coords, c2), "not deterministic per seed"
    if n >= 16:
        s3, c3 = o.sketch_transform(head_dim, sketch_dim, seed=1)
        assert not (torch.equal(signs, s3) and torch.equal(coords, c3)), "seed ignored"


def test_logit_scale():
    o = ops()
    for m, d in [(128, 128), (64, 64), (32, 128), (128, 96)]:
        assert o.logit_scale(m, d) == pytest.approx(m**1.5 / (100 * R.next_pow2(d)), rel=1e-12)
    assert o.logit_scale(128, 128) == pytest.approx(0.1131, abs=1e-4)
