"""A prefill chunk (docs/spec.md section 10: Tq new queries over Tk keys) through
sketchwalk_attention against the float64 reference layer_prefill_chunk, and the keys4 state
it leaves (its decode step equals a decode step after a whole-prompt prefill's state)."""

import pytest
import torch

import reference as R
from conftest import device_params
from tolerances import assert_within_torch_error
from utils import (
    B,  # the one block-size constant
    torch_masked_baseline,
)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tq,tk", [(2, 130), (65, 400), (300, 1000), (128, 129)])
@pytest.mark.parametrize("selection", ["layer", "kv_group"])
def test_prefill_chunk_matches_reference(sw, device, tq, tk, selection):
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = sw.SketchWalkConfig(dense_layers=0, prefill_selection=selection)
    q = (torch.randn(1, 4, tq, 64, device=device) * 3).to(dtype)
    k = (torch.randn(1, 2, tk, 64, device=device) * 3).to(dtype)
    v = torch.randn(1, 2, tk, 64, device=device).to(dtype)
    state = sw.SketchWalkState(cfg)
    out = sw.sketchwalk_attention(q, k, v, 0, state)
    signs, coords = state.sketch_transform(64, device)
    if selection == "layer":
        ref = R.layer_prefill_chunk(q, k, v, cfg, signs, coords)
    else:  # per KV group: each group's query heads as their own batch row (section 8)
        rows = [
            R.layer_prefill_chunk(
                q[:, 2 * g : 2 * g + 2], k[:, g : g + 1], v[:, g : g + 1], cfg, signs, coords
            )
            for g in range(2)
        ]
        ref = dict(
            out=torch.cat([r["out"] for r in rows], 1),
            block_index=torch.cat([r["block_index"] for r in rows], 1),
            num_selected=torch.cat([r["num_selected"] for r in rows], 1),
        )
    base = torch_masked_baseline(q, k, v, ref["block_index"], ref["num_selected"], B)
    assert_within_torch_error(out, ref["out"], base, dtype, msg=f"chunk {tq} over {tk}")
    want = R.block_index_to_mask(ref["block_index"], ref["num_selected"], R.ceil_div(tk, B))
    density = state.last_density[0]
    kept = (
        R.token_mask_from_block_index(ref["block_index"], ref["num_selected"], tq, tk, B, 0, tq)
        .double()
        .mean()
        .item()
    )
    causal = (tq * (tk - tq) + tq * (tq + 1) / 2) / (tq * tk)
    assert density == pytest.approx(kept / causal, rel=1e-9), (density, kept / causal)
    assert want.any()


def test_chunked_prefill_then_decode(sw):
    """Two chunks then a decode step: the keys4 state after the chunks equals a whole prefill's,
    so the decode step matches the one after a whole-prompt prefill (its selection reads only
    the 4-bit keys and the current query)."""
    cfg = sw.SketchWalkConfig(dense_layers=0)
    q = torch.randn(1, 4, 701, 64)
    k = torch.randn(1, 2, 701, 64)
    v = torch.randn(1, 2, 701, 64)
    chunked = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :300], k[:, :, :300], v[:, :, :300], 0, chunked)
    sw.sketchwalk_attention(q[:, :, 300:700], k[:, :, :700], v[:, :, :700], 0, chunked)
    whole = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :700], k[:, :, :700], v[:, :, :700], 0, whole)
    a, b = chunked.layers[0], whole.layers[0]
    assert a.num_keys == b.num_keys == 700
    assert torch.equal(a.codes[:, :, :700], b.codes[:, :, :700])
    assert torch.equal(a.scales[:, :, :700], b.scales[:, :, :700])
    step_chunked = sw.sketchwalk_attention(q[:, :, 700:], k, v, 0, chunked)
    step_whole = sw.sketchwalk_attention(q[:, :, 700:], k, v, 0, whole)
    assert torch.equal(step_chunked, step_whole)
    # A chunk on a cache the state has not seen (another prompt's): the keys4 state is rebuilt.
    other = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, 650:700], k[:, :, :700], v[:, :, :700], 0, other)
    assert torch.equal(other.layers[0].codes[:, :, :700], b.codes[:, :, :700])
