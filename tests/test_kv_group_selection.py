"""prefill_selection="kv_group" (docs/spec.md section 8): one block matrix, walk and block index
per KV group, against the float64 reference of the authors' layer rule (sections 2-4) run on each
group's query heads and its KV head alone; the walk carried from layer to layer per group; the
layer output against the reference attention over that per-group index; a decode step after it."""

import dataclasses

import pytest
import torch

import reference as R
from conftest import device_params
from test_pipeline import MIN_MARGIN, _margin
from test_query_spread_rows import _gap as spread_gap
from tolerances import assert_within_torch_error
from utils import (
    B,  # the one block-size constant
    torch_masked_baseline,
)


def group_reference(cfg, q, k, v, signs, coords, walks_prev):
    """R.layer_prefill per KV group g on q heads [g * group, (g + 1) * group) and kv head g.
    Returns (block_index [B, Hkv, Nq, W], num_selected [B, Hkv, Nq], walks per group, margin)."""
    hkv = k.shape[1]
    group = q.shape[1] // hkv
    idx, cnt, walks, margin = [], [], [], float("inf")
    for g in range(hkv):
        prev = None if walks_prev is None else walks_prev[g]
        r = R.layer_prefill(
            q[:, g * group : (g + 1) * group],
            k[:, g : g + 1],
            v[:, g : g + 1],
            cfg,
            signs,
            coords,
            prev,
            spread_q=q,  # the dense rows by query spread come from every head (section 13)
        )
        idx.append(r["block_index"])
        cnt.append(r["num_selected"])
        walks.append(r["W"])
        t = q.shape[2]
        keeps = r["keep_fracs"]  # kblocks_frac, or less where the spread rows take their share
        margin = min(
            margin, _margin(r["W"].float(), t, t, keeps, cfg.window_tokens(t), cfg.sink_tokens(t))
        )
    if cfg.dense_spread_q_frac > 0:  # the rows' choice not within float32 noise of a tie
        gap = spread_gap(q, cfg.dense_spread_q_frac, cfg.dense_last_q_blocks)
        margin = min(margin, gap * 1e-3)
    width = max(i.shape[-1] for i in idx)
    idx = [torch.nn.functional.pad(i, (0, width - i.shape[-1]), value=-1) for i in idx]
    return torch.cat(idx, dim=1), torch.cat(cnt, dim=1), walks, margin


def assert_same_index(got_idx, got_cnt, ref_idx, ref_cnt):
    assert torch.equal(got_cnt.cpu().long(), ref_cnt.cpu().long())
    n = got_idx.shape[-1]
    for pos in torch.nonzero(torch.ones_like(got_cnt, dtype=torch.bool)).tolist():
        b, h, i = pos
        c = int(got_cnt[b, h, i])
        assert got_idx[b, h, i, :c].tolist() == ref_idx[b, h, i, :c].tolist(), f"row {pos}"
        assert (got_idx[b, h, i, c:n] == -1).all(), "padding"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens,hq,hkv,d", [(1000, 6, 2, 64), (640, 8, 4, 128), (130, 4, 1, 64)])
def test_kv_group_prefill_matches_per_group_reference(device, tokens, hq, hkv, d):
    sw = pytest.importorskip("sketchwalk")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = dataclasses.replace(sw.SketchWalkConfig(), prefill_selection="kv_group", dense_layers=0)
    signs, coords = sw.ops.sketch_transform(d, cfg.sketch_dim, seed=cfg.seed, device=device)
    for _ in range(8):  # inputs whose reference selection is not within float32 noise of a tie
        layers = [
            tuple(
                (torch.randn(1, h, tokens, d, device=device) * s).to(dtype)
                for h, s in ((hq, 3), (hkv, 3), (hkv, 1))
            )
            for _ in range(2)
        ]
        refs, walks, margin = [], None, float("inf")
        for q, k, v in layers:
            idx, cnt, walks, m = group_reference(cfg, q, k, v, signs, coords, walks)
            refs.append((idx, cnt))
            margin = min(margin, m)
        if margin > MIN_MARGIN:
            break
    else:
        pytest.skip("no tie-free draw")
    # The selection alone, as the first layer makes it (nothing carried into it).
    bi, ns, a, _ = sw.attention.select_prefill_blocks(*layers[0][:2], 0, sw.SketchWalkState(cfg))
    assert bi.shape[:2] == (1, hkv) and a.shape[0] == hkv
    assert_same_index(bi, ns, *refs[0])
    # Two layers through the public entry point: the second carries the first's walk per group.
    state = sw.SketchWalkState(cfg)
    for layer, ((q, k, v), (ref_idx, ref_cnt)) in enumerate(zip(layers, refs)):
        out = sw.sketchwalk_attention(q, k, v, layer, state)
        ref_out, _ = R.sparse_attention(
            q.double(),
            k.double(),
            v.double(),
            ref_idx.to(q.device),
            ref_cnt.to(q.device),
            block_size=B,
        )
        base = torch_masked_baseline(q, k, v, ref_idx.to(q.device), ref_cnt.to(q.device), B)
        assert_within_torch_error(out, ref_out, base, dtype, msg=f"layer {layer}")
        assert 0.0 < float(state.last_density[layer]) <= 1.0


def test_kv_group_then_keys4_decode_step():
    sw = pytest.importorskip("sketchwalk")
    cfg = dataclasses.replace(sw.SketchWalkConfig(), prefill_selection="kv_group", dense_layers=0)
    q = torch.randn(1, 4, 301, 64)
    k = torch.randn(1, 2, 301, 64)
    v = torch.randn(1, 2, 301, 64)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :300], k[:, :, :300], v[:, :, :300], 0, state)
    out = sw.sketchwalk_attention(q[:, :, 300:], k, v, 0, state)
    ref = R.layer_decode_step_keys4(q[:, :, 300:].double(), k.double(), v.double(), cfg)
    torch.testing.assert_close(out.double(), ref["out"], atol=1e-5, rtol=1e-5)


def test_kv_group_config_errors():
    sw = pytest.importorskip("sketchwalk")
    with pytest.raises(ValueError, match="prefill_selection"):
        sw.SketchWalkConfig(prefill_selection="head")
    with pytest.raises(ValueError, match="keys4"):
        sw.SketchWalkConfig(prefill_selection="kv_group", decode_scorer="walk")
    assert sw.SketchWalkConfig.paper().prefill_selection == "layer"
