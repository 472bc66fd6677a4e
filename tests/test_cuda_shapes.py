"""Real model shapes on CUDA: each op against the float64 reference computed on the GPU.

Llama-3.1-8B (32 q / 8 kv heads, head_dim 128), Qwen2.5-1.5B (12 / 2 / 128),
SmolLM2 (9 / 3 / 64) at 4K and 32K tokens, and 128K (slow). The dense reference attention
is chunked over query blocks to fit memory.
"""

import math

import pytest
import torch

import reference as R
from tolerances import assert_close64, assert_lse_close, assert_within_torch_error
from utils import (
    B,  # the one block-size constant
    ops,
    torch_masked_baseline,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

MODELS = {"llama3.1-8b": (32, 8, 128), "qwen2.5-1.5b": (12, 2, 128), "smollm2": (9, 3, 64)}
LENGTHS = [4096, 32768, pytest.param(131072, marks=pytest.mark.slow)]


def _chunk_blocks(hq, tk):
    """Query blocks per chunk so one float64 logits chunk stays near 2 GB."""
    return max(1, int(2e9 // (hq * B * tk * 8)))


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("tokens", LENGTHS)
def test_model_shape_pipeline_ops(model, tokens):
    hq, hkv, d = MODELS[model]
    dev = "cuda"
    o = ops()
    torch.manual_seed(tokens + hq)
    q = torch.randn(1, hq, tokens, d, device=dev, dtype=torch.bfloat16)
    k = torch.randn(1, hkv, tokens, d, device=dev, dtype=torch.bfloat16)
    v = torch.randn(1, hkv, tokens, d, device=dev, dtype=torch.bfloat16)
    m = min(128, R.next_pow2(d))
    signs, coords = o.sketch_transform(d, m, seed=0, device=dev)
    c = o.logit_scale(m, d)

    # 1. sketch
    qs = o.hadamard_sketch(q, signs, coords, B)
    ks = o.hadamard_sketch(k, signs, coords, B)
    assert_close64(qs, R.hadamard_sketch(q, signs, coords, B), scale_atol=10, msg="q sketch")
    assert_close64(ks, R.hadamard_sketch(k, signs, coords, B), scale_atol=10, msg="k sketch")

    # 2. scores (from the kernel's sketches: numerics kept apart from the sketch test)
    a = o.score_blocks(qs, ks, c)
    a_ref = R.score_blocks(qs, ks, c)
    assert_close64(a, a_ref, scale_atol=10, msg="scores")

    # 3. walk
    w_mat = o.walk_blocks(a, a, None, 3, 0.25)
    assert_close64(w_mat, R.walk_blocks(a, a, None, 3, 0.25), scale_atol=10, msg="walk")

    # 4. selection (on the kernel's walk; float32 input, so the sets must match exactly)
    w = max(1, math.floor(0.05 * tokens))
    sink = max(1, math.floor(0.025 * tokens))
    idx, cnt = o.select_blocks(w_mat, tokens, tokens, B, 0.125, w, sink, w, 4)
    keep, ridx, rcnt = R.select_blocks(w_mat, tokens, tokens, B, 0.125, w, sink, w, 4)
    assert torch.equal(cnt, rcnt), f"num_selected differs in {(cnt != rcnt).sum().item()} rows"
    assert torch.equal(idx, ridx)

    # 5. sparse prefill on that index
    out, lse = o.sparse_prefill(q, k, v, idx, cnt)
    chunk = _chunk_blocks(hq, tokens)
    ref_out, ref_lse = R.sparse_attention(q, k, v, idx, cnt, block_size=B, q_chunk_blocks=chunk)
    base = torch_masked_baseline(q, k, v, idx, cnt, B, q_chunk_blocks=chunk)
    assert_within_torch_error(out, ref_out, base, torch.bfloat16, msg="sparse_prefill")
    assert_lse_close(lse, ref_lse, torch.bfloat16, msg="sparse_prefill")
    del ref_out, base

    # 6. one decode step: scores of a query window against the key blocks, walk, select, attend
    tk = tokens
    n = R.ceil_div(tk, B)
    window = o.hadamard_sketch(q[:, :, -32:], signs, coords, 1)
    r = o.score_blocks(window, ks, c).mean(dim=1)
    assert_close64(r, R.score_blocks(window, ks, c).mean(dim=1), scale_atol=10, msg="decode r")
    trans = a.clone()
    o.update_block_matrix_(trans, r, tk, B)
    assert_close64(trans, R.update_block_matrix(a, r, tk, B), scale_atol=10, msg="block matrix")
    walk = o.walk_blocks(r[:, None], trans, None, 3, 0.25)
    assert_close64(walk, R.walk_blocks(r[:, None], trans, None, 3, 0.25), scale_atol=10)
    didx, dcnt = o.select_blocks(walk, 1, tk, B, 0.125, w, sink, max(w, sink), 0)
    _, rdidx, rdcnt = R.select_blocks(walk, 1, tk, B, 0.125, w, sink, max(w, sink), 0)
    assert torch.equal(didx, rdidx) and torch.equal(dcnt, rdcnt)
    qd = q[:, :, -1:]
    dout, dlse = o.sparse_decode(qd, k, v, didx, dcnt)
    rdo, rdl = R.sparse_attention(qd, k, v, didx, dcnt, block_size=B)
    dbase = torch_masked_baseline(qd, k, v, didx, dcnt, B)
    assert_within_torch_error(dout, rdo, dbase, torch.bfloat16, msg="sparse_decode")
    assert_lse_close(dlse, rdl, torch.bfloat16, msg="sparse_decode")
    assert n == a.shape[-1]


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("tokens", [4096, 32768])
def test_model_shape_dense_equivalence_fp16(model, tokens):
    # Every causal block kept == dense causal attention, fp16, real head counts.
    hq, hkv, d = MODELS[model]
    dev = "cuda"
    q = torch.randn(1, hq, tokens, d, device=dev, dtype=torch.float16)
    k = torch.randn(1, hkv, tokens, d, device=dev, dtype=torch.float16)
    v = torch.randn(1, hkv, tokens, d, device=dev, dtype=torch.float16)
    n = R.ceil_div(tokens, B)
    idx, cnt = R.mask_to_block_index(torch.ones(1, n, n, dtype=torch.bool, device=dev).tril())
    out, _ = ops().sparse_prefill(q, k, v, idx, cnt, validate=False)
    g = hq // hkv
    base = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=True
    )
    ref, _ = R.sparse_attention(
        q, k, v, idx, cnt, block_size=B, q_chunk_blocks=_chunk_blocks(hq, tokens)
    )
    assert_within_torch_error(out, ref, base, torch.float16, msg="all blocks vs dense")
