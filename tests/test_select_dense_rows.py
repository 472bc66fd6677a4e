"""select_blocks' and select_blocks_varlen's dense_rows flags (docs/ops.md op 4): a flagged query
block keeps every causal key block, the other rows their usual rule, or with dense_rows_in_budget
a keep fraction lowered to pay for the flagged rows (docs/spec.md section 13). Against the float64
reference on fresh scores and flags, at odd sizes, with poisoned outputs; the flagged rows also
against their definition directly (every causal block, ascending, -1 after), the budget against
its aim (about as many kept candidates as without flags); bad flags are refused by name; on CUDA
without a host sync and in a CUDA graph."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import (
    assert_raises_naming,
    capture_graph,
    ops,
    reuse_poisoned,
    run_without_sync,
    seq_args,
)

B = 64


def _assert_flagged_rows_dense(index, count, flags, num_queries, num_keys):
    """Each flagged row of index [rows, 1, nq, nk] keeps 0 .. its causal limit, nothing else."""
    for r, i in torch.nonzero(flags.cpu()).tolist():
        lim = R.causal_limit(i, num_queries[r], num_keys[r], B)
        want = list(range(lim + 1))
        assert count[r, 0, i].item() == len(want), (r, i)
        row = index[r, 0, i].tolist()
        assert row[: len(want)] == want and all(x == -1 for x in row[len(want) :]), (r, i)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tq,tk", [(1, 1), (63, 63), (65, 65), (700, 700), (130, 900), (1, 65)])
@pytest.mark.parametrize("dense_last", [0, 2])
@pytest.mark.parametrize("in_budget", [False, True])
def test_select_blocks_dense_rows_match_reference(device, tq, tk, dense_last, in_budget):
    nq, nk = R.ceil_div(tq, B), R.ceil_div(tk, B)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        scores = torch.rand(3, nq, nk, generator=g).to(device)
        # Flags as a column slice of a wider tensor on odd seeds (row stride > num_q_blocks).
        wide = (torch.rand(3, nq + 5, generator=g) < 0.3).to(device)
        flags = wide[:, :nq] if seed % 2 else wide[:, :nq].contiguous()
        for keep in (0.0, 0.3, 1.0):
            reuse_poisoned(3 * nq * nk * 4 * 2, device)
            index, count = ops().select_blocks(
                scores, tq, tk, B, keep, 70, 64, 1, dense_last, flags, in_budget
            )
            _, exp_index, exp_count = R.select_blocks(
                scores.cpu(), tq, tk, B, keep, 70, 64, 1, dense_last, flags.cpu(), in_budget
            )
            assert torch.equal(count.cpu(), exp_count), (seed, keep)
            assert torch.equal(index.cpu(), exp_index), (seed, keep)
            _assert_flagged_rows_dense(index.cpu(), count.cpu(), flags, [tq] * 3, [tk] * 3)
        # No flag set: the op without dense_rows, bitwise.
        none = torch.zeros_like(flags)
        got = ops().select_blocks(scores, tq, tk, B, 0.3, 70, 64, 1, dense_last, none, in_budget)
        base = ops().select_blocks(scores, tq, tk, B, 0.3, 70, 64, 1, dense_last)
        assert torch.equal(got[0], base[0]) and torch.equal(got[1], base[1])


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("in_budget", [False, True])
def test_many_rows_dense_rows_match_reference(device, in_budget):
    # 120 x 11 query-block rows: the CUDA kernel's warp-per-row launch (rows >= 2 x SMs), where
    # the tests above run its CTA-per-row one.
    scores = torch.rand(120, 11, 11, device=device)
    flags = torch.rand(120, 11, device=device) < 0.3
    index, count = ops().select_blocks(scores, 700, 700, B, 0.3, 70, 64, 1, 2, flags, in_budget)
    _, exp_index, exp_count = R.select_blocks(
        scores.cpu(), 700, 700, B, 0.3, 70, 64, 1, 2, flags.cpu(), in_budget
    )
    assert torch.equal(count.cpu(), exp_count) and torch.equal(index.cpu(), exp_index)
    _assert_flagged_rows_dense(index.cpu(), count.cpu(), flags, [700] * 120, [700] * 120)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("in_budget", [False, True])
def test_select_blocks_varlen_dense_rows_match_reference(device, in_budget):
    # A prefill, a chunk, a single block, a 1-token sequence; flags also past each sequence's
    # query blocks (those rows must still select nothing).
    lens_q, lens_k = [700, 130, 63, 1], [700, 900, 63, 65]
    nq = max(R.ceil_div(t, B) for t in lens_q) + 1
    nk = max(R.ceil_div(t, B) for t in lens_k)
    args = seq_args(lens_q, lens_k, [70, 64, 1, 30], [64, 100, 0, 1], [70, 0, 5, 64], device)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        scores = torch.rand(len(lens_q), nq, nk, generator=g).to(device)
        flags = (torch.rand(len(lens_q), nq, generator=g) < 0.4).to(device)
        for keep in (0.0, 0.3):
            reuse_poisoned(len(lens_q) * nq * nk * 4 * 2, device)
            index, count = ops().select_blocks_varlen(
                scores, args, B, keep, 1, True, flags, in_budget
            )
            exp_index, exp_count = R.select_blocks_varlen(
                scores.cpu(), args.cpu(), B, keep, 1, flags.cpu(), in_budget
            )
            assert torch.equal(count.cpu(), exp_count), (seed, keep)
            assert torch.equal(index.cpu(), exp_index), (seed, keep)
            inside = flags.cpu().clone()
            for r, t in enumerate(lens_q):
                assert count[r, 0, R.ceil_div(t, B) :].eq(0).all()
                inside[r, R.ceil_div(t, B) :] = False
            _assert_flagged_rows_dense(index.cpu(), count.cpu(), inside, lens_q, lens_k)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("block", [16, 48, 64])
@pytest.mark.parametrize("rows", [5, 300])
def test_varlen_budget_at_intermediate_keeps(device, block, rows):
    # Few flags (10%) and keep 0.5, so most rows of every sequence rank at a keep' strictly
    # between 0 and keep (the test checks that it does); 300 rows run the CUDA kernel's
    # warp-per-row launch, 5 its CTA-per-row one; block sizes other than 64.
    g = torch.Generator().manual_seed(rows * block)
    lens_q = [int(x) for x in torch.randint(1, 40 * block, (rows,), generator=g)]
    lens_k = [t + int(x) for t, x in zip(lens_q, torch.randint(0, 3 * block, (rows,), generator=g))]
    nq = max(R.ceil_div(t, block) for t in lens_q)
    nk = max(R.ceil_div(t, block) for t in lens_k)
    windows = [int(x) for x in torch.randint(1, 2 * block, (rows,), generator=g)]
    sinks = [int(x) for x in torch.randint(0, 2 * block, (rows,), generator=g)]
    args = seq_args(lens_q, lens_k, windows, sinks, windows, device)
    scores = torch.rand(rows, nq, nk, generator=g).to(device)
    flags = (torch.rand(rows, nq, generator=g) < 0.1).to(device)
    dense_last = 1
    intermediate = 0
    for r in range(rows):
        nqr = R.ceil_div(lens_q[r], block)
        kr = R.budgeted_keep_frac(
            0.5,
            flags[r, :nqr].tolist(),
            lens_q[r],
            lens_k[r],
            block,
            windows[r],
            sinks[r],
            dense_last,
        )
        intermediate += 0.0 < kr < 0.5
    assert intermediate >= rows // 3, intermediate
    reuse_poisoned(rows * nq * nk * 4 * 2, device)
    index, count = ops().select_blocks_varlen(
        scores, args, block, 0.5, dense_last, True, flags, True
    )
    exp_index, exp_count = R.select_blocks_varlen(
        scores.cpu(), args.cpu(), block, 0.5, dense_last, flags.cpu(), True
    )
    assert torch.equal(count.cpu(), exp_count)
    assert torch.equal(index.cpu(), exp_index)


@pytest.mark.parametrize("device", device_params())
def test_dense_rows_budget_rounds_as_the_reference(device):
    # Block size 1, 12 tokens, window 1, sink 1: row i has C_i = i - 1 candidates; rows 5 and 8
    # flagged (F = 11, U = 44). keep' = 0.8 - (1 - 0.8) * (F / U) puts row 6's quantile position
    # exactly on an order statistic (1.0), where the other rounding order,
    # 0.8 - ((1 - 0.8) * F) / U, puts it an ulp below; with row 6's candidates 1e6 apart the
    # threshold then falls below the second one, which the strict > rule keeps: the kernels
    # must round each step as the reference does (include/sketchwalk/dense_rows_budget.h).
    tokens, keep, flagged = 12, 0.8, (5, 8)
    cands = [max(0, i - 1) for i in range(tokens)]
    f = sum(cands[i] for i in flagged)
    u = sum(cands) - f
    ours, other = keep - (1.0 - keep) * (f / u), keep - ((1.0 - keep) * f) / u
    assert (1.0 - ours) * (cands[6] - 1) == 1.0 != (1.0 - other) * (cands[6] - 1)  # the premise
    flags = torch.zeros(1, tokens, dtype=torch.bool)
    flags[0, list(flagged)] = True
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        scores = torch.rand(1, tokens, tokens, generator=g)
        scores[0, 6, 0] = -1.0  # block 0 (not a candidate) below any threshold
        scores[0, 6, 1:6] = 1e6 * torch.randperm(5, generator=g).float()
        args = (tokens, tokens, 1, keep, 1, 1, 0, 0)
        _, exp_index, exp_count = R.select_blocks(scores, *args, flags, True)
        th_other = R._row_thresholds(scores.double(), tokens, tokens, 1, [other], 1, 1)
        row = scores[0, 6, :7].double()
        kept_other = int((row[:6] > th_other[0, 6]).sum()) + 1  # causal blocks + the window's
        assert kept_other == int(exp_count[0, 0, 6]) + 1  # the premise: the orders differ
        index, count = ops().select_blocks(scores.to(device), *args, flags.to(device), True)
        assert torch.equal(count.cpu(), exp_count) and torch.equal(index.cpu(), exp_index)


@pytest.mark.parametrize("device", device_params())
def test_dense_rows_in_budget_refuses_sums_past_int32(device):
    # 46341 x 46341 blocks (> 2^31 - 1) by a stride-0 expand: no memory, the check only.
    scores = torch.zeros(1, 1, 46341, device=device).expand(1, 46341, 46341)
    flags = torch.zeros(1, 46341, dtype=torch.bool, device=device)
    assert_raises_naming(
        lambda: ops().select_blocks(
            scores, 46341 * 64, 46341 * 64, B, 0.5, 64, 0, 64, 0, flags, True
        ),
        "dense_rows_in_budget",
    )


@pytest.mark.parametrize("device", device_params())
def test_dense_rows_errors_name_the_argument(device):
    scores = torch.rand(2, 3, 4, device=device)
    args = seq_args([150, 1], [200, 1], [1, 1], [0, 0], [0, 0], device)
    good = torch.zeros(2, 3, dtype=torch.bool, device=device)
    select = lambda flags: ops().select_blocks(scores, 150, 200, B, 0.5, 1, 0, 0, 0, flags)  # noqa: E731
    varlen = lambda flags: ops().select_blocks_varlen(scores, args, B, 0.5, 0, True, flags)  # noqa: E731
    select(good), varlen(good)
    bad = [
        good.to(torch.uint8),  # dtype
        good[:1],  # rows
        good[:, :2],  # num_q_blocks
        good[None],  # rank
        torch.zeros(3, 2, dtype=torch.bool, device=device).t(),  # last dim not contiguous
    ]
    if device == "cuda":
        bad.append(good.cpu())
    for flags in bad:
        assert_raises_naming(lambda: select(flags), "dense_rows")
        assert_raises_naming(lambda: varlen(flags), "dense_rows")


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [2000, 8192])
def test_dense_rows_in_budget_keeps_the_candidate_count(device, tokens):
    # The budget's aim, on the op itself: with 3/32 of the rows flagged, the kept candidate blocks
    # (outside window, sink and the flagged and trailing dense rows) plus the flagged rows'
    # candidates stay within a block a row of the unflagged count; without the budget they grow by
    # the flagged rows' (1 - keep) share. Also the float64 reference, row for row.
    nq = R.ceil_div(tokens, B)
    g = torch.Generator().manual_seed(tokens)
    scores = torch.rand(2, nq, nq, generator=g).to(device)
    flags = torch.zeros(2, nq, dtype=torch.bool)
    flags[0, torch.randperm(nq - 5, generator=g)[: round(3 / 32 * nq)] + 1] = True  # anywhere
    flags[1, nq - 4 - round(3 / 32 * nq) : nq - 4] = True  # the longest rows
    flags = flags.to(device)
    w, dense_last, keep = 64, 4, 0.29
    args = (scores, tokens, tokens, B, keep, w, w, w, dense_last)

    def candidates_kept(count):
        # Per row: kept - window block(s) - sink block (w = 64: one each, two from row 1 on).
        rows = count[:, 0, : nq - dense_last].long().cpu()
        fixed = torch.tensor([1] + [2] * (nq - dense_last - 1))
        return (rows - fixed).sum(dim=1)

    plain = candidates_kept(ops().select_blocks(*args)[1])
    added = candidates_kept(ops().select_blocks(*args, flags)[1])
    budget = candidates_kept(ops().select_blocks(*args, flags, True)[1])
    _, _, exp = R.select_blocks(
        *[a.cpu() if torch.is_tensor(a) else a for a in args], flags.cpu(), True
    )
    assert torch.equal(candidates_kept(exp), budget)
    for r in range(2):
        assert added[r] > plain[r] + 0.5 * (1 - keep) * round(3 / 32 * nq) * nq / 4
        assert abs(int(budget[r]) - int(plain[r])) <= nq, (r, budget, plain)


@pytest.mark.gpu
@pytest.mark.parametrize("in_budget", [False, True])
def test_select_blocks_varlen_dense_rows_no_sync_and_graph(in_budget):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    dev, lens = "cuda", (300, 64, 1000)
    nq = max(R.ceil_div(t, B) for t in lens)
    scores = torch.rand(len(lens), nq, nq, device=dev)
    flags = torch.rand(len(lens), nq, device=dev) < 0.3
    args = seq_args(lens, lens, [64] * 3, [64] * 3, [64] * 3, dev)

    def step():
        return ops().select_blocks_varlen(scores, args, B, 0.3, 1, False, flags, in_budget)

    run_without_sync(step)
    graph, (index, count) = capture_graph(step)
    scores.copy_(torch.rand_like(scores))
    flags.copy_(torch.rand(flags.shape, device=dev) < 0.3)
    graph.replay()
    exp_index, exp_count = R.select_blocks_varlen(
        scores.cpu(), args.cpu(), B, 0.3, 1, flags.cpu(), in_budget
    )
    assert torch.equal(index.cpu(), exp_index) and torch.equal(count.cpu(), exp_count)
