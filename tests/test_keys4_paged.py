"""The 4-bit key cache in pages (quantize_keys4_ and score_blocks_keys4 with page_table: pools
[num_pages, num_kv_heads, 64, ...] addressed by the same page ids as a paged K/V cache): the
codes land where the page table says, equal to the float64 reference's; the block masses equal
the reference on each sequence's pages in order, and the dense op's on that gathered cache bit
for bit. Pages no sequence uses hold a sentinel that must not change."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import (
    B,  # the one block-size constant
    assert_raises_naming,
    capture_graph,
    ops,
    run_without_sync,
)

LENS = [1, 64, 65, 700, 333]


def paged_keys4(hkv, head_dim, device, lens=LENS):
    pages = [R.ceil_div(n, B) for n in lens]
    max_pages = max(pages) + 1
    num_pages = sum(pages) + 3
    order = torch.randperm(num_pages, device=device)[: sum(pages)].to(torch.int32)
    table = torch.full((len(lens), max_pages), -2, dtype=torch.int32, device=device)
    at = 0
    for b, n in enumerate(lens):
        table[b, : pages[b]] = order[at : at + pages[b]]
        at += pages[b]
    codes = torch.full((num_pages, hkv, B, head_dim // 2), 0xAB, dtype=torch.uint8, device=device)
    scales = torch.full((num_pages, hkv, B), -1.5, device=device)
    return codes, scales, table, torch.tensor(lens, dtype=torch.int32, device=device)


def gather(pool, table):
    """[num_pages, hkv, 64, ...] pages in table order -> [batch, hkv, 64 * max_pages, ...]."""
    ids = table.long().clamp(0, pool.shape[0] - 1)
    return pool[ids].transpose(1, 2).flatten(2, 3)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("head_dim", [64, 128])
def test_paged_keys4_quantize_and_score(device, head_dim):
    hq, hkv = 8, 2
    codes, scales, table, lens = paged_keys4(hkv, head_dim, device)
    untouched = torch.ones(codes.shape[0], dtype=torch.bool)
    untouched[table[table >= 0].long().cpu()] = False
    k = torch.randn(len(LENS), hkv, max(LENS), head_dim, device=device).to(torch.bfloat16)
    # The prompt's keys in two writes per sequence (all but the last token, then the last one),
    # as a prefill and a decode step append them.
    first = lens - 1
    for b, n in enumerate(LENS):
        if n > 1:
            ops().quantize_keys4_(
                codes, scales, k[b : b + 1, :, : n - 1], first[b : b + 1], True, table[b : b + 1]
            )
    ops().quantize_keys4_(
        codes,
        scales,
        torch.stack([k[b, :, n - 1 : n] for b, n in enumerate(LENS)]),
        lens,
        True,
        table,
    )
    want_codes, want_scales = R.quantize_keys4(k)
    dense_codes, dense_scales = gather(codes, table), gather(scales, table)
    for b, n in enumerate(LENS):
        assert torch.equal(
            R.unpack_keys4(dense_codes[b : b + 1, :, :n].cpu()), want_codes[b : b + 1, :, :n].cpu()
        )
        assert torch.equal(dense_scales[b, :, :n].cpu(), want_scales[b, :, :n].cpu())
    assert (codes[untouched.to(device)] == 0xAB).all() and (
        scales[untouched.to(device)] == -1.5
    ).all()
    q = torch.randn(len(LENS), hq, 1, head_dim, device=device).to(torch.bfloat16)
    mass = ops().score_blocks_keys4(q, codes, scales, lens, None, True, table)
    assert mass.shape == (len(LENS), hkv, table.shape[1])
    ref = R.score_blocks_keys4(q.cpu(), R.unpack_keys4(dense_codes.cpu()), dense_scales.cpu(), LENS)
    err = (mass.cpu().double() - ref).abs().max().item()
    assert err <= 2e-5 * (hq // hkv) + 1e-4 * ref.abs().max().item(), err
    dense = ops().score_blocks_keys4(q, dense_codes.contiguous(), dense_scales.contiguous(), lens)
    assert torch.equal(mass, dense)


@pytest.mark.parametrize("device", device_params())
def test_paged_keys4_errors(device):
    codes, scales, table, lens = paged_keys4(2, 64, device)
    q = torch.randn(len(LENS), 4, 1, 64, device=device).to(torch.bfloat16)
    k = torch.randn(len(LENS), 2, 1, 64, device=device).to(torch.bfloat16)
    score, quant = ops().score_blocks_keys4, ops().quantize_keys4_
    assert_raises_naming(lambda: score(q, codes, scales, None, None, True, table), "seq_lens")
    bad = table.clone()
    bad[3, 5] = codes.shape[0]  # a live page of the 700-token sequence out of the pool
    assert_raises_naming(lambda: score(q, codes, scales, lens, None, True, bad), "page_table")
    assert_raises_naming(lambda: quant(codes, scales, k, lens, True, bad), "page_table")
    assert_raises_naming(
        lambda: score(q, codes[:, :, :32], scales[:, :, :32], lens, None, True, table), "codes"
    )
    assert_raises_naming(
        lambda: score(q, codes, scales, lens, None, True, table.long()), "page_table"
    )
    too_long = lens.clone()
    too_long[0] = B * table.shape[1] + 1
    assert_raises_naming(lambda: score(q, codes, scales, too_long, None, True, table), "seq_lens")


@pytest.mark.gpu
def test_paged_keys4_no_sync_and_graph():
    codes, scales, table, lens = paged_keys4(2, 128, "cuda")
    q = torch.randn(len(LENS), 8, 1, 128, device="cuda").to(torch.bfloat16)
    k = torch.randn(len(LENS), 2, 1, 128, device="cuda").to(torch.bfloat16)
    score, quant = ops().score_blocks_keys4, ops().quantize_keys4_
    quant(codes, scales, k, lens, True, table)
    want = score(q, codes, scales, lens, None, True, table)

    def step():  # append the new keys' rows (the same again), then score
        quant(codes, scales, k, lens, False, table)
        return score(q, codes, scales, lens, None, False, table)

    assert torch.equal(run_without_sync(step), want)
    graph, captured = capture_graph(step)
    q.copy_(torch.randn_like(q))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(captured, score(q, codes, scales, lens, None, True, table))
