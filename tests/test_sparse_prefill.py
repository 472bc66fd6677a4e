"""sparse_prefill against the float64 masked-softmax reference on the same block index."""

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from tolerances import assert_lse_close, assert_within_torch_error
from utils import (
    ATTN_DTYPES,
    GQA,
    SEQ_LENS,
    B,  # the one block-size constant
    assert_raises_naming,
    ops,
    random_keep,
    random_qkv,
    torch_masked_baseline,
)


def check_prefill(q, k, v, idx, cnt, softmax_scale=None, msg=""):
    out, lse = ops().sparse_prefill(q, k, v, idx, cnt, softmax_scale)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32
    ref_out, ref_lse = R.sparse_attention(q, k, v, idx, cnt, softmax_scale, block_size=B)
    base = torch_masked_baseline(q, k, v, idx, cnt, B, softmax_scale)
    assert_within_torch_error(out, ref_out, base, q.dtype, msg=msg)
    assert_lse_close(lse, ref_lse, q.dtype, msg=msg)
    # Queries with no visible key: out exactly 0.
    empty = torch.isneginf(ref_lse)
    if empty.any():
        assert (out[empty] == 0).all(), f"{msg}: rows with no visible key must be 0"
    return out, lse


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS)
@pytest.mark.parametrize("hq,hkv", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", ATTN_DTYPES)
def test_sparse_prefill_random_index(device, tokens, hq, hkv, head_dim, dtype):
    if device == "cpu" and tokens == 1000 and (hq, hkv) != (4, 1):
        pytest.skip("CPU budget: 1000 tokens run with one GQA ratio")
    q, k, v = random_qkv(1, hq, hkv, tokens, tokens, head_dim, dtype, device)
    for g in sorted({1, hkv}):
        keep = random_keep(1, g, tokens, tokens, B, device)
        idx, cnt = R.mask_to_block_index(keep)
        check_prefill(q, k, v, idx, cnt, msg=f"index_heads={g}")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", ATTN_DTYPES)
@pytest.mark.parametrize("tokens", SEQ_LENS)
@pytest.mark.parametrize("hq,hkv,head_dim", [(4, 1, 64), (7, 1, 128), (2, 2, 128)])
def test_sparse_prefill_all_blocks_equals_dense_causal(device, dtype, tokens, hq, hkv, head_dim):
    q, k, v = random_qkv(2, hq, hkv, tokens, tokens, head_dim, dtype, device)
    n = R.ceil_div(tokens, B)
    keep = torch.ones(2, n, n, dtype=torch.bool, device=device).tril()
    idx, cnt = R.mask_to_block_index(keep)
    out, lse = ops().sparse_prefill(q, k, v, idx, cnt)
    dense = R.dense_causal_attention(q, k, v)
    kf = k.repeat_interleave(hq // hkv, 1)
    vf = v.repeat_interleave(hq // hkv, 1)
    base = torch.nn.functional.scaled_dot_product_attention(q, kf, vf, is_causal=True)
    assert_within_torch_error(out, dense, base, dtype, msg="all causal blocks vs dense SDPA")
    logits = (q.double() @ kf.double().transpose(-1, -2)) / head_dim**0.5
    logits = logits.masked_fill(
        ~torch.ones(tokens, tokens, dtype=torch.bool, device=device).tril(), float("-inf")
    )
    assert_lse_close(lse, torch.logsumexp(logits, -1), dtype)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tq,tk", [(65, 1000), (1, 1000), (100, 130), (64, 65), (37, 100)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparse_prefill_queries_at_end(device, tq, tk, dtype):
    # Tq < Tk: query t sits at key Tk - Tq + t; blocks straddle, so some queries of a row see
    # no key of a lone causal_limit block (out 0, lse -inf).
    q, k, v = random_qkv(1, 4, 2, tq, tk, 64, dtype, device)
    for g in [1, 2]:
        keep = random_keep(1, g, tq, tk, B, device, p=0.3)
        nq = keep.shape[2]
        lims = [R.causal_limit(i, tq, tk, B) for i in range(nq)]
        keep[0, 0, 0] = False
        keep[0, 0, 0, lims[0]] = True  # only the row's causal-limit block
        idx, cnt = R.mask_to_block_index(keep)
        check_prefill(q, k, v, idx, cnt, msg=f"tq={tq} tk={tk} g={g}")


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_strided_padding_scale(device):
    # Strided q/k/v (last dim contiguous), an index narrower than num_kv_blocks (max_selected
    # = widest row + 1), per-kv-head rows, an explicit softmax_scale.
    tokens, hq, hkv, d = 300, 4, 2, 64
    q, k, v = random_qkv(2, hq, hkv, tokens, tokens, d, torch.float32, device)
    q, k, v = strided_copy(q), strided_copy(k), strided_copy(v)
    keep = random_keep(2, hkv, tokens, tokens, B, device, p=0.3)
    s = int(keep.sum(-1).max())
    idx, cnt = R.mask_to_block_index(keep, max_selected=s + 1)
    check_prefill(q, k, v, idx, cnt, softmax_scale=0.3, msg="strided")


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_empty_index(device):
    q, k, v = random_qkv(1, 2, 1, 130, 130, 64, torch.float32, device)
    idx = torch.full((1, 1, 3, 3), -1, dtype=torch.int32, device=device)
    cnt = torch.zeros(1, 1, 3, dtype=torch.int32, device=device)
    out, lse = ops().sparse_prefill(q, k, v, idx, cnt)
    assert (out == 0).all() and torch.isneginf(lse).all()


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_per_head_index_differs_from_shared(device):
    # index_heads == num_kv_heads: kv head g's query group must read row g (not row 0).
    tokens = 200
    q, k, v = random_qkv(1, 6, 3, tokens, tokens, 64, torch.float32, device)
    keep = random_keep(1, 3, tokens, tokens, B, device, p=0.5, empty_rows=False)
    keep[:, 1] = ~keep[:, 0] & keep[:, 2] | keep[:, 1]
    idx, cnt = R.mask_to_block_index(keep)
    check_prefill(q, k, v, idx, cnt, msg="per-kv-head index")


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_deterministic(device):
    q, k, v = random_qkv(1, 4, 1, 500, 500, 128, torch.bfloat16, device)
    keep = random_keep(1, 1, 500, 500, B, device)
    idx, cnt = R.mask_to_block_index(keep)
    o1, l1 = ops().sparse_prefill(q, k, v, idx, cnt)
    o2, l2 = ops().sparse_prefill(q, k, v, idx, cnt)
    assert torch.equal(o1, o2) and torch.equal(l1, l2)


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_nan_query_row_is_nan(device):
    """A NaN in a query row makes that row's output and lse NaN, as in the float64 reference
    (not the 0 / -inf of a row with no visible key); the other rows stay finite. float32: the
    CPU kernel and the exact CUDA kernel."""
    q, k, v = random_qkv(1, 4, 2, 130, 130, 64, torch.float32, device)
    keep = torch.ones(1, 3, 3, dtype=torch.bool, device=device).tril()
    idx, cnt = R.mask_to_block_index(keep)
    q[0, 1, 70] = float("nan")
    out, lse = ops().sparse_prefill(q, k, v, idx, cnt)
    ref_out, ref_lse = R.sparse_attention(q, k, v, idx, cnt, block_size=B)
    assert torch.isnan(ref_out[0, 1, 70]).all() and torch.isnan(ref_lse[0, 1, 70])
    assert torch.isnan(out[0, 1, 70]).all() and torch.isnan(lse[0, 1, 70])
    finite = torch.ones_like(lse, dtype=torch.bool)
    finite[0, 1, 70] = False
    assert torch.isfinite(lse[finite]).all() and torch.isfinite(out[finite]).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("op_name", ["sparse_prefill", "sparse_decode"])
def test_attention_grid_limit_named_on_cuda(op_name):
    """More sequences than the grid's z dimension holds (65535) is refused by name before any
    launch (k and v are one expanded row: no memory)."""
    batch = 65536
    q = torch.zeros(batch, 1, 1, 64, device="cuda")
    k = torch.zeros(1, 1, 64, 64, device="cuda").expand(batch, -1, -1, -1)
    idx = torch.zeros(batch, 1, 1, 1, dtype=torch.int32, device="cuda")
    cnt = torch.ones(batch, 1, 1, dtype=torch.int32, device="cuda")
    call = getattr(ops(), op_name)
    msg = assert_raises_naming(lambda: call(q, k, k, idx, cnt, None, False), "q")
    assert "65535" in msg
