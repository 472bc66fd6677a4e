"""sparse_prefill_varlen (a ragged batch in one call: packed queries; packed or paged keys)
against the float64 reference on the same block index, sequence by sequence
(reference.sparse_attention_varlen), and bitwise against per-sequence dense sparse_prefill."""

import pytest
import torch

import reference as R
from conftest import device_params
from tolerances import assert_lse_close, assert_within_torch_error
from utils import (
    ATTN_DTYPES,
    B,  # the one block-size constant
    assert_raises_naming,
    capture_graph,
    ops,
    random_keep,
    run_without_sync,
    torch_masked_baseline,
)

# (queries, keys) per sequence: single tokens, block edges, chunks (fewer queries than keys),
# an empty sequence and one longer than the others.
RAGGED = [(1, 1), (63, 63), (65, 65), (0, 40), (64, 200), (1, 129), (300, 300), (70, 1000)]
GQA_VARLEN = [(1, 1), (4, 1), (8, 2)]


def ragged_batch(lens, hq, hkv, d, dtype, device, g, paged, extra_rows=2):
    """Packed q (and k / v, or a shuffled page pool with NaN in every unused page row), the
    cu_seqlens / page table, and a random causal block index per sequence, padded to the most
    query blocks + extra_rows (rows past a sequence's own hold garbage: never read)."""
    nqb = max(R.ceil_div(tq, B) for tq, _ in lens) + extra_rows
    nkb = max(R.ceil_div(tk, B) for _, tk in lens)
    seqs = []
    for tq, tk in lens:
        q = torch.randn(tq, hq, d, device=device).to(dtype)
        k = torch.randn(tk, hkv, d, device=device).to(dtype)
        v = torch.randn(tk, hkv, d, device=device).to(dtype)
        seqs.append((q, k, v))
    cu_q = torch.tensor([0] + [tq for tq, _ in lens], device=device).cumsum(0).to(torch.int32)
    q = torch.cat([s[0] for s in seqs])
    index = torch.full((len(lens), g, nqb, nkb), 10**6, dtype=torch.int32, device=device)
    count = torch.full((len(lens), g, nqb), 7, dtype=torch.int32, device=device)
    for b, (tq, tk) in enumerate(lens):
        if tq == 0:
            continue
        idx, cnt = R.mask_to_block_index(random_keep(1, g, tq, tk, B, device), nkb)
        index[b, :, : idx.shape[2]] = idx[0]
        count[b, :, : cnt.shape[2]] = cnt[0]
    kw = dict(cu_seqlens_q=cu_q)
    if not paged:
        kw["cu_seqlens_k"] = (
            torch.tensor([0] + [tk for _, tk in lens], device=device).cumsum(0).to(torch.int32)
        )
        k = torch.cat([s[1] for s in seqs])
        v = torch.cat([s[2] for s in seqs])
    else:
        pages = [R.ceil_div(tk, B) for _, tk in lens]
        num_pages = sum(pages) + 3  # spare pages, never referenced
        order = torch.randperm(num_pages, device=device)[: sum(pages)].to(torch.int32)
        table = torch.full((len(lens), max(pages) + 1), -5, dtype=torch.int32, device=device)
        k = torch.full((num_pages, B, hkv, d), float("nan"), device=device).to(dtype)
        v = torch.full((num_pages, B, hkv, d), float("nan"), device=device).to(dtype)
        at = 0
        for b, (_, tk) in enumerate(lens):
            ids = order[at : at + pages[b]]
            at += pages[b]
            table[b, : pages[b]] = ids
            for j, page in enumerate(ids.tolist()):
                rows = min(B, tk - j * B)
                k[page, :rows] = seqs[b][1][j * B : j * B + rows]
                v[page, :rows] = seqs[b][2][j * B : j * B + rows]
        kw.update(
            seq_lens_k=torch.tensor([tk for _, tk in lens], dtype=torch.int32, device=device),
            page_table=table,
        )
    return q, k, v, index, count, seqs, kw


def per_sequence(seqs, lens, index, count, fn):
    """fn(q, k, v, idx, cnt) on each non-empty sequence's dense [1, H, T, D] tensors."""
    outs = []
    for b, ((q, k, v), (tq, _)) in enumerate(zip(seqs, lens)):
        if tq == 0:
            continue
        nq = R.ceil_div(tq, B)
        hnd = [t.transpose(0, 1)[None] for t in (q, k, v)]
        outs.append(fn(*hnd, index[b : b + 1, :, :nq], count[b : b + 1, :, :nq]))
    return outs


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("paged", [False, True], ids=["packed", "paged"])
@pytest.mark.parametrize("hq,hkv", GQA_VARLEN)
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", ATTN_DTYPES)
def test_sparse_prefill_varlen_matches_reference(device, paged, hq, hkv, head_dim, dtype):
    for g in sorted({1, hkv}):
        q, k, v, index, count, seqs, kw = ragged_batch(
            RAGGED, hq, hkv, head_dim, dtype, device, g, paged
        )
        out, lse = ops().sparse_prefill_varlen(q, k, v, index, count, **kw)
        assert out.shape == q.shape and out.dtype == dtype
        assert lse.shape == (hq, q.shape[0]) and lse.dtype == torch.float32
        ref_out, ref_lse = R.sparse_attention_varlen(q, k, v, index, count, **kw)
        base = torch.cat(
            [
                o[0].transpose(0, 1)
                for o in per_sequence(
                    seqs, RAGGED, index, count, lambda *a: torch_masked_baseline(*a, B)
                )
            ]
        )
        msg = f"{'paged' if paged else 'packed'} index_heads={g}"
        assert_within_torch_error(out, ref_out, base, dtype, msg=msg)
        assert_lse_close(lse, ref_lse, dtype, msg=msg)
        empty = torch.isneginf(ref_lse.transpose(0, 1))
        assert (out[empty] == 0).all(), f"{msg}: rows with no visible key must be 0"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("paged", [False, True], ids=["packed", "paged"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("arch", ["auto", "sm80"])
def test_sparse_prefill_varlen_bitwise_equals_dense_calls(device, paged, dtype, arch, monkeypatch):
    """The same arithmetic as a dense sparse_prefill per sequence on the same kernel (the GPU's
    default, then the sm80 one; float32 on the fp32 path): equal bit for bit. The page pool's
    unused rows hold NaN."""
    if dtype == torch.float32 and device == "cpu" and arch != "auto":
        pytest.skip("one float32 path per device")
    if arch != "auto":
        if device == "cpu":
            pytest.skip("a CUDA kernel choice")
        monkeypatch.setenv("SKETCHWALK_PREFILL_ARCH", arch)
    q, k, v, index, count, seqs, kw = ragged_batch(RAGGED, 8, 2, 128, dtype, device, 2, paged)
    out, lse = ops().sparse_prefill_varlen(q, k, v, index, count, **kw)
    dense = per_sequence(seqs, RAGGED, index, count, ops().sparse_prefill)
    want_out = torch.cat([o[0].transpose(0, 1) for o, _ in dense])
    want_lse = torch.cat([lo[0] for _, lo in dense], dim=1)
    assert torch.equal(out, want_out)
    assert torch.equal(lse, want_lse)


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_varlen_all_blocks_equals_dense_causal(device):
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lens = [(65, 65), (1, 300), (130, 130)]
    q, k, v, _, _, seqs, kw = ragged_batch(lens, 4, 1, 64, dtype, device, 1, False)
    nk = R.ceil_div(300, B)
    index = torch.arange(nk, dtype=torch.int32, device=device).expand(3, 1, 3, nk).contiguous()
    count = torch.zeros(3, 1, 3, dtype=torch.int32, device=device)
    for b, (tq, tk) in enumerate(lens):
        for i in range(R.ceil_div(tq, B)):
            count[b, 0, i] = R.causal_limit(i, tq, tk, B) + 1
    out, _ = ops().sparse_prefill_varlen(q, k, v, index, count, **kw)
    for b, ((qs, ks, vs), (tq, tk)) in enumerate(zip(seqs, lens)):
        q0 = sum(t for t, _ in lens[:b])
        hnd = [t.transpose(0, 1)[None] for t in (qs, ks, vs)]
        want = R.dense_causal_attention(*hnd)[0].transpose(0, 1)
        err = (out[q0 : q0 + tq].double() - want).abs().max().item()
        assert err < (2e-2 if dtype == torch.bfloat16 else 1e-5), f"sequence {b}: {err}"


@pytest.mark.parametrize("device", device_params())
def test_sparse_prefill_varlen_errors(device):
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    lens = [(65, 65), (1, 130)]
    q, k, v, index, count, _, kw = ragged_batch(lens, 4, 2, 64, dtype, device, 1, False)
    op = ops().sparse_prefill_varlen

    def call(**over):
        args = dict(q=q, k=k, v=v, block_index=index, num_selected=count, **kw)
        args.update(over)
        return op(**args)

    cu_q = kw["cu_seqlens_q"]
    assert_raises_naming(lambda: call(cu_seqlens_q=cu_q.flip(0)), "cu_seqlens_q")
    assert_raises_naming(lambda: call(cu_seqlens_q=cu_q.long()), "cu_seqlens_q")
    assert_raises_naming(lambda: call(cu_seqlens_q=cu_q[:-1]), "cu_seqlens_q")
    if device == "cuda":
        assert_raises_naming(lambda: call(cu_seqlens_q=cu_q.cpu()), "cu_seqlens_q")
    assert_raises_naming(
        lambda: call(cu_seqlens_k=torch.tensor([0, 30, 195], dtype=torch.int32, device=device)),
        "cu_seqlens_q",
    )
    assert_raises_naming(lambda: call(cu_seqlens_k=None), "cu_seqlens_k")
    assert_raises_naming(
        lambda: call(block_index=index[:, :, :1], num_selected=count[:, :, :1]), "block_index"
    )
    # No rows at all: refused without reading the lengths (validate=False too).
    no_rows = dict(block_index=index[:, :, :0], num_selected=count[:, :, :0])
    for validate in (True, False):
        assert_raises_naming(lambda: call(**no_rows, validate=validate), "block_index")
    assert_raises_naming(lambda: call(q=q.transpose(0, 1)), "q", "cu_seqlens_q")
    assert_raises_naming(lambda: call(q=q[..., :32]), "q")
    bad = index.clone()
    bad[1, 0, 0, 0] = 5  # past the causal limit of sequence 1 (one query at key 129)
    count_bad = count.clone()
    count_bad[1, 0, 0] = max(int(count_bad[1, 0, 0]), 1)
    assert_raises_naming(lambda: call(block_index=bad, num_selected=count_bad), "block_index")
    # Paged: a page id out of range, lengths past the table, both key forms at once.
    q, k, v, index, count, _, kw = ragged_batch(lens, 4, 2, 64, dtype, device, 1, True)
    table = kw["page_table"].clone()
    table[0, 0] = k.shape[0]
    assert_raises_naming(
        lambda: op(q, k, v, index, count, **{**kw, "page_table": table}), "page_table"
    )
    lens_k = kw["seq_lens_k"].clone()
    lens_k[1] = 64 * kw["page_table"].shape[1] + 1
    assert_raises_naming(
        lambda: op(q, k, v, index, count, **{**kw, "seq_lens_k": lens_k}), "seq_lens_k"
    )
    assert_raises_naming(
        lambda: op(q, k, v, index, count, cu_seqlens_k=kw["cu_seqlens_q"], **kw), "cu_seqlens_k"
    )
    assert_raises_naming(lambda: op(q, k[:, :32], v[:, :32], index, count, **kw), "k")


@pytest.mark.gpu
@pytest.mark.parametrize("paged", [False, True], ids=["packed", "paged"])
def test_sparse_prefill_varlen_no_sync_and_graph(paged):
    """validate=False reads nothing on the host: no synchronization, and a captured graph
    replays the call (new inputs copied into the same buffers give the new result)."""
    q, k, v, index, count, _, kw = ragged_batch(RAGGED, 8, 2, 128, torch.bfloat16, "cuda", 2, paged)
    op = ops().sparse_prefill_varlen
    want, _ = op(q, k, v, index, count, **kw)
    out, _ = run_without_sync(lambda: op(q, k, v, index, count, **kw, validate=False))
    assert torch.equal(out, want)
    graph, (captured, _) = capture_graph(lambda: op(q, k, v, index, count, **kw, validate=False))
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    fresh, _ = op(q, k, v, index, count, **kw)
    assert torch.equal(captured, fresh)
