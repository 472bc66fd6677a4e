"""sparse_decode from a paged cache (page_table + seq_lens: k_cache / v_cache are pools of
64-key pages): against the float64 reference on each sequence's pages in order
(reference.pages_to_dense), bitwise against the same step on that dense cache, with every page
row no sequence uses poisoned with NaN; errors; no sync and a CUDA graph on the GPU."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import (
    B,  # the one block-size constant
    assert_raises_naming,
    capture_graph,
    decode_index,
    ops,
    run_without_sync,
)

LENS = [1, 64, 65, 700, 333, 128]


def paged_step(dtype, head_dim, device, hq=8, hkv=2, lens=LENS):
    """A decode step of len(lens) sequences whose pages are shuffled in one pool."""
    batch = len(lens)
    pages = [R.ceil_div(n, B) for n in lens]
    max_pages = max(pages) + 1
    num_pages = sum(pages) + 4
    order = torch.randperm(num_pages, device=device)[: sum(pages)].to(torch.int32)
    table = torch.full((batch, max_pages), -3, dtype=torch.int32, device=device)
    k_pool = torch.full((num_pages, B, hkv, head_dim), float("nan"), device=device).to(dtype)
    v_pool = torch.full((num_pages, B, hkv, head_dim), float("nan"), device=device).to(dtype)
    at = 0
    for b, n in enumerate(lens):
        ids = order[at : at + pages[b]]
        at += pages[b]
        table[b, : pages[b]] = ids
        for j, page in enumerate(ids.tolist()):
            rows = min(B, n - j * B)
            k_pool[page, :rows] = torch.randn(rows, hkv, head_dim, device=device).to(dtype)
            v_pool[page, :rows] = torch.randn(rows, hkv, head_dim, device=device).to(dtype)
    q = torch.randn(batch, hq, 1, head_dim, device=device).to(dtype)
    idx, cnt = decode_index(lens, hkv, max_pages, device)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    return q, k_pool, v_pool, idx, cnt, seq_lens, table


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_sparse_decode_paged_matches_reference(device, dtype, head_dim):
    q, kp, vp, idx, cnt, lens, table = paged_step(dtype, head_dim, device)
    out, lse = ops().sparse_decode(q, kp, vp, idx, cnt, None, True, lens, table)
    k, v = R.pages_to_dense(kp, table), R.pages_to_dense(vp, table)
    for b, n in enumerate(LENS):
        ref_out, ref_lse = R.sparse_attention(
            q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n], idx[b : b + 1], cnt[b : b + 1]
        )
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(out[b : b + 1].double(), ref_out, atol=tol, rtol=tol)
        torch.testing.assert_close(lse[b : b + 1].double(), ref_lse, atol=1e-3, rtol=1e-4)
    # The same step on the dense cache the pages make: the same arithmetic, bit for bit.
    dense_out, dense_lse = ops().sparse_decode(
        q, k.contiguous(), v.contiguous(), idx, cnt, None, True, lens
    )
    assert torch.equal(out, dense_out) and torch.equal(lse, dense_lse)


@pytest.mark.parametrize("device", device_params())
def test_sparse_decode_paged_errors(device):
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    q, kp, vp, idx, cnt, lens, table = paged_step(dtype, 64, device)
    op = ops().sparse_decode
    bad = table.clone()
    bad[3, 2] = kp.shape[0]  # a live page of sequence 3 (700 keys) out of the pool
    assert_raises_naming(lambda: op(q, kp, vp, idx, cnt, None, True, lens, bad), "page_table")
    bad[3, 2] = -1
    assert_raises_naming(lambda: op(q, kp, vp, idx, cnt, None, True, lens, bad), "page_table")
    assert_raises_naming(lambda: op(q, kp, vp, idx, cnt, None, True, None, table), "seq_lens")
    assert_raises_naming(
        lambda: op(q, kp, vp, idx, cnt, None, True, lens, table.long()), "page_table"
    )
    assert_raises_naming(lambda: op(q, kp, vp, idx, cnt, None, True, lens, table[:2]), "page_table")
    assert_raises_naming(
        lambda: op(q, kp[:, :32], vp[:, :32], idx, cnt, None, True, lens, table), "k_cache"
    )
    too_long = lens.clone()
    too_long[0] = 64 * table.shape[1] + 1
    assert_raises_naming(lambda: op(q, kp, vp, idx, cnt, None, True, too_long, table), "seq_lens")
    # Unused entries of a row (past its length) are never read: any value passes.
    loose = table.clone()
    loose[0, 1:] = 10**6
    op(q, kp, vp, idx, cnt, None, True, lens, loose)


@pytest.mark.gpu
def test_sparse_decode_paged_no_sync_and_graph():
    q, kp, vp, idx, cnt, lens, table = paged_step(torch.bfloat16, 128, "cuda")
    op = ops().sparse_decode
    want, _ = op(q, kp, vp, idx, cnt, None, True, lens, table)
    out, _ = run_without_sync(lambda: op(q, kp, vp, idx, cnt, None, False, lens, table))
    assert torch.equal(out, want)
    graph, (captured, _) = capture_graph(lambda: op(q, kp, vp, idx, cnt, None, False, lens, table))
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, op(q, kp, vp, idx, cnt, None, True, lens, table)[0])
