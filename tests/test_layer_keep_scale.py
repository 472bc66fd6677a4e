"""SketchWalkConfig.layer_keep_scale (per-layer budgets) and sketchwalk.layer_budget: layer i keeps
min(1, frac * scale[i]) of its candidates in prefill, chunks and decode steps. Against the float64
reference of each phase run with the scaled fraction; the ragged and paged steps equal each
sequence alone under the same scale."""

import dataclasses

import pytest
import torch

import reference as R
from conftest import device_params
from test_kv_group_selection import assert_same_index
from test_pipeline import MIN_MARGIN, _margin
from tolerances import assert_within_torch_error
from utils import B, random_layers, torch_masked_baseline


@pytest.fixture
def sw():
    import sketchwalk

    return sketchwalk


def test_knob_validated_and_resolved(sw):
    cfg = sw.SketchWalkConfig(kblocks_frac=0.2, layer_keep_scale=[1, 0.5, 2.5, 7])
    assert cfg.layer_keep_scale == (1.0, 0.5, 2.5, 7.0)
    hash(cfg)  # frozen and hashable, also when built from a JSON list
    fracs = [cfg.layer_keep_frac(0.2, i) for i in range(6)]
    assert fracs == pytest.approx([0.2, 0.1, 0.5, 1.0, 0.2, 0.2])  # clipped at 1; 1 past the end
    assert cfg.layer_keep_frac(0.2, None) == 0.2
    assert sw.SketchWalkConfig().layer_keep_scale == ()
    assert sw.SketchWalkConfig.paper().layer_keep_scale == ()  # the authors' uniform rule
    for bad in ([-0.5], [float("inf")], [float("nan")], [True], "12", 2.0, [None]):
        with pytest.raises(ValueError, match="layer_keep_scale"):
            sw.SketchWalkConfig(layer_keep_scale=bad)


def test_keep_scale_by_band_keeps_the_average(sw):
    budget = sw.layer_budget
    cfg = sw.SketchWalkConfig()  # dense_layers 2
    assert budget.sparse_layer_bands(cfg, 28, 4) == [
        list(range(2, 9)),
        list(range(9, 16)),
        list(range(16, 23)),
        list(range(23, 28)),
    ]
    assert budget.sparse_layer_bands(cfg, 4, 5) == [[2], [3]]
    scale = budget.keep_scale_by_band(cfg, 28, (1, 0.5, 1, 2))
    assert len(scale) == 28 and scale[:2] == (1.0, 1.0)
    assert sum(scale[2:]) / 26 == pytest.approx(1.0)
    assert scale[9] / scale[2] == pytest.approx(0.5) and scale[27] / scale[2] == pytest.approx(2)
    # A layer kept dense (dense_layer_ids) is left out of the average.
    ids = dataclasses.replace(cfg, dense_layer_ids=(27,))
    scale = budget.keep_scale_by_band(ids, 28, (1, 1, 1, 3))
    assert sum(scale[2:27]) / 25 == pytest.approx(1.0) and scale[27] == 1.0
    got = budget.with_band_budget(cfg, 28, (1, 1, 1, 2))
    assert got.layer_keep_scale == budget.keep_scale_by_band(cfg, 28, (1, 1, 1, 2))
    for bad in ((), (1, -1), (0, 0), (float("inf"),)):
        with pytest.raises(ValueError, match="weights"):
            budget.keep_scale_by_band(cfg, 28, bad)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [1000, 65])
def test_prefill_layers_keep_their_scaled_fraction(sw, device, tokens):
    """Three sparse layers scaled 0.4 / 2.5 / 1: each selects what the float64 reference of the
    authors' rule selects at kblocks_frac * scale, the walk carried across them."""
    cfg = sw.SketchWalkConfig(
        dense_layers=0, kblocks_frac=0.2, window_frac=0.01, layer_keep_scale=(0.4, 2.5)
    )
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    for seed in range(8):  # inputs whose reference selection is not within noise of a tie
        layers = random_layers(3, tokens, device, seed)
        refs, prev, margin = [], None, float("inf")
        for li, (q, k, v) in enumerate(layers):
            frac = cfg.layer_keep_frac(cfg.kblocks_frac, li)
            r = R.layer_prefill(
                q, k, v, dataclasses.replace(cfg, kblocks_frac=frac), signs, coords, prev
            )
            refs.append(r)
            prev = r["W"]
            w, s = cfg.window_tokens(tokens), cfg.sink_tokens(tokens)
            margin = min(margin, _margin(r["W"].float(), tokens, tokens, frac, w, s))
        if margin > MIN_MARGIN:
            break
    assert margin > MIN_MARGIN, f"could not draw tie-free inputs (margin {margin})"
    picker, runner = sw.SketchWalkState(cfg), sw.SketchWalkState(cfg)
    counts = []
    for li, ((q, k, v), r) in enumerate(zip(layers, refs)):
        index, count, _, _ = sw.attention.select_prefill_blocks(q, k, li, picker)
        assert_same_index(index, count, r["block_index"], r["num_selected"])
        out = sw.sketchwalk_attention(q, k, v, li, runner)
        base = torch_masked_baseline(q, k, v, r["block_index"], r["num_selected"], B)
        assert_within_torch_error(out, r["out"], base, torch.float32, msg=f"layer {li}")
        counts.append(int(count.sum()))
    if tokens > 64 * 8:  # the scale moved the selections (the test can fail)
        assert counts[0] < counts[2] < counts[1]


@pytest.mark.parametrize("device", device_params())
def test_chunk_and_keys4_decode_keep_their_scaled_fraction(sw, device):
    """A prefill chunk and a keys4 decode step in layer 3 (scale 0.3) select what the float64
    references select at the scaled fractions (prefill's kblocks_frac, the decode steps')."""
    cfg = sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.4, layer_keep_scale=(1, 1, 1, 0.3))
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    ((q, k, v),) = random_layers(1, 1501, device, seed=11)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :900], k[:, :, :900], v[:, :, :900], 3, state)
    got_idx, got_cnt = sw.attention.select_chunk_blocks(q[:, :, 900:1500], k[:, :, :1500], 3, state)
    chunk_cfg = dataclasses.replace(cfg, kblocks_frac=0.4 * 0.3)
    r = R.layer_prefill_chunk(
        q[:, :, 900:1500], k[:, :, :1500], v[:, :, :1500], chunk_cfg, signs, coords
    )
    assert_same_index(got_idx, got_cnt, r["block_index"], r["num_selected"])
    unscaled = R.layer_prefill_chunk(
        q[:, :, 900:1500], k[:, :, :1500], v[:, :, :1500], cfg, signs, coords
    )
    assert int(unscaled["num_selected"].sum()) > int(got_cnt.sum())
    # A keys4 decode step: the decode steps' fraction (0.125) times 0.3. The density is the
    # reference selection's, not the unscaled one's; the output too on the CPU (CUDA scores the
    # 4-bit keys in bfloat16, so its near-ties may differ from the float64 reference's).
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :1500], k[:, :, :1500], v[:, :, :1500], 3, state)
    out = sw.sketchwalk_attention(q[:, :, 1500:], k, v, 3, state)

    def reference_step(keep_frac):
        fracs = dict(kblocks_frac=keep_frac, window_frac=0.05, sink_frac=0.025)
        assert cfg.decode_fracs() == (0.125, 0.05, 0.025)
        ref = R.layer_decode_step_keys4(q[:, :, 1500:].cpu(), k.cpu(), v.cpu(), fracs)
        kept = ref["keep"].sum(-1).double()
        last = 1501 - (R.ceil_div(1501, B) - 1) * B  # tokens of the last, partial block
        return ref, float(((kept - 1) * B + last).mean() / 1501)

    ref, density = reference_step(0.125 * 0.3)
    _, unscaled = reference_step(0.125)
    assert state.last_density[3] == pytest.approx(density, rel=0.05)
    assert unscaled > 1.5 * density
    if device == "cpu":
        base = torch_masked_baseline(
            q[:, :, 1500:], k, v, ref["block_index"], ref["num_selected"], B
        )
        assert_within_torch_error(out, ref["out"], base, torch.float32, msg="decode")


def test_ragged_and_paged_steps_equal_each_sequence_alone(sw):
    """The scale reaches the serving layouts: a ragged prefill of three sequences, their decode
    step in one call, and the same over a paged cache, equal each sequence run alone (whose
    selections the tests above check against the references), in layers scaled 0.3 and 2."""
    from test_paged_layer import PagedCache
    from test_ragged_layer import packed, qkv

    cfg = sw.SketchWalkConfig(kblocks_frac=0.2, layer_keep_scale=(1, 1, 0.3, 2))
    lens = [300, 65, 1000]
    qs, ks, vs = qkv([t + 1 for t in lens])
    alone = [sw.SketchWalkState(cfg) for _ in lens]
    ragged = [sw.SketchWalkState(cfg) for _ in lens]
    cache = PagedCache(64, 17, len(lens))
    keys4 = sw.PagedKeys4Cache(64, ks[0].shape[1], ks[0].shape[3], "cpu")
    for b, t in enumerate(lens):
        cache.append(b, ks[b][0, :, :t].transpose(0, 1), vs[b][0, :, :t].transpose(0, 1))
    plan = sw.StepPlan(cfg, lens, lens)
    paged_plan = sw.StepPlan(cfg, lens, lens, page_table=cache.table)
    densities = {}
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
        densities[layer] = [s.last_density[layer] for s in alone]
        assert [s.last_density[layer] for s in ragged] == densities[layer]
    assert densities[2][2] < densities[3][2]  # the scale acts (the shorter ones are all dense)
    for b, t in enumerate(lens):
        cache.append(b, ks[b][0, :, t:].transpose(0, 1), vs[b][0, :, t:].transpose(0, 1))
    keys_now = [t + 1 for t in lens]
    plan = sw.StepPlan(cfg, [1] * 3, keys_now)
    paged_plan = sw.StepPlan(cfg, [1] * 3, keys_now, page_table=cache.table)
    for layer in (2, 3):
        want = packed(
            [
                sw.sketchwalk_attention(q[:, :, t:], k, v, layer, s)
                for q, k, v, t, s in zip(qs, ks, vs, lens, alone)
            ]
        )
        q_step = packed([q[:, :, t:] for q, t in zip(qs, lens)])
        got = sw.sketchwalk_attention_varlen(q_step, packed(ks), packed(vs), layer, ragged, plan)
        assert torch.equal(got, want), f"ragged decode, layer {layer}"
        assert [s.last_density[layer] for s in ragged] == [s.last_density[layer] for s in alone]
        k_step = packed([k[:, :, t:] for k, t in zip(ks, lens)])
        paged = sw.sketchwalk_attention_paged(
            q_step, k_step, cache.k, cache.v, layer, paged_plan, keys4
        )
        torch.testing.assert_close(paged, want, atol=0, rtol=0, msg=f"paged decode {layer}")


def test_hf_left_padded_decode_keeps_the_scaled_fraction(sw):
    """transformers: the decode steps of a left-padded batch (one batched keys4 state) select at
    each layer's scaled fraction, as each row does alone."""
    pytest.importorskip("transformers")
    from sketchwalk.integrations import hf
    from test_hf_integration import (
        NEW_TOKENS,
        PROMPT_LEN,
        left_pad,
        make_pair,
        prompts,
        sparse_config,
    )

    _, model = make_pair("llama")
    cfg = sparse_config(decode_kblocks_frac=0.5, layer_keep_scale=(1, 0.2, 1.6, 0.4))
    base = prompts(2, PROMPT_LEN)
    pads = [0, 130]
    kw = dict(max_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)

    def decode_density(config, ids, mask=None):
        hf.configure(model, config)
        with torch.no_grad():
            model.generate(ids, attention_mask=mask, **kw)
        return hf.last_density(model, "decode")

    batched = decode_density(cfg, *left_pad(base, pads))
    alone = [decode_density(cfg, base[row : row + 1, pad:]) for row, pad in enumerate(pads)]
    unscaled = decode_density(dataclasses.replace(cfg, layer_keep_scale=()), *left_pad(base, pads))
    for layer in (1, 2, 3):
        want = sum(a[layer] for a in alone) / 2
        assert batched[layer] == pytest.approx(want, rel=1e-6), layer
        assert abs(unscaled[layer] - want) > 0.01, layer  # the scale acts here


def test_bad_layer_index_and_band_weights_refused(sw):
    cfg = sw.SketchWalkConfig(layer_keep_scale=(1, 2))
    with pytest.raises(ValueError, match="layer_idx"):
        cfg.layer_keep_frac(0.2, -1)
    budget = sw.layer_budget
    for bad in ("12", (1, True), (1, "2"), [None]):
        with pytest.raises(ValueError, match="weights"):
            budget.keep_scale_by_band(cfg, 28, bad)
    # 26 sparse layers in bands of ceil(26 / 8) = 4 make 7 bands: an 8th weight has no band.
    with pytest.raises(ValueError, match="7 bands"):
        budget.keep_scale_by_band(cfg, 28, (1,) * 7 + (5,))
    with pytest.raises(ValueError, match="bands"):
        budget.keep_scale_by_band(cfg, 4, (1, 1, 1))  # 2 sparse layers


@pytest.mark.parametrize("device", device_params())
def test_kv_group_prefill_keeps_the_scaled_fraction(sw, device):
    """prefill_selection "kv_group": each group selects what the float64 per-group reference
    selects at kblocks_frac * scale (layer 1 scaled 2.5 after layer 0 at 1, the walk carried)."""
    from test_kv_group_selection import group_reference

    cfg = sw.SketchWalkConfig(
        dense_layers=0, kblocks_frac=0.15, prefill_selection="kv_group", layer_keep_scale=(1, 2.5)
    )
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    for seed in range(8):
        layers = random_layers(2, 1000, device, 20 + seed, hq=6, hkv=2)
        refs, walks, margin = [], None, float("inf")
        for li, (q, k, v) in enumerate(layers):
            scaled = dataclasses.replace(cfg, kblocks_frac=cfg.layer_keep_frac(0.15, li))
            idx, cnt, walks, m = group_reference(scaled, q, k, v, signs, coords, walks)
            refs.append((idx, cnt))
            margin = min(margin, m)
        if margin > MIN_MARGIN:
            break
    assert margin > MIN_MARGIN, f"could not draw tie-free inputs (margin {margin})"
    state = sw.SketchWalkState(cfg)
    counts = []
    for li, ((q, k, _), (idx, cnt)) in enumerate(zip(layers, refs)):
        got_idx, got_cnt, _, _ = sw.attention.select_prefill_blocks(q, k, li, state)
        assert_same_index(got_idx, got_cnt, idx, cnt)
        counts.append(int(got_cnt.sum()))
    assert counts[1] > counts[0]


@pytest.mark.parametrize("device", device_params())
def test_walk_decode_keeps_the_scaled_fraction(sw, device):
    """The authors' walk decode (paper preset: one split for both phases) in a layer scaled 0.3:
    its decode step keeps what the float64 reference keeps at 0.125 * 0.3."""
    cfg = sw.SketchWalkConfig.paper(dense_layers=0, layer_keep_scale=(0.3,))
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    ((q, k, v),) = random_layers(1, 1201, device, seed=5)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :1200], k[:, :, :1200], v[:, :, :1200], 0, state)
    sw.sketchwalk_attention(q[:, :, 1200:], k, v, 0, state)

    def reference_density(keep_frac):
        ref_cfg = dataclasses.replace(cfg, kblocks_frac=keep_frac, layer_keep_scale=())
        pre = R.layer_prefill(
            q[:, :, :1200], k[:, :, :1200], v[:, :, :1200], ref_cfg, signs, coords
        )
        window = torch.cat(
            [pre["window"], R.hadamard_sketch(q[:, :, 1200:], signs, coords, 1)], dim=2
        )[:, :, -cfg.query_window :]
        step = R.layer_decode_step(
            q[:, :, 1200:], k, v, window, pre["transition"], ref_cfg, signs, coords
        )
        kept = step["keep"].sum(-1).double()
        last = 1201 - (R.ceil_div(1201, B) - 1) * B
        return float(((kept - 1) * B + last).mean() / 1201)

    want = reference_density(0.125 * 0.3)
    assert state.last_density[0] == pytest.approx(want, rel=0.05)
    assert reference_density(0.125) > want + 0.03  # the unscaled density is out of reach


def test_hf_configure_refuses_a_scale_longer_than_the_model(sw):
    pytest.importorskip("transformers")
    from sketchwalk.integrations import hf
    from test_hf_integration import make_pair, sparse_config

    _, model = make_pair("llama")  # 4 layers
    hf.configure(model, sparse_config(layer_keep_scale=(1, 1, 1, 2)))
    with pytest.raises(ValueError, match="layer_keep_scale has 5 entries"):
        hf.configure(model, sparse_config(layer_keep_scale=(1, 1, 1, 2, 2)))


def test_keep_scale_from_signal_keeps_the_average(sw):
    budget = sw.layer_budget
    cfg = sw.SketchWalkConfig(dense_layer_ids=(4,))  # sparse: 2, 3, 5
    signal = {2: 0.2, 3: 0.4, 4: 9.0, 5: 0.6, 0: 5.0}
    scale = budget.keep_scale_from_signal(cfg, 6, signal)
    assert scale[:2] == (1.0, 1.0) and scale[4] == 1.0
    assert [scale[i] for i in (2, 3, 5)] == pytest.approx([0.5, 1.0, 1.5])
    squared = budget.keep_scale_from_signal(cfg, 6, signal, power=2)
    assert [squared[i] for i in (2, 3, 5)] == pytest.approx(
        [3 * 0.04 / 0.56, 3 * 0.16 / 0.56, 3 * 0.36 / 0.56]
    )
    assert budget.keep_scale_from_signal(cfg, 6, signal, power=0)[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no value for sparse layers \\[5\\]"):
        budget.keep_scale_from_signal(cfg, 6, {2: 1.0, 3: 1.0})
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="signal"):
            budget.keep_scale_from_signal(cfg, 6, {**signal, 3: bad})
    with pytest.raises(ValueError, match="power"):
        budget.keep_scale_from_signal(cfg, 6, signal, power=float("nan"))
