"""sketchwalk_attention (one model's layers: dense, prefill with carried walk, decode steps)
against the whole-pipeline float64 reference of tests/reference.py."""

import dataclasses

import pytest
import torch

import reference as R
from conftest import device_params
from tolerances import assert_within_torch_error
from utils import (
    B,  # the one block-size constant
    torch_masked_baseline,
)


def _margin(scores, tq, tk, keep_frac, w, sink):
    """How robust the reference selection is to float32 rounding in the kernels: the smallest
    gap between distinct sorted candidate scores of a row (the quantile's rank order), and
    between the threshold and any causal score that does not equal it exactly."""
    s64 = scores.double()
    th = R._row_thresholds(s64, tq, tk, B, keep_frac, w, sink)
    wb = max(1, R.ceil_div(w, B))
    sb = min(s64.shape[2], max(1, R.ceil_div(sink, B)))
    best = float("inf")
    for i in range(s64.shape[1]):
        lim = R.causal_limit(i, tq, tk, B)
        cand = s64[:, i, sb : lim - wb + 1]
        if cand.shape[-1] == 0:
            continue
        srt = cand.sort(-1).values
        if srt.shape[-1] > 1:
            best = min(best, (srt[:, 1:] - srt[:, :-1]).min().item())
        d = (s64[:, i, : lim + 1] - th[:, i : i + 1]).abs()
        d = d[d > 0]
        if d.numel():
            best = min(best, d.min().item())
    return best


def make_layers(num_layers, batch, hq, hkv, tokens, d, dtype, device, extra_tokens):
    layers = []
    for _ in range(num_layers):
        q = torch.randn(batch, hq, tokens + extra_tokens, d, device=device) * 3
        k = torch.randn(batch, hkv, tokens + extra_tokens, d, device=device) * 3
        v = torch.randn(batch, hkv, tokens + extra_tokens, d, device=device)
        layers.append((q.to(dtype), k.to(dtype), v.to(dtype)))
    return layers


MIN_MARGIN = 2e-7  # float32 walk scores of ~1/Nb (ulp ~7e-9) carry rounding errors of a few ulp


def reference_run(cfg, layers, tokens, steps, signs, coords):
    """Whole-model float64 reference: per layer prefill outputs, then `steps` decode steps.
    Returns (prefill refs, decode refs [step][layer], smallest selection margin)."""
    margin = float("inf")
    prefill, walk_prev = {}, None
    for li, (q, k, v) in enumerate(layers):
        if li < cfg.dense_layers:
            continue
        q, k, v = q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens]
        r = R.layer_prefill(q, k, v, cfg, signs, coords, walk_prev)
        walk_prev = r["W"]
        prefill[li] = r
        margin = min(
            margin,
            _margin(
                r["W"].float(),
                tokens,
                tokens,
                cfg.kblocks_frac,
                cfg.window_tokens(tokens),
                cfg.sink_tokens(tokens),
            ),
        )
    windows = {li: r["window"] for li, r in prefill.items()}
    trans = {li: r["transition"] for li, r in prefill.items()}
    decode = []
    for step in range(steps):
        tk = tokens + step + 1
        per_layer = {}
        for li, (q, k, v) in enumerate(layers):
            if li < cfg.dense_layers:
                continue
            qn, kc, vc = q[:, :, tk - 1 : tk], k[:, :, :tk], v[:, :, :tk]
            new_q = R.hadamard_sketch(qn, signs, coords, 1)
            win = torch.cat([windows[li], new_q], dim=2)[:, :, -cfg.query_window :]
            r = R.layer_decode_step(qn, kc, vc, win, trans[li], cfg, signs, coords)
            windows[li], trans[li] = win, r["transition"]
            per_layer[li] = r
            margin = min(
                margin,
                _margin(
                    r["walk"].float(),
                    1,
                    tk,
                    cfg.decode_fracs()[0],
                    cfg.decode_window_tokens(tk),
                    cfg.decode_sink_tokens(tk),
                ),
            )
        decode.append(per_layer)
    return prefill, decode, margin


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize(
    "tokens,hq,hkv,d,dtype",
    [
        (1023, 4, 1, 64, torch.float32),
        (1000, 6, 2, 128, torch.float32),
        (700, 4, 4, 64, torch.bfloat16),
        (63, 2, 1, 64, torch.float32),
    ],
)
def test_pipeline_prefill_and_decode(device, tokens, hq, hkv, d, dtype):
    sw = pytest.importorskip("sketchwalk")
    if device == "cuda" and dtype == torch.float32:
        # The pipeline is tested in half precision on CUDA; the fp32 attention contract is
        # checked by test_sparse_prefill / test_sparse_decode.
        dtype = torch.bfloat16
    steps = 2  # from 1023 tokens the second step opens a new key block
    cfg = sw.SketchWalkConfig.paper()  # the authors' rule, decode walk included (docs/spec.md 1-6)
    signs, coords = sw.ops.sketch_transform(d, cfg.sketch_dim, seed=cfg.seed, device=device)
    # Draw inputs whose reference selection is not within float32 noise of a tie.
    for _ in range(8):
        layers = make_layers(4, 1, hq, hkv, tokens, d, dtype, device, steps)
        prefill, decode, margin = reference_run(cfg, layers, tokens, steps, signs, coords)
        if margin > MIN_MARGIN:
            break
    assert margin > MIN_MARGIN, f"could not draw tie-free inputs (margin {margin})"

    state = sw.SketchWalkState(cfg)
    for li, (q, k, v) in enumerate(layers):
        q, k, v = q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens]
        out = sw.sketchwalk_attention(q, k, v, li, state)
        assert out.shape == q.shape and out.dtype == dtype
        if li < cfg.dense_layers:
            ref = R.dense_causal_attention(q, k, v)
            base = torch.nn.functional.scaled_dot_product_attention(
                q,
                k.repeat_interleave(hq // hkv, 1),
                v.repeat_interleave(hq // hkv, 1),
                is_causal=True,
            )
            assert_within_torch_error(out, ref, base, dtype, msg=f"dense layer {li}")
            continue
        r = prefill[li]
        base = torch_masked_baseline(q, k, v, r["block_index"], r["num_selected"], B)
        assert_within_torch_error(out, r["out"], base, dtype, msg=f"prefill layer {li}")
        dens = float(state.last_density[li])
        assert 0.0 < dens <= 1.0

    for step in range(steps):
        tk = tokens + step + 1
        for li, (q, k, v) in enumerate(layers):
            qn, kc, vc = q[:, :, tk - 1 : tk], k[:, :, :tk], v[:, :, :tk]
            out = sw.sketchwalk_attention(qn, kc, vc, li, state)
            assert out.shape == qn.shape
            if li < cfg.dense_layers:
                ref = R.dense_causal_attention(qn, kc, vc)
                assert_within_torch_error(out, ref, ref.to(dtype), dtype, msg=f"dense decode {li}")
                continue
            r = decode[step][li]
            base = torch_masked_baseline(qn, kc, vc, r["block_index"], r["num_selected"], B)
            assert_within_torch_error(
                out, r["out"], base, dtype, msg=f"decode step {step} layer {li} (tk={tk})"
            )


@pytest.mark.parametrize("device", device_params())
def test_pipeline_all_dense_config_equals_dense(device):
    # window_frac = 1: every causal block is kept, so the sparse path equals dense attention.
    sw = pytest.importorskip("sketchwalk")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = dataclasses.replace(sw.SketchWalkConfig(), window_frac=1.0, dense_layers=0)
    state = sw.SketchWalkState(cfg)
    q = torch.randn(1, 4, 300, 64, device=device).to(dtype)
    k = torch.randn(1, 2, 300, 64, device=device).to(dtype)
    v = torch.randn(1, 2, 300, 64, device=device).to(dtype)
    out = sw.sketchwalk_attention(q, k, v, 0, state)
    ref = R.dense_causal_attention(q, k, v)
    base = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True
    )
    assert_within_torch_error(out, ref, base, dtype, msg="all blocks kept")
    assert float(state.last_density[0]) == pytest.approx(1.0)
