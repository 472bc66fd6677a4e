"""SketchWalkConfig.dense_layer_ids: further layers kept dense beside the first dense_layers (the
per-layer ablations of eval/decode_quality.py). A listed layer computes dense causal attention
(against the float64 reference) in prefill, decode and the ragged step; the sparse layer after it
starts its walk afresh."""

import dataclasses

import pytest
import torch

import reference as R
from conftest import device_params


@pytest.fixture
def sw():
    import sketchwalk

    return sketchwalk


def test_knob_validated_and_normalized(sw):
    cfg = sw.SketchWalkConfig(dense_layer_ids=[5, 3, 5])
    assert cfg.dense_layer_ids == (3, 5)
    assert cfg == sw.SketchWalkConfig(dense_layer_ids=(3, 5))
    hash(cfg)  # frozen and hashable, also when built from a JSON list
    assert [cfg.is_dense_layer(i) for i in range(7)] == [1, 1, 0, 1, 0, 1, 0]
    assert sw.SketchWalkConfig().dense_layer_ids == ()
    for bad in ([-1], [1.5], [True], "3", 3, (i for i in [3])):
        with pytest.raises(ValueError, match="dense_layer_ids"):
            sw.SketchWalkConfig(dense_layer_ids=bad)


def _qkv(tokens, device, seed=0, hq=4, hkv=2, d=64):
    g = torch.Generator().manual_seed(1000 * seed + tokens)
    return [
        (torch.randn(1, h, tokens, d, generator=g) * s).to(device)
        for h, s in ((hq, 3.0), (hkv, 3.0), (hkv, 1.0))
    ]


@pytest.mark.parametrize("device", device_params())
def test_listed_layer_is_dense_in_prefill_and_decode(sw, device):
    cfg = sw.SketchWalkConfig(dense_layer_ids=(3,), window_frac=0.0, kblocks_frac=0.05)
    state = sw.SketchWalkState(cfg)
    q, k, v = _qkv(700, device)
    want = R.dense_causal_attention(q.double(), k.double(), v.double())
    got = sw.sketchwalk_attention(q[:, :, :699], k[:, :, :699], v[:, :, :699], 3, state)
    torch.testing.assert_close(got.double(), want[:, :, :699], atol=1e-4, rtol=1e-4)
    step = sw.sketchwalk_attention(q[:, :, 699:], k, v, 3, state)
    torch.testing.assert_close(step.double(), want[:, :, 699:], atol=1e-4, rtol=1e-4)
    # The same knobs on a sparse layer drop blocks: the comparison above can fail.
    sparse = sw.sketchwalk_attention(q[:, :, :699], k[:, :, :699], v[:, :, :699], 4, state)
    assert not torch.allclose(sparse.double(), want[:, :, :699], atol=1e-3)


@pytest.mark.parametrize("device", device_params())
def test_sparse_layer_after_a_listed_one_starts_its_walk_afresh(sw, device):
    cfg = sw.SketchWalkConfig(dense_layer_ids=(3,), kblocks_frac=0.1)
    layers = [_qkv(2000, device, seed) for seed in range(3)]
    blocks = -(-2000 // 64)

    def state_before_layer4(config):
        state = sw.SketchWalkState(config)
        for layer, (q, k, v) in zip((2, 3), layers):
            sw.sketchwalk_attention(q, k, v, layer, state)
        return state

    # Layer 3 dense: no W of layer 3 for layer 4 (layer 2's is not its predecessor's) ...
    assert state_before_layer4(cfg).carried_walk(4, blocks, 1) is None
    # ... while with layer 3 sparse, layer 4 walks on from layer 3's W.
    walked = state_before_layer4(dataclasses.replace(cfg, dense_layer_ids=()))
    assert walked.carried_walk(4, blocks, 1) is not None
    # Layer 4 after the dense layer 3 is layer 4 of a fresh state.
    fresh = sw.SketchWalkState(cfg)
    through = state_before_layer4(cfg)
    assert torch.equal(
        sw.sketchwalk_attention(*layers[2], 4, through),
        sw.sketchwalk_attention(*layers[2], 4, fresh),
    )


def test_ragged_step_keeps_a_listed_layer_dense(sw):
    cfg = sw.SketchWalkConfig(dense_layer_ids=(5,), window_frac=0.0, kblocks_frac=0.05)
    lens = [300, 65, 700]
    seqs = [_qkv(t, "cpu") for t in lens]
    plan = sw.StepPlan(cfg, lens, lens)
    states = [sw.SketchWalkState(cfg) for _ in lens]

    def packed(i):
        return torch.cat([s[i][0].transpose(0, 1) for s in seqs])

    got = sw.sketchwalk_attention_varlen(packed(0), packed(1), packed(2), 5, states, plan)
    want = torch.cat(
        [
            R.dense_causal_attention(q.double(), k.double(), v.double())[0].transpose(0, 1)
            for q, k, v in seqs
        ]
    )
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
