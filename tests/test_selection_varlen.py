"""The selection ops of a ragged batch against the float64 reference: hadamard_sketch_varlen
(packed tokens, cu_seqlens), score_blocks over padded sketches (num_kv_blocks) and
select_blocks_varlen (each row's own lengths and window / sink tokens)."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from tolerances import assert_close64
from utils import assert_raises_naming, capture_graph, ops, run_without_sync, sketch_params

# Odd lengths on purpose: 1 token, one short of a block, one past it, several blocks.
RAGGED_LENS = [(1,), (63, 65, 1), (130, 7, 64, 200)]


def _cu(lens, device):
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    return torch.tensor(cu, dtype=torch.int32, device=device)


def _reuse_poisoned(nbytes, device):
    """Leave a freed NaN block in the caching allocator, so an output that skips a write shows
    NaN instead of the zeros a fresh allocation may happen to hold."""
    if device == "cuda":
        poison(torch.empty(nbytes // 4 + 1024, device=device))


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("lens", RAGGED_LENS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hadamard_sketch_varlen_matches_reference(device, lens, dtype):
    heads, d, b = 3, 64, 64
    x = torch.randn(sum(lens), heads, d, device=device).to(dtype)
    cu = _cu(lens, device)
    max_blocks = max(R.ceil_div(n, b) for n in lens) + 1  # one spare block: must be zeros
    for m in (64, 17):
        signs, coords = sketch_params(d, m, device, seed=m)
        _reuse_poisoned(len(lens) * heads * max_blocks * m * 4, device)
        got = ops().hadamard_sketch_varlen(x, signs, coords, b, cu, max_blocks)
        exp = R.hadamard_sketch_varlen(x, signs, coords, b, cu.cpu(), max_blocks)
        assert got.shape == (len(lens), heads, max_blocks, m) and got.dtype == torch.float32
        assert_close64(got, exp, scale_atol=10, msg=f"m={m}")
        for s, n in enumerate(lens):  # exactly zero past each sequence's blocks
            assert torch.all(got[s, :, R.ceil_div(n, b):] == 0)


@pytest.mark.parametrize("device", device_params())
def test_hadamard_sketch_varlen_equals_per_sequence_sketch(device):
    # The same kernel over each sequence's rows: bitwise equal to hadamard_sketch of that
    # sequence alone (same arithmetic, same order).
    lens = (100, 64, 3)
    x = torch.randn(sum(lens), 2, 128, device=device, dtype=torch.float16)
    signs, coords = sketch_params(128, 128, device)
    got = ops().hadamard_sketch_varlen(x, signs, coords, 64, _cu(lens, device), 2)
    t0 = 0
    for s, n in enumerate(lens):
        alone = ops().hadamard_sketch(x[t0 : t0 + n].transpose(0, 1)[None], signs, coords, 64)[0]
        assert torch.equal(got[s, :, : alone.shape[1]], alone)
        t0 += n


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("hq,hkv", [(4, 4), (6, 2)])
@pytest.mark.parametrize("cols", [1, 5, 70])
def test_score_blocks_num_kv_blocks_matches_reference(device, hq, hkv, cols):
    batch, rows, m = 3, 9, 32
    qs = torch.randn(batch, hq, rows, m, device=device)
    ks = torch.randn(batch, hkv, cols, m, device=device)
    counts = torch.tensor([cols, max(1, cols // 2), 1], dtype=torch.int32, device=device)
    _reuse_poisoned(batch * rows * cols * 4 * 8, device)
    got = ops().score_blocks(qs, ks, 0.3, counts)
    exp = R.score_blocks(qs, ks, 0.3, counts.cpu())
    assert_close64(got, exp, scale_atol=10)
    for b in range(batch):
        assert torch.all(got[b, :, int(counts[b]):] == 0)
        assert torch.allclose(got[b, :, : int(counts[b])].sum(-1),
                              torch.ones(rows, device=device, dtype=torch.float32))


def _seq_args(lens_q, lens_k, window, exclude, attend, device):
    rows = [[tq, tk, w, e, a] for tq, tk, w, e, a in zip(lens_q, lens_k, window, exclude, attend)]
    return torch.tensor(rows, dtype=torch.int32, device=device)


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
    args = _seq_args(lens_q, lens_k, [70, 64, 1, 30], [64, 100, 0, 1], [70, 0, 5, 64], device)
    for keep in (0.0, 0.3, 1.0):
        _reuse_poisoned(len(lens_q) * nq * nk * 4 * 2, device)
        index, count = ops().select_blocks_varlen(scores, args, b, keep, dense_last)
        exp_index, exp_count = R.select_blocks_varlen(scores.cpu(), args.cpu(), b, keep,
                                                      dense_last)
        assert torch.equal(count.cpu(), exp_count), f"keep={keep}"
        assert torch.equal(index.cpu(), exp_index), f"keep={keep}"


@pytest.mark.parametrize("device", device_params())
def test_select_blocks_varlen_row_equals_select_blocks(device):
    # One row with the scalars of select_blocks: the same index, bitwise.
    b, tq, tk = 64, 300, 500
    scores = torch.rand(1, R.ceil_div(tq, b), R.ceil_div(tk, b), device=device)
    args = _seq_args([tq], [tk], [50], [70], [50], device)
    got = ops().select_blocks_varlen(scores, args, b, 0.4, 1)
    exp = ops().select_blocks(scores, tq, tk, b, 0.4, 50, 70, 50, 1)
    assert torch.equal(got[0], exp[0]) and torch.equal(got[1], exp[1])


def test_selection_varlen_errors_name_the_argument():
    d = 64
    signs, coords = sketch_params(d, d, "cpu")
    x = torch.randn(10, 2, d)
    cu = _cu((4, 6), "cpu")
    sketch = ops().hadamard_sketch_varlen
    assert_raises_naming(lambda: sketch(x[None], signs, coords, 64, cu, 1), "x")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, cu.long(), 1), "cu_seqlens")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, _cu((4, 5), "cpu"), 1), "cu_seqlens")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, _cu((6, 4), "cpu").flip(0), 1),
                         "cu_seqlens")
    assert_raises_naming(lambda: sketch(x, signs, coords, 4, cu, 1), "max_blocks")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, cu, -1), "max_blocks")
    qs, ks = torch.randn(2, 2, 3, 8), torch.randn(2, 1, 4, 8)
    score = ops().score_blocks
    assert_raises_naming(lambda: score(qs, ks, 0.1, torch.tensor([4, 5], dtype=torch.int32)),
                         "num_kv_blocks")
    assert_raises_naming(lambda: score(qs, ks, 0.1, torch.tensor([0, 1], dtype=torch.int32)),
                         "num_kv_blocks")
    assert_raises_naming(lambda: score(qs, ks, 0.1, torch.tensor([1], dtype=torch.int32)),
                         "num_kv_blocks")
    assert_raises_naming(lambda: score(qs, ks, 0.1, torch.tensor([1, 1])), "num_kv_blocks")
    scores = torch.rand(2, 3, 4)
    select = ops().select_blocks_varlen
    good = _seq_args([100, 1], [200, 1], [1, 1], [0, 0], [0, 0], "cpu")
    select(scores, good, 64, 0.5, 0)
    for bad in (_seq_args([300, 1], [300, 1], [1, 1], [0, 0], [0, 0], "cpu"),  # too many blocks
                _seq_args([100, 2], [200, 1], [1, 1], [0, 0], [0, 0], "cpu"),  # queries > keys
                _seq_args([100, 1], [200, 1], [0, 1], [0, 0], [0, 0], "cpu"),  # window 0
                good[:1], good.long(), good[:, :4]):
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
    cu = _cu(lens, dev)
    n = max(R.ceil_div(t, b) for t in lens)
    counts = torch.tensor([R.ceil_div(t, b) for t in lens], dtype=torch.int32, device=dev)
    args = _seq_args(lens, lens, [64] * 3, [64] * 3, [64] * 3, dev)
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
