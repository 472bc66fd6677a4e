"""eval/layer_recall.py: the share of the exact attention mass a prefill selection keeps, per
layer, against a recomputation from a float64 softmax; and the walk's entropy."""

import math

import pytest
import torch

import reference as R


@pytest.fixture
def lr():
    from eval import layer_recall

    return layer_recall


def test_block_recall_sums_the_kept_blocks_mass_only(lr):
    mass = torch.tensor([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.5, 0.2, 0.3]])
    index = torch.tensor([[0, -1, -1], [1, -1, -1], [0, 2, -1]], dtype=torch.int32)
    count = torch.tensor([1, 1, 2], dtype=torch.int32)
    torch.testing.assert_close(lr.block_recall(mass, index, count), torch.tensor([1.0, 0.75, 0.8]))
    # A padded slot past num_selected never counts, whatever it holds.
    index[2, 2] = 1
    torch.testing.assert_close(lr.block_recall(mass, index, count)[2], torch.tensor(0.8))


def _qkv(tokens, hq=4, hkv=2, d=64):
    g = torch.Generator().manual_seed(tokens)
    return [
        torch.randn(1, h, tokens, d, generator=g) * s
        for h, s in ((hq, 3.0), (hkv, 3.0), (hkv, 1.0))
    ]


@pytest.mark.parametrize("tokens", [700, 1000])
def test_recorded_recall_matches_the_reference_mass_of_the_kept_blocks(lr, tokens):
    import sketchwalk as sw
    from sketchwalk import attention

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    q, k, v = _qkv(tokens)
    recorder = lr.LayerRecall()
    with recorder.watch():
        sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg))
    assert attention._prefill.__name__ == "_prefill"  # unwrapped after the block
    got = recorder.table()[2]
    # The reference: float64 softmax probabilities summed per (query block, key block) over the
    # query heads, against the same selection (a fresh state selects the same blocks).
    index, count, _, _ = attention.select_prefill_blocks(q, k, 2, sw.SketchWalkState(cfg))
    mass = R.causal_block_mass(q, k)
    nb = mass.shape[0]
    want = []
    for i in range(nb):
        n = int(count[0, 0, i])
        if n < i + 1:
            want.append(float(mass[i, index[0, 0, i, :n].long()].sum()))
    assert len(want) > nb // 2  # the knobs thin most rows: the comparison can fail
    assert math.isclose(got["recall"], sum(want) / len(want), rel_tol=1e-4)
    assert 0.0 < got["recall"] < 1.0 and 0.0 < got["entropy"] < 1.0
    assert math.isclose(got["density"], float(count.sum()) / (nb * (nb + 1) / 2), rel_tol=1e-6)
