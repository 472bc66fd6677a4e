"""eval/quality_sweep.py's block scorers used as prefill rankings (issue 21): the sampled-row
scorer is the exact block mass when every row is sampled, and a float64 computation of its own
definition otherwise, and the key bound (Quest's per-block channel min / max) its own float64
definition (odd sizes: a partial last query block, more keys than queries)."""

import pytest
import torch

eq = pytest.importorskip("eval.quality_sweep")


def _qk(tq, tk, hq=4, hkv=2, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, hq, tq, d, generator=g) * 2, torch.randn(1, hkv, tk, d, generator=g) * 2


@pytest.mark.parametrize("tq,tk", [(64, 64), (65, 65), (200, 200), (63, 130)])
def test_every_row_sampled_is_the_exact_mass(tq, tk):
    q, k = _qk(tq, tk)
    if tq % 64:  # a partial last block samples repeated rows: only whole blocks compare
        full = tq // 64
        got = eq.sampled_rows_mass(q, k, 64, rows=64)[:, :full]
        want = eq.exact_block_mass(q, k, 64)[:, :full]
    else:
        got, want = eq.sampled_rows_mass(q, k, 64, rows=64), eq.exact_block_mass(q, k, 64)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tq,tk,rows", [(65, 65, 8), (130, 200, 4), (1, 70, 2)])
def test_sampled_rows_match_their_float64_definition(tq, tk, rows):
    q, k = _qk(tq, tk, seed=tq + rows)
    got = eq.sampled_rows_mass(q, k, 64, rows=rows)
    nq, nk = -(-tq // 64), -(-tk // 64)
    want = torch.zeros(1, nq, nk, dtype=torch.float64)
    kr = k.double().repeat_interleave(2, dim=1)
    for i in range(nq):
        valid = min(64, tq - 64 * i)
        for j in range(rows):
            t = 64 * i + int((j + 0.5) / rows * valid)
            logits = torch.einsum("hd,htd->ht", q.double()[0, :, t], kr[0]) / 32**0.5
            logits[:, t + (tk - tq) + 1 :] = float("-inf")
            p = torch.softmax(logits, dim=-1).sum(0)
            for b in range(nk):
                want[0, i, b] += p[64 * b : 64 * (b + 1)].sum()
    want /= want.sum(-1, keepdim=True)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tq,tk,rows", [(65, 65, 0), (130, 200, 0), (130, 200, 2), (1, 70, 2)])
def test_key_bound_matches_its_float64_definition(tq, tk, rows):
    # Per (query, key block, head): sum_d max(q_d min_d, q_d max_d) over the block's keys, a
    # softmax over the causal key blocks at 1/sqrt(D), summed over heads and the block's queries
    # (its mean query when rows = 0).
    q, k = _qk(tq, tk, seed=tq + rows + 1)
    got = eq.key_bound_mass(q, k, 64, rows=rows)
    nq, nk = -(-tq // 64), -(-tk // 64)
    qd, kd = q.double()[0], k.double()[0].repeat_interleave(2, dim=0)  # [Hq, T, D]
    want = torch.zeros(1, nq, nk, dtype=torch.float64)
    for i in range(nq):
        valid = min(64, tq - 64 * i)
        if rows:
            queries = [qd[:, 64 * i + int((j + 0.5) / rows * valid)] for j in range(rows)]
        else:
            queries = [qd[:, 64 * i : 64 * i + valid].mean(1)]
        last_block = i + nk - nq
        for qv in queries:  # [Hq, D]
            bound = torch.full((qv.shape[0], nk), float("-inf"), dtype=torch.float64)
            for b in range(last_block + 1):
                keys = kd[:, 64 * b : 64 * (b + 1)]  # [Hq, <=64, D]
                hi, lo = keys.amax(1), keys.amin(1)
                bound[:, b] = torch.maximum(qv * hi, qv * lo).sum(-1)
                # an upper bound: no key of the block has a larger logit
                assert (torch.einsum("htd,hd->ht", keys, qv).amax(1) <= bound[:, b] + 1e-9).all()
            want[0, i] += torch.softmax(bound / 32**0.5, dim=-1).sum(0)
    want /= want.sum(-1, keepdim=True)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tq,q_rows", [(65, 16), (200, 32), (1, 16), (128, 64)])
def test_sketch_subrows_match_their_float64_definition(tq, q_rows):
    # Per sub-block of q_rows queries: its mean query, Hadamard-sketched (tests/reference.py),
    # a softmax over every key block's sketched mean key at the paper's scale per head, summed
    # over heads; a query block's row is its sub-blocks' rows summed, normalized.
    import reference as R
    import sketchwalk

    q, k = _qk(tq, tq, seed=tq + q_rows, d=64)
    got = eq.sketch_subrow_scores(q, k, 64, q_rows=q_rows)
    cfg = sketchwalk.SketchWalkConfig()
    signs, coords = sketchwalk.ops.sketch_transform(64, cfg.sketch_dim, cfg.seed)
    c = R.logit_scale(coords.numel(), 64)
    sub = R.score_blocks(
        R.hadamard_sketch(q, signs, coords, q_rows), R.hadamard_sketch(k, signs, coords, 64), c
    )[0]
    nq = -(-tq // 64)
    want = torch.zeros(1, nq, sub.shape[1], dtype=torch.float64)
    for r in range(sub.shape[0]):
        want[0, r * q_rows // 64] += sub[r]
    want /= want.sum(-1, keepdim=True)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-4)
    if q_rows == 64:
        torch.testing.assert_close(got, eq.sketch_scores(q, k, 64), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="q_rows must divide"):
        eq.sketch_subrow_scores(q, k, 64, q_rows=24)
