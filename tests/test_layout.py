"""sketchwalk_attention's layout argument: HND and NHD named, never guessed. An NHD call equals
the HND call on the transposed tensors; NHD tensors passed as HND are refused once their token
count cannot be a head count."""

import pytest
import torch

from utils import assert_raises_naming


def test_nhd_equals_hnd(sw):
    cfg = sw.SketchWalkConfig(dense_layers=0)
    q = torch.randn(1, 4, 200, 64)
    k = torch.randn(1, 2, 200, 64)
    v = torch.randn(1, 2, 200, 64)
    want = sw.sketchwalk_attention(q, k, v, 0, sw.SketchWalkState(cfg))
    got = sw.sketchwalk_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        0,
        sw.SketchWalkState(cfg),
        layout="NHD",
    )
    assert got.shape == (1, 200, 4, 64)
    assert torch.equal(got.transpose(1, 2), want)
    # A decode step in NHD continues the same state.
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(
        q.transpose(1, 2)[:, :199],
        k.transpose(1, 2)[:, :199],
        v.transpose(1, 2)[:, :199],
        0,
        state,
        layout="NHD",
    )
    step = sw.sketchwalk_attention(
        q.transpose(1, 2)[:, 199:], k.transpose(1, 2), v.transpose(1, 2), 0, state, layout="NHD"
    )
    assert step.shape == (1, 1, 4, 64)


def test_layout_refusals(sw):
    cfg = sw.SketchWalkConfig(dense_layers=0)
    q = torch.randn(1, 2048, 4, 64)  # NHD: 2048 tokens, 4 heads (Hq = Hkv)
    k = torch.randn(1, 2048, 4, 64)
    assert_raises_naming(lambda: sw.sketchwalk_attention(q, k, k, 0, sw.SketchWalkState(cfg)), "q")
    with pytest.raises(ValueError, match="layout='NHD'"):
        sw.sketchwalk_attention(q, k, k, 0, sw.SketchWalkState(cfg))
    assert_raises_naming(
        lambda: sw.sketchwalk_attention(q, k, k, 0, sw.SketchWalkState(cfg), layout="BTHD"),
        "layout",
    )
    assert_raises_naming(
        lambda: sw.sketchwalk_attention(q[0], k, k, 0, sw.SketchWalkState(cfg), layout="NHD"), "q"
    )


def test_track_density_off_records_nothing(sw):
    """SketchWalkState(track_density=False): the prefill computes no density (its ~30 kernels a
    layer); the outputs are the same."""
    cfg = sw.SketchWalkConfig(dense_layers=0)
    q, k = torch.randn(1, 4, 300, 64), torch.randn(1, 2, 300, 64)
    on, off = sw.SketchWalkState(cfg), sw.SketchWalkState(cfg, track_density=False)
    assert torch.equal(
        sw.sketchwalk_attention(q, k, k, 0, on), sw.sketchwalk_attention(q, k, k, 0, off)
    )
    assert on.last_density and not off.last_density


def test_mismatched_heads_are_refused(sw):
    """q / k of other batch or head counts than the layer's state was made with, and q / k that
    do not match each other, are refused naming the argument (they used to run: issue 23)."""
    cfg = sw.SketchWalkConfig(dense_layers=0)
    q, k = torch.randn(1, 4, 301, 64), torch.randn(1, 2, 301, 64)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :300], k[:, :, :300], k[:, :, :300], 0, state)
    q8 = torch.randn(1, 8, 1, 64)
    with pytest.raises(ValueError, match="state was made for"):
        sw.sketchwalk_attention(q8, k, k, 0, state)
    assert_raises_naming(
        lambda: sw.sketchwalk_attention(
            q, k[:, :, :, :32], k[:, :, :, :32], 0, sw.SketchWalkState(cfg)
        ),
        "k",
    )
    assert_raises_naming(
        lambda: sw.sketchwalk_attention(
            torch.randn(1, 3, 300, 64), k[:, :, :300], k[:, :, :300], 0, sw.SketchWalkState(cfg)
        ),
        "k",
    )
    assert_raises_naming(
        lambda: sw.sketchwalk_attention(
            torch.randn(2, 4, 300, 64), k[:, :, :300], k[:, :, :300], 0, sw.SketchWalkState(cfg)
        ),
        "k",
    )
