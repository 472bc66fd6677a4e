"""decode_scorer="socket" (python/sketchwalk/soft_lsh.py, SOCKET's soft-collision scorer) against
its float64 reference (tests/reference.py): the block scores of fresh random inputs at odd sizes,
a decode step's output (keys4's per-group rule on those scores, then attention), the codes kept
between steps equal to hashing every key anew, and its bad input refused."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import assert_raises_naming


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("num_keys,hq,hkv,d", [(1, 4, 2, 64), (65, 4, 4, 64), (300, 8, 2, 128)])
def test_block_scores_match_the_float64_reference(sw, device, num_keys, hq, hkv, d):
    s = sw.soft_lsh
    q = torch.randn(2, hq, 1, d, device=device)
    k = torch.randn(2, hkv, num_keys, d, device=device)
    v = torch.randn(2, hkv, num_keys, d, device=device)
    planes = s.hyperplanes(d, 0, device)
    got = s.block_scores(s.query_probs(q, planes), s.hash_keys(k, planes), v.float().norm(dim=-1))
    want = R.socket_block_scores(q, k, v, planes, s.TEMPERATURE)
    torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-4)
    # Evidence sums over tables: a block scores at most TABLES * max ||v|| per query head.
    assert got.max() <= s.TABLES * v.norm(dim=-1).max() * (hq // hkv) * (1 + 1e-5)


@pytest.mark.parametrize("device", device_params())
def test_decode_steps_attend_the_blocks_the_reference_picks(sw, device):
    cfg = sw.SketchWalkConfig(dense_layers=0, decode_scorer="socket", decode_kblocks_frac=0.2)
    t0, steps = 700, 3
    q, k, v = (torch.randn(1, h, t0 + steps, 64, device=device) for h in (4, 2, 2))
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :t0], k[:, :, :t0], v[:, :, :t0], 0, state)
    planes = sw.soft_lsh.hyperplanes(64, cfg.seed, device)
    for t in range(t0, t0 + steps):
        kk, vv = k[:, :, : t + 1], v[:, :, : t + 1]
        out = sw.sketchwalk_attention(q[:, :, t : t + 1], kk, vv, 0, state)
        scores = R.socket_block_scores(q[:, :, t : t + 1], kk, vv, planes, 0.3).float()
        keep, _, _ = R.select_blocks_keys4(scores, torch.full((1,), t + 1), *cfg.decode_fracs())
        mask = keep.repeat_interleave(64, dim=-1)[..., : t + 1].unsqueeze(2)
        want, _ = R.masked_attention(q[:, :, t : t + 1], kk, vv, mask)
        torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    codes, norms, _ = sw.soft_lsh._KEYS[state][0]  # grown one key per step, as hashed anew
    assert torch.equal(codes, sw.soft_lsh.hash_keys(k, planes))
    torch.testing.assert_close(norms, v.float().norm(dim=-1))
    assert 0 < state.last_density[0] < 1
    # A new sequence of the same length on the reset state: no code of the old one is reused.
    state.reset()
    q2, k2, v2 = (torch.randn_like(x) for x in (q, k, v))
    t = t0 + steps - 1
    sw.sketchwalk_attention(q2[:, :, :t], k2[:, :, :t], v2[:, :, :t], 0, state)
    fresh = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q2[:, :, :t], k2[:, :, :t], v2[:, :, :t], 0, fresh)
    step = (q2[:, :, t:], k2, v2, 0)
    assert torch.equal(sw.sketchwalk_attention(*step, state), sw.sketchwalk_attention(*step, fresh))


def test_needs_values_and_a_known_name(sw):
    assert "socket" in sw.scorers.decode_scorer_names()
    state = sw.SketchWalkState(sw.SketchWalkConfig(decode_scorer="socket"))
    q, k = torch.randn(1, 4, 1, 64), torch.randn(1, 2, 65, 64)
    assert_raises_naming(lambda: sw.soft_lsh.score(q, k, 0, state), "values")
