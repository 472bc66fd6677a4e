"""sketchwalk.calibration: the walk entropy per layer (against a float64 entropy of the reference
walk of docs/spec.md sections 1-4) and the budget it gives (docs/spec.md section 12)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import reference as R
from conftest import device_params
from utils import random_layers


@pytest.fixture(scope="module")
def sw():
    return pytest.importorskip("sketchwalk")


def entropy_reference(walk: torch.Tensor, num_selected: torch.Tensor) -> tuple[float, int]:
    """Loop form: for each row r and query block i the selection thinned (kept < i + 1), the
    entropy of walk[r, i, :i+1] (clamped at 0, normalized) over log(i + 1)."""
    total, count = 0.0, 0
    for r in range(walk.shape[0]):
        for i in range(walk.shape[1]):
            if int(num_selected[r, i]) >= i + 1:
                continue
            p = walk[r, i, : i + 1].double().clamp_min(0)
            p = p / p.sum()
            h = -sum(float(x) * math.log(float(x)) for x in p if x > 0)
            total += h / math.log(i + 1)
            count += 1
    return total, count


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("n", [1, 2, 17])
def test_causal_walk_entropy_matches_the_loop(sw, device, n):
    walk = torch.rand(3, n, n, device=device) ** 4  # peaked rows; the upper triangle ignored
    walk[0, -1, 0] = 0.0  # a zero probability
    num_selected = torch.randint(1, n + 1, (3, n), device=device)
    num_selected[:, 0] = 1  # row 0 has one causal block
    got = sw.calibration.causal_walk_entropy(walk, num_selected)
    want = entropy_reference(walk.cpu(), num_selected.cpu())
    assert got[1] == want[1]
    assert got[0] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
    flat = torch.ones(1, n, n, device=device)  # a flat row has entropy 1
    s, c = sw.calibration.causal_walk_entropy(flat, torch.ones(1, n, device=device))
    assert c == n - 1 and s == pytest.approx(n - 1, rel=1e-12)
    peaked = torch.zeros(1, n, n, device=device)  # all mass on block 0: entropy 0
    peaked[0, :, 0] = 1.0
    peaked[0, 0, -1] = 5.0  # past the diagonal (n > 1): never counted
    s, c = sw.calibration.causal_walk_entropy(peaked, torch.ones(1, n, device=device))
    assert c == n - 1 and s == pytest.approx(0.0, abs=1e-12)


def test_causal_walk_entropy_refuses_bad_shapes(sw):
    with pytest.raises(ValueError, match="walk must be"):
        sw.calibration.causal_walk_entropy(torch.rand(4, 4), torch.ones(4))
    with pytest.raises(ValueError, match="num_selected must be"):
        sw.calibration.causal_walk_entropy(torch.rand(2, 4, 4), torch.ones(2, 5))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [1000, 65])
def test_recorded_entropy_is_the_reference_walks(sw, device, tokens):
    """Three sparse layers (the walk carried): each layer's recorded mean entropy equals the
    float64 entropy of the reference walk over the rows the reference selection thinned."""
    cfg = sw.SketchWalkConfig(dense_layers=1, kblocks_frac=0.2, window_frac=0.01)
    signs, coords = sw.ops.sketch_transform(64, cfg.sketch_dim, seed=cfg.seed, device=device)
    layers = random_layers(4, tokens, device, seed=3)
    state = sw.SketchWalkState(cfg)
    with sw.calibration.record_walk_entropy() as rec:
        for li, (q, k, v) in enumerate(layers):
            sw.sketchwalk_attention(q, k, v, li, state)
    got = rec.per_layer()
    prev, want = None, {}
    for li, (q, k, v) in enumerate(layers[1:], start=1):
        r = R.layer_prefill(q, k, v, cfg, signs, coords, prev)
        prev = r["W"]
        total, count = entropy_reference(r["W"].cpu(), r["num_selected"][:, 0].cpu())
        if count:
            want[li] = total / count
    assert sorted(got) == sorted(want)  # layer 0 is dense: not recorded
    if tokens == 65:
        assert not got  # two blocks: the window keeps both, nothing thinned
    for li in want:
        assert got[li] == pytest.approx(want[li], rel=1e-3), f"layer {li}"
    assert sw.attention.prefill_walk_observer is None  # removed on exit


def test_kv_group_records_every_group(sw):
    cfg = sw.SketchWalkConfig(dense_layers=0, kblocks_frac=0.2, prefill_selection="kv_group")
    ((q, k, v),) = random_layers(1, 700, "cpu", seed=4, hq=6, hkv=3)
    with sw.calibration.record_walk_entropy() as rec:
        sw.sketchwalk_attention(q, k, v, 0, sw.SketchWalkState(cfg))
    assert list(rec.per_layer()) == [0]
    assert 0.0 < rec.per_layer()[0] < 1.0


def test_recording_is_not_reentrant_and_is_removed_on_error(sw):
    with pytest.raises(RuntimeError, match="already recording"):
        with sw.calibration.record_walk_entropy():
            with sw.calibration.record_walk_entropy():
                pass
    assert sw.attention.prefill_walk_observer is None
    with pytest.raises(KeyError):
        with sw.calibration.record_walk_entropy():
            raise KeyError("x")
    assert sw.attention.prefill_walk_observer is None


def test_budget_follows_entropy_to_the_power(sw):
    cfg = sw.SketchWalkConfig(dense_layers=2)
    entropy = {2: 0.2, 3: 0.4, 4: 0.8}
    out = sw.calibration.with_walk_entropy_budget(cfg, 5, entropy, power=2.0)
    raw = [0.04, 0.16, 0.64]
    mean = sum(raw) / 3
    assert out.layer_keep_scale[:2] == (1.0, 1.0)
    assert out.layer_keep_scale[2:] == pytest.approx([x / mean for x in raw], rel=1e-12)
    assert dataclasses.replace(out, layer_keep_scale=()) == cfg
    with pytest.raises(ValueError, match=r"no walk entropy for sparse layers \[4\]"):
        sw.calibration.with_walk_entropy_budget(cfg, 5, {2: 0.5, 3: 0.5})
    with pytest.raises(ValueError, match="non-finite"):
        sw.calibration.with_walk_entropy_budget(cfg, 5, {2: 0.5, 3: 0.5, 4: float("nan")})


def test_hf_calibration_configures_the_budget(sw):
    pytest.importorskip("transformers")
    from sketchwalk.integrations import hf
    from utils import tiny_llama

    model = tiny_llama(num_hidden_layers=4)
    hf.configure(model, dense_layers=1, kblocks_frac=0.2, window_frac=0.01)
    ids = torch.randint(0, 128, (1, 900))
    cfg = hf.calibrate_layer_budget(model, ids, power=2.0)
    assert hf.get_config(model) == cfg
    scale = cfg.layer_keep_scale
    assert len(scale) == 4 and scale[0] == 1.0
    assert sum(scale[1:]) / 3 == pytest.approx(1.0, rel=1e-12)
    # The same prompt through record_walk_entropy under the uniform budget gives the same scale.
    hf.configure(model, dataclasses.replace(cfg, layer_keep_scale=()))
    with torch.no_grad(), sw.calibration.record_walk_entropy() as rec:
        model(input_ids=ids, use_cache=False)
    again = sw.calibration.with_walk_entropy_budget(hf.get_config(model), 4, rec, power=2.0)
    assert again.layer_keep_scale == pytest.approx(scale, rel=1e-9)
    with pytest.raises(ValueError, match="longer prompt"):
        hf.calibrate_layer_budget(model, ids[:, :100])
    assert hf.get_config(model).layer_keep_scale == ()  # the refused call changed nothing
    with pytest.raises(ValueError, match="input_ids must be"):
        hf.calibrate_layer_budget(model, ids[0])
    # A layer of a registered scorer has no walk: refused by name, the config left as it was.
    rows = dataclasses.replace(
        hf.get_config(model), prefill_scorer="sampled_rows", prefill_scorer_layers=(2,)
    )
    hf.configure(model, rows)
    with pytest.raises(ValueError, match=r"no walk entropy for sparse layers \[2\]"):
        hf.calibrate_layer_budget(model, ids)
    assert hf.get_config(model) == rows
