"""The keys4 decode step as a whole (docs/spec.md section 7): quantize_keys4_,
score_blocks_keys4, select_blocks_keys4 and sparse_decode against the float64 reference, its
CUDA-graph capture, and the layer (sketchwalk_attention) with the default keys4 decode scorer."""

import pytest
import torch

import reference as R
from conftest import device_params
from keys4_utils import empty_cache
from utils import (
    B,  # the one block-size constant
    ops,
)

# ---------------------------------------------------------------------------------------
# The whole step: the kept set equals the reference's except at near-ties


def near_tie_ok(keep, ref_keep, mass_ref, seq_len, cfg):
    n, sb, wb = R.keys4_budget(seq_len, cfg["window_frac"], cfg["sink_frac"])
    diff = (keep != ref_keep).nonzero().tolist()
    for b, g, j in diff:
        cand = mass_ref[b, g, sb : n - wb]
        th = torch.quantile(cand, 1 - cfg["kblocks_frac"]).item()
        assert abs(mass_ref[b, g, j].item() - th) <= 1e-4 * max(th, 1e-12) + 1e-7, (
            f"block {j} of row ({b}, {g}) differs from the reference away from the threshold"
        )


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [65, 1000, 5000])
@pytest.mark.parametrize("hq,hkv,head_dim", [(9, 3, 64), (32, 8, 128), (14, 2, 64)])
def test_keys4_decode_step_against_reference(device, tokens, hq, hkv, head_dim):
    cfg = dict(kblocks_frac=0.125, window_frac=0.05, sink_frac=0.025)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q = torch.randn(1, hq, 1, head_dim, device=device).to(dtype)
    k = torch.randn(1, hkv, tokens, head_dim, device=device).to(dtype)
    v = torch.randn(1, hkv, tokens, head_dim, device=device).to(dtype)
    o = ops()
    cap = tokens + 100
    codes, scales = empty_cache(1, hkv, cap, head_dim, device)
    o.quantize_keys4_(codes, scales, k[:, :, :-1])  # prefill: every key but the new one
    seq_lens = torch.tensor([tokens], dtype=torch.int32, device=device)
    o.quantize_keys4_(codes, scales, k[:, :, -1:], seq_lens)  # the decode step appends its key
    mass = o.score_blocks_keys4(q, codes, scales, seq_lens)
    idx, cnt = o.select_blocks_keys4(
        mass, seq_lens, cfg["kblocks_frac"], cfg["window_frac"], cfg["sink_frac"]
    )
    out, _ = o.sparse_decode(q, k, v, idx, cnt, None, True, seq_lens)
    ref = R.layer_decode_step_keys4(q.cpu(), k.cpu(), v.cpu(), cfg)
    width = R.ceil_div(tokens, B)
    keep = R.block_index_to_mask(idx.cpu(), cnt.cpu(), R.ceil_div(cap, B))[:, :, 0, :width]
    near_tie_ok(keep, ref["keep"], ref["mass"], tokens, cfg)
    if torch.equal(keep, ref["keep"]):
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out.cpu().double(), ref["out"], atol=tol, rtol=tol)


@pytest.mark.gpu
def test_keys4_decode_step_cuda_graph():
    """The step (append, score, select, sparse_decode) captured once and replayed with new
    inputs and a longer sequence equals the eager step."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    o = ops()
    dev, dt = "cuda", torch.bfloat16
    hq, hkv, d, cap = 8, 2, 128, 3000
    k_cache = torch.randn(2, hkv, cap, d, device=dev, dtype=dt)
    v_cache = torch.randn(2, hkv, cap, d, device=dev, dtype=dt)
    codes, scales = empty_cache(2, hkv, cap, d, dev)
    o.quantize_keys4_(codes, scales, k_cache)
    seq_lens = torch.tensor([1000, 2100], dtype=torch.int32, device=dev)
    q = torch.randn(2, hq, 1, d, device=dev, dtype=dt)
    k_new = torch.randn(2, hkv, 1, d, device=dev, dtype=dt)

    def step():
        o.quantize_keys4_(codes, scales, k_new, seq_lens, False)
        mass = o.score_blocks_keys4(q, codes, scales, seq_lens, None, False)
        idx, cnt = o.select_blocks_keys4(mass, seq_lens, 0.125, 0.05, 0.025, False)
        return o.sparse_decode(q, k_cache, v_cache, idx, cnt, None, False, seq_lens)[0], idx, cnt

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        g_out, g_idx, g_cnt = step()
    for lens in ([1001, 2101], [1500, 64], [3000, 1]):
        seq_lens.copy_(torch.tensor(lens, dtype=torch.int32))
        q.copy_(torch.randn_like(q))
        k_new.copy_(torch.randn_like(k_new))
        graph.replay()
        want_out, want_idx, want_cnt = step()
        assert torch.equal(g_idx, want_idx) and torch.equal(g_cnt, want_cnt)
        assert torch.equal(g_out, want_out)


# ---------------------------------------------------------------------------------------
# Through the layer: sketchwalk_attention with the default (keys4) decode scorer


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens,hq,hkv,d", [(1023, 4, 1, 64), (700, 8, 2, 128), (63, 2, 1, 64)])
def test_layer_keys4_decode_steps(device, tokens, hq, hkv, d):
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(dense_layers=0)
    assert cfg.decode_scorer == "keys4"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    steps = 3  # from 1023 tokens the second step opens a new key block
    q = torch.randn(1, hq, tokens + steps, d, device=device).to(dtype)
    k = torch.randn(1, hkv, tokens + steps, d, device=device).to(dtype)
    v = torch.randn(1, hkv, tokens + steps, d, device=device).to(dtype)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens], 0, state)
    cfg_ref = dict(zip(("kblocks_frac", "window_frac", "sink_frac"), cfg.decode_fracs()))
    for step in range(steps):
        tk = tokens + step + 1
        qn, kc, vc = q[:, :, tk - 1 : tk], k[:, :, :tk], v[:, :, :tk]
        out = sw.sketchwalk_attention(qn, kc, vc, 0, state)
        ref = R.layer_decode_step_keys4(qn.cpu(), kc.cpu(), vc.cpu(), cfg_ref)
        keep = ref["keep"]
        density = ((keep.sum(-1).double() - 1) * B + (tk - (R.ceil_div(tk, B) - 1) * B)).mean() / tk
        assert state.last_density[0] == pytest.approx(float(density), rel=0.05)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        base = None
        try:
            torch.testing.assert_close(out.cpu().double(), ref["out"], atol=tol, rtol=tol)
        except AssertionError as err:  # only acceptable when the selection sits at a near-tie
            base = err
        if base is not None:
            layer = state.layers[0]
            mass = sw.ops.score_blocks_keys4(
                qn.to(torch.bfloat16) if device == "cuda" else qn,
                layer.codes,
                layer.scales,
                layer.seq_lens,
            )
            idx, cnt = sw.ops.select_blocks_keys4(mass, layer.seq_lens, *cfg.decode_fracs())
            got = R.block_index_to_mask(idx.cpu(), cnt.cpu(), idx.shape[-1])[
                :, :, 0, : keep.shape[-1]
            ]
            near_tie_ok(got, keep, ref["mass"], tk, cfg_ref)
            assert not torch.equal(got, keep), f"same selection, different output: {base}"


@pytest.mark.parametrize("device", device_params())
def test_layer_fixed_capacity_decode_equals_dynamic(device):
    # sketchwalk_attention(..., seq_lens=...) over a cache of fixed capacity computes what the
    # growing-cache decode computes, for rows of different lengths. Past each length the sparse
    # layer's cache holds NaN (never read); the dense layer's holds zeros, as a static cache
    # does (SDPA's mask does not hide NaN values).
    import sketchwalk as sw

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    cfg = sw.SketchWalkConfig(dense_layers=1)
    lens, cap, hq, hkv, d = [700, 1030], 1100, 8, 2, 64
    q = torch.randn(2, hq, cap, d, device=device).to(dtype)
    k = torch.randn(2, hkv, cap, d, device=device).to(dtype)
    v = torch.randn(2, hkv, cap, d, device=device).to(dtype)
    for layer in (0, 1):  # a dense layer and a sparse one
        for b, n in enumerate(lens):
            rows = slice(b, b + 1)
            dynamic = sw.SketchWalkState(cfg)
            fixed = sw.SketchWalkState(cfg)
            fixed.cache_capacity = cap
            sw.sketchwalk_attention(
                q[rows, :, : n - 1], k[rows, :, : n - 1], v[rows, :, : n - 1], layer, dynamic
            )
            sw.sketchwalk_attention(
                q[rows, :, : n - 1], k[rows, :, : n - 1], v[rows, :, : n - 1], layer, fixed
            )
            want = sw.sketchwalk_attention(
                q[rows, :, n - 1 : n], k[rows, :, :n], v[rows, :, :n], layer, dynamic
            )
            kc, vc = k[rows].clone(), v[rows].clone()
            kc[:, :, n:] = float("nan") if layer == 1 else 0.0
            vc[:, :, n:] = float("nan") if layer == 1 else 0.0
            seq_lens = torch.tensor([n], dtype=torch.int32, device=device)
            got = sw.sketchwalk_attention(
                q[rows, :, n - 1 : n], kc, vc, layer, fixed, seq_lens=seq_lens
            )
            if layer == 1:  # the same ops on the same rows: bitwise equal
                torch.testing.assert_close(got, want, atol=0, rtol=0)
            else:  # SDPA over the masked capacity against SDPA over the slice: rounding only
                # (other kernels and summation orders; outputs ~0.03, where a bf16 ulp is ~1e-4)
                atol = 1e-3 if dtype == torch.bfloat16 else 1e-5
                torch.testing.assert_close(got, want, atol=atol, rtol=1.6e-2)
            if layer == 1:
                assert fixed.last_density[1] == pytest.approx(dynamic.last_density[1], rel=1e-9)
