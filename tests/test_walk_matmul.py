"""config.walk_matmul "bf16x3": the prefill walk (docs/spec.md section 3) from three bfloat16
products per step, against the float64 walk of tests/reference.py and the float32 one, at odd
sizes (N = 1, 63, 65, 700 blocks), with and without the previous layer's W, on the CPU (the same
products in float32) and on CUDA (tensor-core GEMMs); and the layer and ragged paths run it."""

import pytest
import torch

import reference as R
from conftest import device_params

sw = pytest.importorskip("sketchwalk")


def row_stochastic(rows, n, device, gen):
    a = torch.rand(rows, n, n, generator=gen).to(device) ** 4  # peaked rows, as block scores are
    return a / a.sum(-1, keepdim=True)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("n", [1, 63, 65, 700])
@pytest.mark.parametrize("degree", [1, 3])
@pytest.mark.parametrize("carried", [False, True])
def test_bf16x3_walk_matches_the_float64_walk(device, n, degree, carried):
    gen = torch.Generator().manual_seed(n * 10 + degree)
    a = row_stochastic(2, n, device, gen)
    init = row_stochastic(2, n, device, gen) if carried else None
    cfg = sw.SketchWalkConfig(degree=degree, walk_matmul="bf16x3")
    want = R.walk_blocks(
        a.cpu(), a.cpu(), None if init is None else init.cpu(), degree, cfg.damping
    )
    got = sw.attention.walk_from(a, None if init is None else init.clone(), cfg)
    assert got.dtype == torch.float32 and got.shape == a.shape and got.device == a.device
    # Non-negative sums of ~2^-16-accurate products: relative error ~1e-5 entry by entry (a
    # bfloat16 walk would be ~4e-3 off; the float32 one ~1e-7).
    rel = ((got.cpu().double() - want).abs() / want.clamp_min(1e-30)).max().item()
    assert rel < 2e-4, rel
    fp32 = sw.attention.walk_from(
        a, None if init is None else init.clone(), sw.SketchWalkConfig(degree=degree)
    )
    if n >= sw.attention.BF16X3_MIN_BLOCKS:  # the bf16x3 path ran, not the float32 one
        assert not torch.equal(got, fp32)
    else:  # small walks stay float32 (the split's launches would cost more than they save)
        assert torch.equal(got, fp32)


def test_bf16x3_walk_degree_0_is_the_scores():
    a = row_stochastic(1, 10, "cpu", torch.Generator().manual_seed(0))
    cfg = sw.SketchWalkConfig(degree=0, walk_matmul="bf16x3")
    assert torch.equal(sw.attention.walk_from(a, None, cfg), a)


def test_walk_matmul_is_checked():
    with pytest.raises(ValueError, match="walk_matmul must be one of"):
        sw.SketchWalkConfig(walk_matmul="tf32")


@pytest.mark.parametrize("device", device_params())
def test_layer_with_bf16x3_walk_selects_as_the_float32_walk(device, monkeypatch):
    # One prefill layer at 2,000 tokens (32 blocks; the threshold lowered so that the bf16x3
    # walk runs): the walks agree to ~1e-5, so the kept blocks agree except where two
    # candidates' scores tie within that (none here), and the output equals the float32 walk's.
    monkeypatch.setattr(sw.attention, "BF16X3_MIN_BLOCKS", 16)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, h, 2000, 64, generator=gen).to(device, dtype) for h in (4, 2, 2))
    out = {}
    for matmul in ("fp32", "bf16x3"):
        state = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, walk_matmul=matmul))
        out[matmul] = sw.sketchwalk_attention(q, k, v, 0, state)
        out[matmul + "_density"] = state.last_density[0]
        out[matmul + "_walk"] = state._carried_walk.clone()
    assert not torch.equal(out["bf16x3_walk"], out["fp32_walk"])  # two different paths ran
    torch.testing.assert_close(out["bf16x3_walk"], out["fp32_walk"], rtol=2e-4, atol=1e-9)
    assert out["bf16x3_density"] == out["fp32_density"] < 1.0
    torch.testing.assert_close(out["bf16x3"], out["fp32"], rtol=0, atol=0)
