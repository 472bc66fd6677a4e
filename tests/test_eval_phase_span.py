"""eval/phase_span.py, the per-phase ablation of issue 21: the prefill query rows of a span keep
every causal key block (against the float64 reference), the others the package's selection; the
three equal-area spans cost the same causal area."""

import math

import pytest
import torch

import reference as R
from conftest import device_params


@pytest.fixture
def ps():
    from eval import phase_span

    return phase_span


def test_equal_area_spans_tile_the_prompt_at_equal_causal_area(ps):
    spans = list(ps.EQUAL_AREA_SPANS.values())
    assert spans[0][0] == 0.0 and spans[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for lo, hi in spans:
        assert math.isclose(hi**2 - lo**2, 1 / 3)


def test_span_blocks_cover_every_block_once(ps):
    for n in (1, 2, 3, 63, 64, 65, 130):
        got = [i for lo, hi in ps.EQUAL_AREA_SPANS.values() for i in ps.span_blocks(n, lo, hi)]
        assert got == list(range(n)), n
    assert list(ps.span_blocks(10, 0.5, 1.0)) == [5, 6, 7, 8, 9]
    assert list(ps.span_blocks(10, 0.25, 0.5)) == [3, 4]
    for bad in ((-0.1, 0.5), (0.6, 0.5), (0.0, 1.1)):
        with pytest.raises(ValueError, match="span"):
            ps.span_blocks(10, *bad)


def test_densify_rows_keeps_every_causal_block_of_the_span_only(ps):
    n = 5
    index = torch.full((2, 1, n, n), -1, dtype=torch.int32)
    index[..., 0] = 0  # every row keeps block 0 only
    count = torch.ones(2, 1, n, dtype=torch.int32)
    got_index, got_count = ps.densify_rows(index, count, range(3, 5))
    assert torch.equal(got_index[..., :3, :], index[..., :3, :])  # untouched rows
    assert got_count[0, 0].tolist() == [1, 1, 1, 4, 5]
    assert got_index[1, 0, 3].tolist() == [0, 1, 2, 3, -1]
    assert got_index[1, 0, 4].tolist() == [0, 1, 2, 3, 4]
    assert index[0, 0, 4].tolist() == [0, -1, -1, -1, -1]  # the input is not written


def _qkv(tokens, device, hq=4, hkv=2, d=64):
    g = torch.Generator().manual_seed(tokens)
    return [
        (torch.randn(1, h, tokens, d, generator=g) * s).to(device)
        for h, s in ((hq, 3.0), (hkv, 3.0), (hkv, 1.0))
    ]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [700, 1000])
def test_prefill_rows_of_the_span_are_dense_and_the_rest_unchanged(ps, device, tokens):
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    q, k, v = _qkv(tokens, device)
    want = R.dense_causal_attention(q.double(), k.double(), v.double())
    plain = sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg)).double()
    # The knobs drop blocks: the comparisons below can fail.
    assert not torch.allclose(plain, want, atol=1e-3)
    lo, hi = ps.EQUAL_AREA_SPANS["middle"]
    rows = ps.span_blocks(-(-tokens // 64), lo, hi)
    state = sw.SketchWalkState(cfg)
    with ps.dense_query_span(lo, hi):
        got = sw.sketchwalk_attention(q, k, v, 2, state).double()
    span = slice(rows.start * 64, min(rows.stop * 64, tokens))
    torch.testing.assert_close(got[:, :, span], want[:, :, span], atol=1e-4, rtol=1e-4)
    outside = torch.ones(tokens, dtype=torch.bool)
    outside[span] = False
    torch.testing.assert_close(got[:, :, outside], plain[:, :, outside], atol=1e-5, rtol=1e-5)
    # The package records the density with the dense rows; the wrap is gone after the block.
    with_span = state.last_density[2]
    sw.sketchwalk_attention(q, k, v, 2, state)
    assert with_span > state.last_density[2]


@pytest.mark.parametrize("device", device_params())
def test_the_span_applies_to_a_ragged_step_as_to_each_sequence_alone(ps, device):
    """The transformers integration selects every prefill through the batched ragged path
    (ragged.select_varlen_blocks): the span must densify each sequence's own rows there too,
    equal to the single-sequence path, and so dense against the float64 reference."""
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    lens = [1000, 700, 65]
    seqs = [_qkv(t, device) for t in lens]
    lo, hi = ps.EQUAL_AREA_SPANS["early"]
    alone_states = [sw.SketchWalkState(cfg) for _ in lens]
    states = [sw.SketchWalkState(cfg) for _ in lens]
    plain_states = [sw.SketchWalkState(cfg) for _ in lens]

    def packed(i):
        return torch.cat([s[i][0].transpose(0, 1) for s in seqs])  # [total, heads, D]

    def ragged(states_):
        out = sw.sketchwalk_attention_varlen(
            packed(0), packed(1), packed(2), 2, states_, sw.StepPlan(cfg, lens, lens, device)
        )
        return out.split(lens)

    plain = ragged(plain_states)
    with ps.dense_query_span(lo, hi):
        got = ragged(states)
        alone = [sw.sketchwalk_attention(q, k, v, 2, s) for (q, k, v), s in zip(seqs, alone_states)]
    for t, (q, k, v), g, a, p in zip(lens, seqs, got, alone, plain):
        g = g.transpose(0, 1)[None].double()  # [1, heads, t, D]
        torch.testing.assert_close(g, a.double(), atol=1e-5, rtol=1e-5)
        rows = ps.span_blocks(-(-t // 64), lo, hi)
        span = slice(rows.start * 64, min(rows.stop * 64, t))
        want = R.dense_causal_attention(q.double(), k.double(), v.double())
        torch.testing.assert_close(g[:, :, span], want[:, :, span], atol=1e-4, rtol=1e-4)
        if t > 64 * 4:  # the knobs drop blocks in the span without the wrap: the check can fail
            p = p.transpose(0, 1)[None].double()
            assert not torch.allclose(p[:, :, span], want[:, :, span], atol=1e-3)
    for t, s, p in zip(lens, states, plain_states):  # 65 tokens: both keep every block
        assert s.last_density[2] > p.last_density[2] if t > 64 * 4 else s.last_density[2] == 1.0


def test_dense_query_rows_takes_any_set_of_rows(ps):
    """The needle rows of eval/answer_nll.py: blocks 3 and 9 dense, out-of-range rows ignored,
    every other row the package's selection."""
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    tokens = 700
    q, k, v = _qkv(tokens, "cpu")
    want = R.dense_causal_attention(q.double(), k.double(), v.double())
    plain = sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg)).double()
    with ps.dense_query_rows(lambda n, seq: [3, 9, n + 4]):
        got = sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg)).double()
    rows = torch.zeros(tokens, dtype=torch.bool)
    rows[3 * 64 : 4 * 64] = rows[9 * 64 : 10 * 64] = True
    torch.testing.assert_close(got[:, :, rows], want[:, :, rows], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain[:, :, rows], want[:, :, rows], atol=1e-3)  # can fail
    torch.testing.assert_close(got[:, :, ~rows], plain[:, :, ~rows], atol=1e-5, rtol=1e-5)


def test_dense_query_rows_per_sequence_of_a_ragged_step(ps):
    """eval/decode_quality.py's default_dense_needles: row b of a batch keeps its own needle
    blocks dense, equal to that sequence alone under the same rows."""
    import sketchwalk as sw

    cfg = sw.SketchWalkConfig(window_frac=0.0, kblocks_frac=0.05, dense_last_q_blocks=0)
    lens = [700, 1000]
    own = [[2, 6], [9]]
    seqs = [_qkv(t, "cpu") for t in lens]

    def packed(i):
        return torch.cat([s[i][0].transpose(0, 1) for s in seqs])

    states = [sw.SketchWalkState(cfg) for _ in lens]
    with ps.dense_query_rows(lambda n, seq: own[seq]):
        got = sw.sketchwalk_attention_varlen(
            packed(0), packed(1), packed(2), 2, states, sw.StepPlan(cfg, lens, lens)
        ).split(lens)
    for b, ((q, k, v), g) in enumerate(zip(seqs, got)):
        with ps.dense_query_rows(lambda n, seq, b=b: own[b]):
            alone = sw.sketchwalk_attention(q, k, v, 2, sw.SketchWalkState(cfg))
        g = g.transpose(0, 1)[None]
        torch.testing.assert_close(g, alone, atol=1e-5, rtol=1e-5)
        want = R.dense_causal_attention(q.double(), k.double(), v.double())
        for i in own[b]:
            rows = slice(64 * i, 64 * (i + 1))
            torch.testing.assert_close(
                g[:, :, rows].double(), want[:, :, rows], atol=1e-4, rtol=1e-4
            )
        other = own[1 - b][0]  # the other sequence's needle row is not dense here
        rows = slice(64 * other, 64 * (other + 1))
        assert not torch.allclose(g[:, :, rows].double(), want[:, :, rows], atol=1e-3)
