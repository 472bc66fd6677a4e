"""eval/needle_rows.py: the recall of the exact attention mass by kind of query row (a needle's
blocks, the haystack after and before the first needle) and what the later needles keep of their
mass on the earlier ones, against a recomputation from a float64 softmax."""

import math

import pytest
import torch


@pytest.fixture
def nr():
    from eval import needle_rows

    return needle_rows


def _qkv(tokens, hq=4, hkv=2, d=64):
    g = torch.Generator().manual_seed(tokens)
    return [
        torch.randn(1, h, tokens, d, generator=g) * s
        for h, s in ((hq, 3.0), (hkv, 3.0), (hkv, 1.0))
    ]


def _reference_mass(q, k, tokens):
    kr = k.double().repeat_interleave(2, dim=1)  # 4 query heads over 2 KV heads
    logits = q.double() @ kr.transpose(-1, -2) / 8.0  # 1 / sqrt(head_dim 64)
    mask = torch.ones(tokens, tokens, dtype=torch.bool).tril()
    probs = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    nb = -(-tokens // 64)
    pad = nb * 64 - tokens
    per_row = torch.nn.functional.pad(probs.sum(1)[0], (0, pad, 0, pad)).view(nb, 64, nb, 64)
    mass = per_row.sum((1, 3))
    return mass / mass.sum(-1, keepdim=True)


@pytest.mark.parametrize("tokens", [1000, 1300])
def test_recall_by_kind_and_earlier_needles_match_the_reference(nr, tokens):
    import sketchwalk as sw
    from sketchwalk import attention

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    q, k, v = _qkv(tokens)
    needles = [[4], [7, 8], [11]]
    recorder = nr.NeedleRecall(needles)
    with recorder.watch():
        sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg))
    got = recorder.kind_table()[2]
    index, count, _, _ = attention.select_prefill_blocks(q, k, 2, sw.SketchWalkState(cfg))
    index, count = index[0, 0], count[0, 0]
    mass = _reference_mass(q, k, tokens)
    nb = mass.shape[0]

    def kept(i):
        return [int(b) for b in index[i, : int(count[i])]]

    thinned = [i for i in range(nb) if int(count[i]) < i + 1]
    recall = {i: float(mass[i, kept(i)].sum()) for i in thinned}
    flat = {4, 7, 8, 11}
    kinds = {
        "needle": [i for i in thinned if i in flat],
        "after": [i for i in thinned if i >= 4 and i not in flat],
        "before": [i for i in thinned if i < 4],
    }
    for kind, rows in kinds.items():
        assert rows, kind  # the knobs thin rows of every kind: the comparison can fail
        want = sum(recall[i] for i in rows) / len(rows)
        assert math.isclose(got[kind], want, rel_tol=1e-4), kind
    on, share = [], []
    for j, blocks in enumerate(needles[1:], start=1):
        earlier = sorted({b for bl in needles[:j] for b in bl})
        for i in blocks:
            if i in thinned:
                m = mass[i, earlier]
                on.append(float(m.sum()))
                share.append(float(m[[b in kept(i) for b in earlier]].sum() / m.sum()))
    assert on
    assert math.isclose(got["mass_on_earlier"], sum(on) / len(on), rel_tol=1e-4)
    assert math.isclose(got["kept_of_earlier"], sum(share) / len(share), rel_tol=1e-4, abs_tol=1e-6)
    assert 0.0 < got["needle"] < 1.0
