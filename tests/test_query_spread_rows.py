"""ops.query_spread_rows (docs/ops.md op 4c, docs/spec.md section 13): each sequence row's query
blocks of largest query spread as dense-row flags. Against the float64 reference
(reference.dense_spread_rows) on fresh inputs whose ranking is not within float32 noise of a
tie, at odd sizes and head_dims, strided q, three dtypes; the packed (varlen) rows against each
sequence alone; planted and degenerate blocks; bad arguments refused by name; on CUDA without a
host sync and in a CUDA graph."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import B, assert_raises_naming, capture_graph, cu_seqlens, ops, run_without_sync


def _gap(q, frac, dense_last, num_blocks=None):
    """Smallest relative gap, over the rows of q [batch, heads, T, D], between the last chosen
    and the first unchosen candidate (inf when nothing is left unchosen)."""
    spread = R.query_spread(q.cpu(), B)
    n = spread.shape[1] if num_blocks is None else num_blocks
    want, gap = round(frac * n), float("inf")
    for row in spread:
        values = sorted((float(row[i]) for i in range(1, max(1, n - dense_last))), reverse=True)
        if 0 < want < len(values):
            gap = min(gap, (values[want - 1] - values[want]) / values[want - 1])
    return gap


def _random_q(batch, heads, tokens, dim, dtype, device, seed):
    """[batch, heads, tokens, dim] rows with block-varying scale (distinct spreads), rounded to
    dtype."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, heads, tokens, dim)
    scale = torch.rand(batch, 1, tokens, 1, generator=g) * 3
    q = torch.randn(shape, generator=g) + 0.3 + torch.randn(shape, generator=g) * scale
    return q.to(device, dtype)


def _token_major(q):
    """The same values laid out [batch, tokens, heads, D] and viewed [batch, heads, tokens, D],
    as attention layers make q."""
    return q.transpose(1, 2).contiguous().transpose(1, 2)


def _rows(dense):
    return [torch.nonzero(row).flatten().tolist() for row in dense.cpu()]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "tokens,dim", [(1, 64), (63, 32), (65, 100), (130, 256), (700, 128), (1000, 160)]
)
@pytest.mark.parametrize("frac,dense_last", [(0.1, 4), (0.25, 0), (0.5, 2), (1.0, 4)])
def test_matches_the_reference(device, dtype, tokens, dim, frac, dense_last):
    for seed in range(20):
        q = _random_q(2, 3, tokens, dim, dtype, device, seed)
        if _gap(q, frac, dense_last) > 1e-4:
            break
    want = R.dense_spread_rows(q.cpu(), frac, dense_last, B)
    for layout in (q, _token_major(q)):
        dense = ops().query_spread_rows(layout, B, frac, dense_last)
        assert dense.shape == (2, R.ceil_div(tokens, B)) and dense.dtype == torch.bool
        assert _rows(dense) == want
    if tokens == 1000 and frac == 1.0:  # every candidate: blocks 1 .. 11
        assert want[0] == list(range(1, 12))
    # Wider outputs: padding columns stay false; past 12288 blocks the CUDA choice reads the
    # spreads from global memory instead of staging them.
    for width in (dense.shape[1] + 3, 12289):
        wider = ops().query_spread_rows(q, B, frac, dense_last, max_blocks=width)
        assert torch.equal(wider[:, : dense.shape[1]], dense)
        assert not wider[:, dense.shape[1] :].any()


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads,tokens,dim", [(11, 700, 128), (33, 400, 64), (8, 400, 32)])
def test_many_heads_match_the_reference(device, dtype, heads, tokens, dim):
    """More heads than a CTA has warps (the CUDA kernel's warp w takes heads w, w + 8, ...), a
    count that is no multiple of 8, and exactly 8."""
    for seed in range(20):
        q = _random_q(2, heads, tokens, dim, dtype, device, seed)
        if _gap(q, 0.25, 2) > 1e-4:
            break
    want = R.dense_spread_rows(q.cpu(), 0.25, 2, B)
    assert any(want)  # the case picks rows
    assert _rows(ops().query_spread_rows(q, B, 0.25, 2)) == want


@pytest.mark.parametrize("device", device_params())
def test_planted_and_degenerate_blocks(device):
    q = torch.ones(1, 2, 640, 64, device=device)  # every row its block's mean: spread 0
    q[0, :, 5 * B : 5 * B + 8] *= -3  # block 5's rows point two ways
    assert _rows(ops().query_spread_rows(q, B, 0.1, 0)) == [[5]]  # round(0.1 * 10) = 1
    zero = torch.zeros(1, 1, 640, 64, device=device)  # zero means: +inf each, ties by block
    assert _rows(ops().query_spread_rows(zero, B, 0.3, 4)) == [[1, 2, 3]]
    nan = torch.ones(1, 1, 640, 64, device=device)
    nan[0, 0, 7 * B] = float("nan")  # NaN ranks first, as +inf
    assert _rows(ops().query_spread_rows(nan, B, 0.1, 0)) == [[7]]
    assert R.dense_spread_rows(nan.cpu(), 0.1, 0, B) == [[7]]
    assert R.dense_spread_rows(zero.cpu(), 0.3, 4, B) == [[1, 2, 3]]
    assert not ops().query_spread_rows(q, B, 0.0, 0).any()
    assert not ops().query_spread_rows(q[:, :, :65], B, 1.0, 1).any()  # 2 blocks: no candidate
    empty = ops().query_spread_rows(q[:, :, :0], B, 0.5, 0)
    assert empty.shape == (1, 0)


@pytest.mark.parametrize("device", device_params())
def test_packed_rows_equal_each_sequence_alone(device):
    lens = [700, 1, 0, 130, 1000]
    ranked = [11, 1, 0, 0, 7]  # 7 of 16: its first 7 blocks only; 0: a row left alone
    frac, dense_last = 0.5, 2
    for seed in range(20):
        seqs = [
            _random_q(1, 3, t, 64, torch.float32, device, seed + 100 * i)
            for i, t in enumerate(lens)
        ]
        if min(_gap(s, frac, dense_last, n) for s, n in zip(seqs, ranked) if n) > 1e-4:
            break
    # Packed [total, heads, D] as the ragged path holds q, viewed [1, heads, total, D].
    packed = torch.cat(seqs, dim=2)[0].transpose(0, 1).contiguous().transpose(0, 1)[None]
    n_ranked = torch.tensor(ranked, dtype=torch.int32, device=device)
    width = 18
    dense = ops().query_spread_rows(
        packed, B, frac, dense_last, cu_seqlens(lens, device), width, n_ranked
    )
    assert dense.shape == (len(lens), width)
    for r, (s, n) in enumerate(zip(seqs, ranked)):
        want = R.dense_spread_rows(s[:, :, : n * B].cpu(), frac, dense_last, B)[0] if n else []
        assert _rows(dense[r : r + 1]) == [want], f"row {r}"
    alone = ops().query_spread_rows(seqs[0], B, frac, dense_last)
    assert torch.equal(dense[0, : alone.shape[1]], alone[0])


@pytest.mark.parametrize("device", device_params())
def test_bad_arguments_name_themselves(device):
    q = torch.randn(1, 2, 200, 64, device=device)
    cu = cu_seqlens([150, 50], device)
    spread = ops().query_spread_rows
    spread(q, B, 0.5, 1)
    spread(q, B, 0.5, 1, cu, 3)
    for call, name in [
        (lambda: spread(q.long(), B, 0.5, 1), "q"),
        (lambda: spread(q[0], B, 0.5, 1), "q"),
        (lambda: spread(torch.randn(1, 2, 200, 300, device=device), B, 0.5, 1), "q"),
        (lambda: spread(q[:, :0], B, 0.5, 1), "q"),  # no heads
        (lambda: spread(q, 0, 0.5, 1), "block_size"),
        (lambda: spread(q, B, 1.5, 1), "frac"),
        (lambda: spread(q, B, float("nan"), 1), "frac"),
        (lambda: spread(q, B, 0.5, -1), "dense_last_q_blocks"),
        (lambda: spread(q, B, 0.5, 1, max_blocks=3), "max_blocks"),  # 4 blocks without cu
        (lambda: spread(q, B, 0.5, 1, cu), "max_blocks"),  # required with cu
        (lambda: spread(q, B, 0.5, 1, cu, 2), "max_blocks"),  # sequence 0 has 3 blocks
        (lambda: spread(q.expand(2, -1, -1, -1), B, 0.5, 1, cu, 3), "q"),  # batch 2 with cu
        (lambda: spread(q, B, 0.5, 1, cu.long(), 3), "cu_seqlens"),
        (lambda: spread(q, B, 0.5, 1, cu_seqlens([150, 60], device), 3), "cu_seqlens"),
        (lambda: spread(q, B, 0.5, 1, cu, 3, cu[:1]), "seq_q_blocks"),  # [1], not [2]
        (lambda: spread(q, B, 0.5, 1, cu, 3, cu[:2].long()), "seq_q_blocks"),
        (
            lambda: spread(
                q, B, 0.5, 1, cu, 3, torch.tensor([4, 1], dtype=torch.int32, device=device)
            ),
            "seq_q_blocks",
        ),
    ]:
        assert_raises_naming(call, name)
    if device == "cuda":
        assert_raises_naming(lambda: spread(q, B, 0.5, 1, cu.cpu(), 3), "cu_seqlens")


@pytest.mark.gpu
def test_no_sync_and_graph():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dev, lens = "cuda", (700, 64, 1000)
    q = torch.randn(1, 4, sum(lens), 128, device=dev, dtype=torch.bfloat16)
    cu = cu_seqlens(lens, dev)
    ranked = torch.tensor([11, 1, 16], dtype=torch.int32, device=dev)

    def step():
        return ops().query_spread_rows(q, B, 0.25, 2, cu, 16, ranked, validate=False)

    run_without_sync(step)
    graph, dense = capture_graph(step)
    q.copy_(_random_q(1, 4, sum(lens), 128, torch.bfloat16, dev, seed=9))
    graph.replay()
    expected = step()
    assert torch.equal(dense, expected)
    starts = (0, 700, 764)
    for r, (t, s) in enumerate(zip(lens, starts)):
        alone = ops().query_spread_rows(q[:, :, s : s + t], B, 0.25, 2, max_blocks=16)
        n = int(ranked[r])
        if n == R.ceil_div(t, B):  # ranking all of its blocks
            assert torch.equal(dense[r], alone[0]), f"row {r}"
