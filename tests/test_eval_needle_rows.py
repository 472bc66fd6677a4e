"""eval/needle_rows.py: the recall of the exact attention mass by kind of query row (a needle's
blocks, the haystack after and before the first needle) and what the later needles keep of their
mass on the earlier ones, against a recomputation from a float64 softmax."""

import math

import pytest

import reference as R
from utils import random_layers


@pytest.fixture
def nr():
    from eval import needle_rows

    return needle_rows


@pytest.mark.parametrize("tokens", [1000, 1300])
def test_recall_by_kind_and_earlier_needles_match_the_reference(nr, tokens):
    import sketchwalk as sw
    from sketchwalk import attention

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    q, k, v = random_layers(1, tokens, "cpu", tokens)[0]
    needles = [[4], [7, 8], [11]]
    recorder = nr.NeedleRecall(needles)
    with recorder.watch():
        sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg))
    got = recorder.kind_table()[2]
    index, count, _, _ = attention.select_prefill_blocks(q, k, 2, sw.SketchWalkState(cfg))
    index, count = index[0, 0], count[0, 0]
    mass = R.causal_block_mass(q, k)
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
