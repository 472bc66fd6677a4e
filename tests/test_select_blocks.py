"""select_blocks against the float64 reference: exact sets, ties, superset of the
token-level rule of docs/spec.md section 4."""

import math

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from utils import (
    SEQ_LENS,
    B,  # the one block-size constant
    ops,
)


def prefill_args(tk, keep_frac=0.125, window_frac=0.05, sink_frac=0.025):
    w = max(1, math.floor(window_frac * tk))
    sink = max(1, math.floor(sink_frac * tk))
    return dict(
        keep_frac=keep_frac,
        window_tokens=w,
        exclude_sink_tokens=sink,
        attend_sink_tokens=w,
        dense_last_q_blocks=4,
    )


def decode_args(tk, keep_frac=0.125, window_frac=0.05, sink_frac=0.025):
    w = max(1, math.floor(window_frac * tk))
    sink = max(1, math.floor(sink_frac * tk))
    return dict(
        keep_frac=keep_frac,
        window_tokens=w,
        exclude_sink_tokens=sink,
        attend_sink_tokens=max(w, sink),
        dense_last_q_blocks=0,
    )


def run_and_compare(scores, tq, tk, block_size, a):
    idx, cnt = ops().select_blocks(
        scores,
        tq,
        tk,
        block_size,
        a["keep_frac"],
        a["window_tokens"],
        a["exclude_sink_tokens"],
        a["attend_sink_tokens"],
        a["dense_last_q_blocks"],
    )
    keep, ridx, rcnt = R.select_blocks(
        scores,
        tq,
        tk,
        block_size,
        a["keep_frac"],
        a["window_tokens"],
        a["exclude_sink_tokens"],
        a["attend_sink_tokens"],
        a["dense_last_q_blocks"],
    )
    nq, nk = scores.shape[1], scores.shape[2]
    assert idx.dtype == torch.int32 and cnt.dtype == torch.int32
    assert idx.shape == (scores.shape[0], 1, nq, nk), idx.shape
    assert cnt.shape == (scores.shape[0], 1, nq), cnt.shape
    # Compare as sets first (readable diff), then the exact layout (sorted, -1 padded).
    got_mask = R.block_index_to_mask(idx.cpu(), cnt.cpu(), nk)[:, 0]
    diff = torch.nonzero(got_mask != keep.cpu())
    assert diff.numel() == 0, (
        f"selection differs at (batch, q_block, kv_block) "
        f"{diff[:8].tolist()}; kernel={got_mask[tuple(diff[0])].item()}"
    )
    assert torch.equal(cnt.cpu(), rcnt.cpu())
    assert torch.equal(idx.cpu(), ridx.cpu()), "block_index layout (order / -1 padding) differs"
    return idx, cnt


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS + [3000])
@pytest.mark.parametrize("keep_frac", [0.125, 0.5])
def test_select_prefill_random(device, tokens, keep_frac):
    n = R.ceil_div(tokens, B)
    scores = torch.rand(2, n, n, device=device)
    run_and_compare(scores, tokens, tokens, B, prefill_args(tokens, keep_frac))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS + [3000])
def test_select_decode_random(device, tokens):
    n = R.ceil_div(tokens, B)
    scores = torch.rand(3, 1, n, device=device)
    run_and_compare(scores, 1, tokens, B, decode_args(tokens))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tq,tk", [(65, 1000), (100, 1000), (1, 65), (129, 200), (640, 4000)])
def test_select_chunked_queries(device, tq, tk):
    # Tq < Tk: queries at the end of the keys, causal_limit offset, partial blocks both sides.
    scores = torch.rand(2, R.ceil_div(tq, B), R.ceil_div(tk, B), device=device)
    a = prefill_args(tk, 0.25)
    a["dense_last_q_blocks"] = 1
    run_and_compare(scores, tq, tk, B, a)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("levels", [1, 2, 3, 5])
def test_select_ties(device, levels):
    # Scores take only `levels` distinct values: the threshold lands on ties; strict '>'
    # drops every block equal to it. levels=1: nothing passes the quantile rule.
    tokens = 64 * 40
    n = 40
    scores = (torch.randint(0, levels, (2, n, n), device=device).float() + 1) / levels
    idx, cnt = run_and_compare(scores, tokens, tokens, B, prefill_args(tokens, 0.3))
    if levels == 1:
        # Only the attend-sink blocks, the window blocks and the 4 dense rows survive.
        assert int(cnt[0, 0, 20]) == 2 + 3  # blocks 0-1 (first 128 keys) + 18, 19, 20


@pytest.mark.parametrize("device", device_params())
def test_select_structured_obvious(device):
    # One-hot structure: row i strongly prefers block i // 2; with keep_frac small only those
    # (plus sinks/windows/dense rows) are kept.
    tokens, n = 64 * 32, 32
    scores = torch.full((1, n, n), 0.01, device=device)
    scores += torch.arange(n, device=device).float()[None, None, :] * 1e-4  # distinct
    for i in range(n):
        scores[0, i, i // 2] = 1.0
    a = prefill_args(tokens, keep_frac=0.05)
    idx, cnt = run_and_compare(scores, tokens, tokens, B, a)
    row = idx[0, 0, 20, : cnt[0, 0, 20]].tolist()
    assert 10 in row


@pytest.mark.parametrize("device", device_params())
def test_select_strided_scores(device):
    tokens = 1000
    n = R.ceil_div(tokens, B)
    scores = strided_copy(torch.rand(2, n, n, device=device))
    run_and_compare(scores, tokens, tokens, B, prefill_args(tokens))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [63, 65, 1000, 3000])
@pytest.mark.parametrize("window_frac,sink_frac", [(0.05, 0.025), (0.2, 0.1), (0.001, 0.001)])
@pytest.mark.parametrize("block_size", [64, 16])
def test_selection_superset_of_token_rule(device, tokens, window_frac, sink_frac, block_size):
    n = R.ceil_div(tokens, block_size)
    scores = torch.rand(1, n, n, device=device)
    a = prefill_args(tokens, 0.125, window_frac, sink_frac)
    args = (
        a["keep_frac"],
        a["window_tokens"],
        a["exclude_sink_tokens"],
        a["attend_sink_tokens"],
        a["dense_last_q_blocks"],
    )
    idx, cnt = ops().select_blocks(scores, tokens, tokens, block_size, *args)
    got = R.token_mask_from_block_index(idx, cnt, tokens, tokens, block_size)[:, 0]
    ref = R.token_mask_reference(scores, tokens, tokens, block_size, *args)
    missing = torch.nonzero(ref & ~got)
    assert missing.numel() == 0, (
        f"kernel drops (batch, query, key) {missing[:8].tolist()} kept by SPEC"
    )
    # And selects only causal blocks, sorted, -1 padded.
    for i in range(n):
        row = idx[0, 0, i].tolist()
        c = int(cnt[0, 0, i])
        assert row[:c] == sorted(set(row[:c]))
        assert all(x == -1 for x in row[c:])
        assert row[c - 1] <= R.causal_limit(i, tokens, tokens, block_size)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [65, 1000, 3000])
def test_decode_selection_superset_of_token_rule(device, tokens):
    scores = torch.rand(1, 1, R.ceil_div(tokens, B), device=device)
    a = decode_args(tokens)
    args = (
        a["keep_frac"],
        a["window_tokens"],
        a["exclude_sink_tokens"],
        a["attend_sink_tokens"],
        a["dense_last_q_blocks"],
    )
    idx, cnt = ops().select_blocks(scores, 1, tokens, B, *args)
    got = R.token_mask_from_block_index(idx, cnt, 1, tokens, B)[:, 0]
    ref = R.token_mask_reference(scores, 1, tokens, B, *args)
    assert not (ref & ~got).any()
