"""sparse_decode against the float64 masked-softmax reference on the same block index."""

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
    decode_index,
    ops,
    random_qkv,
    torch_masked_baseline,
)


def check_decode(q, k, v, idx, cnt, softmax_scale=None, msg=""):
    out, lse = ops().sparse_decode(q, k, v, idx, cnt, softmax_scale)
    assert out.shape == q.shape and out.dtype == q.dtype
    assert lse.shape == q.shape[:3] and lse.dtype == torch.float32
    ref_out, ref_lse = R.sparse_attention(q, k, v, idx, cnt, softmax_scale, block_size=B)
    base = torch_masked_baseline(q, k, v, idx, cnt, B, softmax_scale)
    assert_within_torch_error(out, ref_out, base, q.dtype, msg=msg)
    assert_lse_close(lse, ref_lse, q.dtype, msg=msg)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS + [5000])
@pytest.mark.parametrize("hq,hkv", GQA)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", ATTN_DTYPES)
def test_sparse_decode_random_index(device, tokens, hq, hkv, head_dim, dtype):
    q, k, v = random_qkv(2, hq, hkv, 1, tokens, head_dim, dtype, device)
    for g in sorted({1, hkv}):
        idx, cnt = decode_index([tokens] * 2, g, R.ceil_div(tokens, B), device, p=0.4)
        check_decode(q, k, v, idx, cnt, msg=f"index_heads={g}")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS + [5000])
@pytest.mark.parametrize("dtype", ATTN_DTYPES)
def test_sparse_decode_all_blocks_equals_dense(device, tokens, dtype):
    q, k, v = random_qkv(1, 8, 2, 1, tokens, 128, dtype, device)
    nk = R.ceil_div(tokens, B)
    idx, cnt = R.mask_to_block_index(torch.ones(1, 1, nk, dtype=torch.bool, device=device))
    out, _ = ops().sparse_decode(q, k, v, idx, cnt)
    dense = R.dense_causal_attention(q, k, v)
    base = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(4, 1), v.repeat_interleave(4, 1)
    )
    assert_within_torch_error(out, dense, base, dtype, msg="all blocks vs dense")


@pytest.mark.parametrize("device", device_params())
def test_sparse_decode_strided_cache_and_empty(device):
    # A cache view with spare capacity (strided), an empty row for one batch element.
    cap, tokens = 400, 333
    kc = torch.randn(2, 2, cap, 64, device=device)
    vc = torch.randn(2, 2, cap, 64, device=device)
    k, v = kc[:, :, :tokens], vc[:, :, :tokens]
    q = strided_copy(torch.randn(2, 4, 1, 64, device=device))
    idx, cnt = decode_index([tokens] * 2, 2, R.ceil_div(tokens, B), device, p=0.4)
    idx[1] = -1
    cnt[1] = 0
    check_decode(q, k, v, idx, cnt, softmax_scale=0.2, msg="strided cache")
    out, lse = ops().sparse_decode(q, k, v, idx, cnt, 0.2)
    assert (out[1] == 0).all() and torch.isneginf(lse[1]).all()


@pytest.mark.parametrize("device", device_params())
def test_sparse_decode_single_block_selected(device):
    # Only block 0 selected at a long context: must not read any other block.
    tokens = 2000
    q, k, v = random_qkv(1, 4, 4, 1, tokens, 64, torch.float32, device)
    idx = torch.full((1, 4, 1, 32), -1, dtype=torch.int32, device=device)
    idx[..., 0] = torch.tensor([0, 5, 17, 31], dtype=torch.int32, device=device)[None, :, None]
    cnt = torch.ones(1, 4, 1, dtype=torch.int32, device=device)
    check_decode(q, k, v, idx, cnt, msg="single block per kv head")


# ---------------------------------------------------------------------------------------
# sparse_decode over a fixed-capacity cache (seq_lens)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_sparse_decode_seq_lens(device, dtype, head_dim):
    if device == "cpu" and dtype != torch.float32:
        dtype = torch.float32
    cap, lens = 700, [1, 64, 65, 700, 333]
    batch = len(lens)
    k = torch.randn(batch, 2, cap, head_dim, device=device).to(dtype)
    v = torch.randn(batch, 2, cap, head_dim, device=device).to(dtype)
    for b, n in enumerate(lens):  # past each length: NaN, which would show if read
        k[b, :, n:] = float("nan")
        v[b, :, n:] = float("nan")
    q = torch.randn(batch, 8, 1, head_dim, device=device).to(dtype)
    idx, cnt = decode_index(lens, 2, R.ceil_div(cap, B), device)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    out, lse = ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens)
    for b, n in enumerate(lens):
        ref_out, ref_lse = R.sparse_attention(
            q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], idx[b : b + 1], cnt[b : b + 1]
        )
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out[b : b + 1].double(), ref_out, atol=tol, rtol=tol)
        torch.testing.assert_close(lse[b : b + 1].double(), ref_lse, atol=1e-3, rtol=1e-4)
    # An index entry at or past a sequence's length is refused.
    bad = idx.clone()
    bad[0, 0, 0, 0] = 3
    bad_cnt = cnt.clone()
    bad_cnt[0, 0, 0] = 1
    assert_raises_naming(
        lambda: ops().sparse_decode(q, k, v, bad, bad_cnt, None, True, seq_lens), "block_index"
    )
    assert_raises_naming(
        lambda: ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens + 1000), "seq_lens"
    )


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparse_decode_left_padded(device, dtype):
    """seq_starts: a left-padded dense cache (NaN in the padding): each row equals the call on
    its own keys, and the float64 reference."""
    if device == "cpu":
        dtype = torch.float32
    cap, lens = 700, [1, 64, 65, 700, 333]
    starts = [cap - n for n in lens]  # left padding
    batch = len(lens)
    k = torch.randn(batch, 2, cap, 64, device=device).to(dtype)
    v = torch.randn(batch, 2, cap, 64, device=device).to(dtype)
    for b, s in enumerate(starts):
        k[b, :, :s] = float("nan")
        v[b, :, :s] = float("nan")
    q = torch.randn(batch, 8, 1, 64, device=device).to(dtype)
    idx, cnt = decode_index(lens, 2, R.ceil_div(cap, B), device)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    seq_starts = torch.tensor(starts, dtype=torch.int32, device=device)
    out, lse = ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens, None, seq_starts)
    for b, (s, n) in enumerate(zip(starts, lens)):
        row, row_lse = ops().sparse_decode(
            q[b : b + 1],
            k[b : b + 1, :, s:].contiguous(),
            v[b : b + 1, :, s:].contiguous(),
            idx[b : b + 1],
            cnt[b : b + 1],
            None,
            True,
            seq_lens[b : b + 1],
        )
        assert torch.equal(out[b : b + 1], row) and torch.equal(lse[b : b + 1], row_lse), b
        ref, _ = R.sparse_attention(
            q[b : b + 1], k[b : b + 1, :, s:], v[b : b + 1, :, s:], idx[b : b + 1], cnt[b : b + 1]
        )
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out[b : b + 1].double(), ref, atol=tol, rtol=tol)
    assert_raises_naming(
        lambda: ops().sparse_decode(q, k, v, idx, cnt, None, True, None, None, seq_starts),
        "seq_starts",
    )
    assert_raises_naming(
        lambda: ops().sparse_decode(q, k, v, idx, cnt, None, True, seq_lens, None, seq_starts + 1),
        "seq_starts",
    )
    assert_raises_naming(
        lambda: ops().sparse_decode(
            q, k, v, idx, cnt, None, True, seq_lens, None, seq_starts.long()
        ),
        "seq_starts",
    )
