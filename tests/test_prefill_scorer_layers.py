"""SketchWalkConfig.prefill_scorer_layers: the configured prefill scorer ranks only the listed
layers; the other sparse layers rank by the sketch + walk, a sketch layer after a scorer layer
starting its walk afresh. Each layer equals the same layer of a config that uses its scorer
everywhere (those are tested against the float64 references in tests/test_scorers.py and
tests/test_pipeline.py), alone, in a ragged step and over a paged cache."""

import pytest
import torch

from conftest import device_params

SR = dict(prefill_scorer="sampled_rows", prefill_score_rows=2)


@pytest.fixture
def sw():
    import sketchwalk

    return sketchwalk


def test_knob_validated(sw):
    cfg = sw.SketchWalkConfig(**SR, prefill_scorer_layers=[5, 3, 5])
    assert cfg.prefill_scorer_layers == (3, 5)
    hash(cfg)
    assert [cfg.prefill_scorer_at(i) for i in (2, 3, 4, 5)] == [
        "sketch_walk",
        "sampled_rows",
        "sketch_walk",
        "sampled_rows",
    ]
    assert sw.SketchWalkConfig(**SR).prefill_scorer_at(7) == "sampled_rows"  # empty: every layer
    assert sw.SketchWalkConfig().prefill_scorer_at(7) == "sketch_walk"
    for bad in ([-1], [1.5], [True], "3", 3):
        with pytest.raises(ValueError, match="prefill_scorer_layers"):
            sw.SketchWalkConfig(**SR, prefill_scorer_layers=bad)
    with pytest.raises(ValueError, match="prefill_scorer_layers"):
        sw.SketchWalkConfig(prefill_scorer_layers=(3,))  # the sketch + walk everywhere already


def _layers(tokens, device, count=4, seed=0):
    """float32 on the CPU; bfloat16 on CUDA, where the sampled-row kernel runs on tensor cores
    (it refuses float32)."""
    g = torch.Generator().manual_seed(seed)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return [
        [(torch.randn(1, h, tokens, 64, generator=g) * s).to(device, dtype) for h, s in sc]
        for sc in [((4, 3.0), (2, 3.0), (2, 1.0))] * count
    ]


@pytest.mark.parametrize("device", device_params())
def test_each_layer_is_its_scorers_layer(sw, device):
    """Layers 0-1 sketch + walk (the walk carried from 0 to 1), layer 2 sampled rows (the walk of
    layer 1 let go), layer 3 sketch + walk from a fresh walk."""
    cfg = sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2, **SR, prefill_scorer_layers=(2,))
    layers = _layers(1000, device)
    state = sw.SketchWalkState(cfg)
    got = [sw.sketchwalk_attention(q, k, v, i, state) for i, (q, k, v) in enumerate(layers)]
    sketch = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2))
    want = [sw.sketchwalk_attention(q, k, v, i, sketch) for i, (q, k, v) in enumerate(layers[:2])]
    rows = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2, **SR))
    want.append(sw.sketchwalk_attention(*layers[2], 2, rows))
    fresh = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2))
    want.append(sw.sketchwalk_attention(*layers[3], 3, fresh))
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), f"layer {i}"
    # Layer 3 walks afresh: its W is the fresh state's, not that of a walk carried through.
    walked = sw.SketchWalkState(sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2))
    for i, (q, k, v) in enumerate(layers):
        sw.sketchwalk_attention(q, k, v, i, walked)
    nb = -(-1000 // 64)
    assert torch.equal(state.carried_walk(4, nb), fresh.carried_walk(4, nb))
    assert not torch.equal(state.carried_walk(4, nb), walked.carried_walk(4, nb))


def test_scorer_layer_lets_go_of_the_carried_walk(sw):
    cfg = sw.SketchWalkConfig(dense_layers=0, **SR, prefill_scorer_layers=(1,))
    layers = _layers(700, "cpu", count=2)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(*layers[0], 0, state)
    assert state.carried_walk(1, 11) is not None
    sw.sketchwalk_attention(*layers[1], 1, state)
    assert state._carried_walk is None


def test_ragged_and_paged_steps_equal_each_sequence_alone(sw, monkeypatch):
    """... and the sketch layers of a ragged step still select in one batched call."""
    from test_paged_layer import PagedCache
    from test_ragged_layer import packed, qkv

    batched_layers = []
    select = sw.ragged.select_varlen_blocks

    def counted(q, k, cu_seqlens_k, layer_idx, plan, state):
        batched_layers.append(layer_idx)
        return select(q, k, cu_seqlens_k, layer_idx, plan, state)

    monkeypatch.setattr(sw.ragged, "select_varlen_blocks", counted)

    cfg = sw.SketchWalkConfig(kblocks_frac=0.2, **SR, prefill_scorer_layers=(3,))
    lens = [300, 65, 1000]
    qs, ks, vs = qkv(lens)
    alone = [sw.SketchWalkState(cfg) for _ in lens]
    ragged = [sw.SketchWalkState(cfg) for _ in lens]
    cache = PagedCache(64, 17, len(lens))
    keys4 = sw.PagedKeys4Cache(64, ks[0].shape[1], ks[0].shape[3], "cpu")
    for b, t in enumerate(lens):
        cache.append(b, ks[b][0].transpose(0, 1), vs[b][0].transpose(0, 1))
    plan = sw.StepPlan(cfg, lens, lens)
    paged_plan = sw.StepPlan(cfg, lens, lens, page_table=cache.table)
    args = [packed(xs) for xs in (qs, ks, vs)]
    for layer in (2, 3, 4):
        want = packed(
            [sw.sketchwalk_attention(q, k, v, layer, s) for q, k, v, s in zip(qs, ks, vs, alone)]
        )
        got = sw.sketchwalk_attention_varlen(*args, layer, ragged, plan)
        torch.testing.assert_close(got, want, atol=0, rtol=0, msg=f"ragged, layer {layer}")
        paged = sw.sketchwalk_attention_paged(
            args[0], args[1], cache.k, cache.v, layer, paged_plan, keys4
        )
        torch.testing.assert_close(paged, want, atol=0, rtol=0, msg=f"paged, layer {layer}")
        assert [s.last_density[layer] for s in ragged] == [s.last_density[layer] for s in alone]
    assert batched_layers == [2, 4]  # the ragged step's sketch layers (paged calls its own)
