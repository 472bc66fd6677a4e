"""select_blocks_varlen (padded scores of a ragged batch, each row with its own lengths, window
and sink) against the float64 reference and against select_blocks; the three ragged selection
ops together without a host sync and in a CUDA graph."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import (
    assert_raises_naming,
    capture_graph,
    cu_seqlens,
    ops,
    reuse_poisoned,
    run_without_sync,
    seq_args,
    sketch_params,
)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dense_last", [0, 2])
def test_select_blocks_varlen_matches_reference(device, dense_last):
    # A prefill, a chunk (fewer queries than keys), a single block, a 1-token sequence.
    b = 64
    lens_q = [700, 130, 63, 1]
    lens_k = [700, 900, 63, 65]
    nq = max(R.ceil_div(t, b) for t in lens_q) + 1  # padded beyond every sequence
    nk = max(R.ceil_div(t, b) for t in lens_k)
    scores = torch.rand(len(lens_q), nq, nk, device=device)
    scores[0, 3, :] = 0.5  # ties at the threshold
    args = seq_args(lens_q, lens_k, [70, 64, 1, 30], [64, 100, 0, 1], [70, 0, 5, 64], device)
    for keep in (0.0, 0.3, 1.0):
        reuse_poisoned(len(lens_q) * nq * nk * 4 * 2, device)
        index, count = ops().select_blocks_varlen(scores, args, b, keep, dense_last)
        exp_index, exp_count = R.select_blocks_varlen(scores.cpu(), args.cpu(), b, keep, dense_last)
        assert torch.equal(count.cpu(), exp_count), f"keep={keep}"
        assert torch.equal(index.cpu(), exp_index), f"keep={keep}"


@pytest.mark.parametrize("device", device_params())
def test_select_blocks_varlen_row_equals_select_blocks(device):
    # One row with the scalars of select_blocks: the same index, bitwise.
    b, tq, tk = 64, 300, 500
    scores = torch.rand(1, R.ceil_div(tq, b), R.ceil_div(tk, b), device=device)
    args = seq_args([tq], [tk], [50], [70], [50], device)
    got = ops().select_blocks_varlen(scores, args, b, 0.4, 1)
    exp = ops().select_blocks(scores, tq, tk, b, 0.4, 50, 70, 50, 1)
    assert torch.equal(got[0], exp[0]) and torch.equal(got[1], exp[1])


def test_select_blocks_varlen_errors_name_the_argument():
    scores = torch.rand(2, 3, 4)
    select = ops().select_blocks_varlen
    good = seq_args([100, 1], [200, 1], [1, 1], [0, 0], [0, 0], "cpu")
    select(scores, good, 64, 0.5, 0)
    for bad in (
        seq_args([300, 1], [300, 1], [1, 1], [0, 0], [0, 0], "cpu"),  # too many blocks
        seq_args([100, 2], [200, 1], [1, 1], [0, 0], [0, 0], "cpu"),  # queries > keys
        seq_args([100, 1], [200, 1], [0, 1], [0, 0], [0, 0], "cpu"),  # window 0
        good[:1],
        good.long(),
        good[:, :4],
    ):
        assert_raises_naming(lambda: select(scores, bad, 64, 0.5, 0), "seq_args")
    assert_raises_naming(lambda: select(scores, good, 64, 1.5, 0), "keep_frac")


@pytest.mark.gpu
def test_selection_varlen_no_sync_and_graph():
    # validate=False: no host read, and the three ops replay in a CUDA graph on new inputs.
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dev, b, d = "cuda", 64, 128
    lens = (300, 64, 1000)
    x = torch.randn(sum(lens), 4, d, device=dev, dtype=torch.bfloat16)
    cu = cu_seqlens(lens, dev)
    n = max(R.ceil_div(t, b) for t in lens)
    counts = torch.tensor([R.ceil_div(t, b) for t in lens], dtype=torch.int32, device=dev)
    args = seq_args(lens, lens, [64] * 3, [64] * 3, [64] * 3, dev)
    signs, coords = sketch_params(d, d, dev)

    def step():
        s = ops().hadamard_sketch_varlen(x, signs, coords, b, cu, n, validate=False)
        a = ops().score_blocks(s, s, 0.1, counts, validate=False)
        return ops().select_blocks_varlen(a, args, b, 0.3, 1, validate=False)

    run_without_sync(step)
    graph, (index, count) = capture_graph(step)
    x.copy_(torch.randn_like(x))
    graph.replay()
    exp_index, exp_count = step()
    assert torch.equal(index, exp_index) and torch.equal(count, exp_count)
