"""eval/quality_sweep.py's block scorers used as prefill rankings (issue 21): the sampled-row
scorer is the exact block mass when every row is sampled, and a float64 computation of its own
definition otherwise (odd sizes: a partial last query block, more keys than queries)."""

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
