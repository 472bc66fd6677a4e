"""SketchWalkConfig.dense_spread_q_frac (docs/spec.md section 13): per layer and per prefill
sequence, the query blocks of largest query spread keep every causal key block. The spread and
the choice against their float64 references (tests/reference.py), the whole layer against the
float64 layer reference with the knob, and the ragged and paged steps against each sequence
alone. The op itself (ops.query_spread_rows): tests/test_query_spread_rows.py."""

import dataclasses

import pytest
import torch

import reference as R
from conftest import device_params
from test_kv_group_selection import assert_same_index
from test_pipeline import MIN_MARGIN, _margin
from test_query_spread_rows import _gap as spread_gap
from tolerances import assert_within_torch_error
from utils import B, random_layers, torch_masked_baseline


@pytest.fixture
def sw():
    import sketchwalk

    return sketchwalk


def test_knob_validated(sw):
    assert sw.SketchWalkConfig().dense_spread_q_frac == 0.0
    assert sw.SketchWalkConfig.paper().dense_spread_q_frac == 0.0  # the authors' rule
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="dense_spread_q_frac"):
            sw.SketchWalkConfig(dense_spread_q_frac=bad)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [1000, 65])
@pytest.mark.parametrize("in_budget", [True, False])
def test_prefill_layer_matches_the_float64_reference(sw, device, tokens, in_budget):
    """Two sparse layers, the walk carried: the selection equals the float64 layer reference's
    with the spread rows, and the output is within float32 error of its output. The rows add
    density, or (dense_spread_in_budget) keep it within a point of the plain rule's."""
    cfg = sw.SketchWalkConfig(
        dense_layers=0,
        kblocks_frac=0.4 if in_budget else 0.1,  # 0.1 could not pay for 3 of 16 rows
        window_frac=0.01,
        dense_spread_q_frac=0.2,
        dense_spread_in_budget=in_budget,
    )
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    for seed in range(8):  # inputs whose reference selection is not within noise of a tie
        layers = random_layers(2, tokens, device, seed)
        refs, prev, margin = [], None, float("inf")
        for q, k, v in layers:
            r = R.layer_prefill(q, k, v, cfg, signs, coords, prev)
            refs.append(r)
            prev = r["W"]
            w, s = cfg.window_tokens(tokens), cfg.sink_tokens(tokens)
            keeps = r["keep_fracs"]
            margin = min(margin, _margin(r["W"].float(), tokens, tokens, keeps, w, s))
            margin = min(margin, spread_gap(q, 0.2, cfg.dense_last_q_blocks) * 1e-3)
        if margin > MIN_MARGIN:
            break
    assert margin > MIN_MARGIN, f"could not draw tie-free inputs (margin {margin})"
    picker, runner = sw.SketchWalkState(cfg), sw.SketchWalkState(cfg)
    plain = sw.SketchWalkState(dataclasses.replace(cfg, dense_spread_q_frac=0.0))
    added = sw.SketchWalkState(dataclasses.replace(cfg, dense_spread_in_budget=False))
    for li, ((q, k, v), r) in enumerate(zip(layers, refs)):
        index, count, _, _ = sw.attention.select_prefill_blocks(q, k, li, picker)
        assert_same_index(index, count, r["block_index"], r["num_selected"])
        out = sw.sketchwalk_attention(q, k, v, li, runner)
        base = torch_masked_baseline(q, k, v, r["block_index"], r["num_selected"], B)
        assert_within_torch_error(out, r["out"], base, torch.float32, msg=f"layer {li}")
        plain_index = sw.attention.select_prefill_blocks(q, k, li, plain)[0]
        sw.sketchwalk_attention(q, k, v, li, plain)
        if tokens <= 64 * 8:  # 2 query blocks, none a candidate
            assert runner.last_density[li] == plain.last_density[li]
        elif in_budget:  # 3 of 16 blocks dense, paid for by the others (the test can fail;
            # the density itself is checked at 2000+ tokens: test_select_dense_rows.py)
            assert not torch.equal(index, plain_index)
            assert r["keep_fracs"][0] < cfg.kblocks_frac
            sw.sketchwalk_attention(q, k, v, li, added)
            assert runner.last_density[li] < added.last_density[li] - 0.03
        else:  # ... added on top
            assert runner.last_density[li] > plain.last_density[li] + 0.05


def test_ragged_and_paged_prefill_equal_each_sequence_alone(sw):
    """A ragged prefill of three sequences and the same over a paged cache equal each sequence
    run alone (whose selection the test above checks against the reference), in two layers;
    then a decode step of all three, unchanged by the knob's presence."""
    from test_paged_layer import PagedCache
    from test_ragged_layer import packed, qkv

    cfg = sw.SketchWalkConfig(kblocks_frac=0.1, dense_spread_q_frac=0.25)
    lens = [300, 65, 1000]
    qs, ks, vs = qkv([t + 1 for t in lens])
    alone = [sw.SketchWalkState(cfg) for _ in lens]
    ragged = [sw.SketchWalkState(cfg) for _ in lens]
    plain = sw.SketchWalkState(dataclasses.replace(cfg, dense_spread_q_frac=0.0))
    cache = PagedCache(64, 17, len(lens))
    keys4 = sw.PagedKeys4Cache(64, ks[0].shape[1], ks[0].shape[3], "cpu")
    for b, t in enumerate(lens):
        cache.append(b, ks[b][0, :, :t].transpose(0, 1), vs[b][0, :, :t].transpose(0, 1))
    plan = sw.StepPlan(cfg, lens, lens)
    paged_plan = sw.StepPlan(cfg, lens, lens, page_table=cache.table)
    for layer in (2, 3):
        want = packed(
            [
                sw.sketchwalk_attention(q[:, :, :t], k[:, :, :t], v[:, :, :t], layer, s)
                for q, k, v, t, s in zip(qs, ks, vs, lens, alone)
            ]
        )
        args = [packed([x[:, :, :t] for x, t in zip(xs, lens)]) for xs in (qs, ks, vs)]
        got = sw.sketchwalk_attention_varlen(*args, layer, ragged, plan)
        assert torch.equal(got, want), f"ragged prefill, layer {layer}"
        paged = sw.sketchwalk_attention_paged(
            args[0], args[1], cache.k, cache.v, layer, paged_plan, keys4
        )
        torch.testing.assert_close(paged, want, atol=0, rtol=0, msg=f"paged prefill {layer}")
        assert [s.last_density[layer] for s in ragged] == [s.last_density[layer] for s in alone]
        t = lens[2]
        sw.sketchwalk_attention(qs[2][:, :, :t], ks[2][:, :, :t], vs[2][:, :, :t], layer, plain)
        assert alone[2].last_density[layer] > plain.last_density[layer]  # the knob acts
    keys_now = [t + 1 for t in lens]
    step = sw.StepPlan(cfg, [1] * 3, keys_now)
    q_step = packed([q[:, :, t:] for q, t in zip(qs, lens)])
    for layer in (2, 3):
        want = packed(
            [
                sw.sketchwalk_attention(q[:, :, t:], k, v, layer, s)
                for q, k, v, t, s in zip(qs, ks, vs, lens, alone)
            ]
        )
        got = sw.sketchwalk_attention_varlen(q_step, packed(ks), packed(vs), layer, ragged, step)
        assert torch.equal(got, want), f"ragged decode, layer {layer}"


def test_varlen_rows_skip_chunks_and_decodes(sw):
    """dense_varlen_rows: a prefill row of a mixed step gets the rows of that sequence alone, a
    chunk's and a decode's rows none (their selections keep their own rules)."""
    cfg = sw.SketchWalkConfig(dense_spread_q_frac=0.25)
    g = torch.Generator().manual_seed(3)
    lens_q, lens_k = [1, 700, 300], [400, 700, 900]  # decode, prefill, chunk
    q = torch.randn(sum(lens_q), 4, 64, generator=g) + 0.2
    plan = sw.StepPlan(cfg, lens_q, lens_k)
    assert plan.phases() == ("decode", "prefill", "chunk")
    dense = sw.query_spread.dense_varlen_rows(q, plan)
    alone = sw.query_spread.dense_prefill_rows(q[1:701].transpose(0, 1)[None], cfg)
    assert dense.shape == (3, plan.num_q_blocks)
    assert not dense[0].any() and not dense[2].any()
    assert torch.equal(dense[1, : alone.shape[1]], alone[0]) and alone.any()
    assert not dense[1, alone.shape[1] :].any()


@pytest.mark.parametrize("device", device_params())
def test_chunk_selection_ignores_the_knob(sw, device):
    """A prefill chunk keeps section 10's rule: its selection with the knob equals the one
    without."""
    ((q, k, v),) = random_layers(1, 1300, device, seed=5)
    picks = []
    for frac in (0.0, 0.5):
        cfg = sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.1, dense_spread_q_frac=frac)
        state = sw.SketchWalkState(cfg)
        sw.sketchwalk_attention(q[:, :, :700], k[:, :, :700], v[:, :, :700], 2, state)
        picks.append(sw.attention.select_chunk_blocks(q[:, :, 700:], k, 2, state))
    assert torch.equal(picks[0][0], picks[1][0]) and torch.equal(picks[0][1], picks[1][1])
