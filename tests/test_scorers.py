"""Registered block scorers (sketchwalk.scorers): a scorer named in the config replaces the
ranking and nothing else. A prefill scorer returning the package's own block scores equals the
built-in sketch at degree 0; a decode scorer's step equals select_blocks on its scores with the
decode knobs, then sparse_decode; the config refuses unknown names and combinations it cannot
serve; through transformers, generate runs with both."""

import dataclasses

import pytest
import torch

from utils import assert_raises_naming


def sketch_scores(sw):
    def fn(q, k, layer_idx, state):
        signs, coords = state.sketch_transform(q.shape[-1], q.device)
        c = sw.ops.logit_scale(state.config.sketch_dim, q.shape[-1])
        return sw.ops.score_blocks(
            sw.ops.hadamard_sketch(q, signs, coords, 64),
            sw.ops.hadamard_sketch(k, signs, coords, 64),
            c,
        )

    return fn


def recency_scores(q, k, layer_idx, state):
    """Later blocks first (a toy decode scorer)."""
    n = -(-k.shape[2] // 64)
    return (
        torch.arange(n, dtype=torch.float32, device=q.device).expand(q.shape[0], 1, n).contiguous()
    )


def test_registered_prefill_scorer_equals_builtin_sketch(sw):
    sw.scorers.register_prefill_scorer("test_sketch", sketch_scores(sw))
    builtin = sw.SketchWalkConfig(dense_layers=0, degree=0)
    plugged = dataclasses.replace(builtin, prefill_scorer="test_sketch")
    q, k, v = torch.randn(1, 4, 700, 64), torch.randn(1, 2, 700, 64), torch.randn(1, 2, 700, 64)
    a, b = sw.SketchWalkState(builtin), sw.SketchWalkState(plugged)
    assert torch.equal(
        sw.sketchwalk_attention(q, k, v, 0, a), sw.sketchwalk_attention(q, k, v, 0, b)
    )
    assert a.last_density == b.last_density
    # A chunk and a decode step go on from the plugged prefill (keys4 decode).
    q2, k2, v2 = torch.randn(1, 4, 50, 64), torch.randn(1, 2, 750, 64), torch.randn(1, 2, 750, 64)
    k2[:, :, :700], v2[:, :, :700] = k, v
    assert torch.equal(
        sw.sketchwalk_attention(q2, k2, v2, 0, a), sw.sketchwalk_attention(q2, k2, v2, 0, b)
    )


@pytest.mark.parametrize("rows,selection", [(4, "layer"), (1, "layer"), (2, "kv_group")])
def test_builtin_sampled_rows_scorer_equals_its_reference(sw, rows, selection):
    # prefill_scorer="sampled_rows" (docs/spec.md section 11) = the float64 reference's scores,
    # averaged over the KV groups ("layer") or one selection per group ("kv_group"), under the
    # same selection rule (no walk), prefill and chunk.
    import reference as R

    def reference_scores(q, k, layer_idx, state):
        scores = R.score_blocks_sampled_rows(q, k, rows).float()
        return scores.flatten(0, 1) if selection == "kv_group" else scores.mean(dim=1)

    sw.scorers.register_prefill_scorer("test_sampled_rows_ref", reference_scores)
    builtin = sw.SketchWalkConfig(
        dense_layers=0,
        prefill_scorer="sampled_rows",
        prefill_score_rows=rows,
        prefill_selection=selection,
    )
    plugged = dataclasses.replace(builtin, prefill_scorer="test_sampled_rows_ref")
    q, k, v = torch.randn(1, 6, 700, 64), torch.randn(1, 2, 700, 64), torch.randn(1, 2, 700, 64)
    a, b = sw.SketchWalkState(builtin), sw.SketchWalkState(plugged)
    assert torch.equal(
        sw.sketchwalk_attention(q, k, v, 0, a), sw.sketchwalk_attention(q, k, v, 0, b)
    )
    assert a.last_density == b.last_density and a.last_density[0] < 0.95
    q2, k2, v2 = torch.randn(1, 6, 150, 64), torch.randn(1, 2, 850, 64), torch.randn(1, 2, 850, 64)
    k2[:, :, :700], v2[:, :, :700] = k, v
    assert torch.equal(
        sw.sketchwalk_attention(q2, k2, v2, 0, a), sw.sketchwalk_attention(q2, k2, v2, 0, b)
    )
    with pytest.raises(ValueError, match="prefill_score_rows"):
        sw.SketchWalkConfig(prefill_scorer="sampled_rows", prefill_score_rows=0)
    with pytest.raises(ValueError, match="built in"):
        sw.scorers.register_prefill_scorer("sampled_rows", reference_scores)


def test_registered_decode_scorer(sw):
    sw.scorers.register_decode_scorer("test_recency", recency_scores)
    cfg = sw.SketchWalkConfig(dense_layers=0, decode_scorer="test_recency")
    q, k, v = torch.randn(1, 4, 1001, 64), torch.randn(1, 2, 1001, 64), torch.randn(1, 2, 1001, 64)
    state = sw.SketchWalkState(cfg)
    sw.sketchwalk_attention(q[:, :, :1000], k[:, :, :1000], v[:, :, :1000], 0, state)
    out = sw.sketchwalk_attention(q[:, :, 1000:], k, v, 0, state)
    args = sw.plan.SelectionArgs.decode(cfg, 1001)
    scores = recency_scores(q[:, :, 1000:], k, 0, state)
    index, count = sw.ops.select_blocks(scores, *args.select_blocks_args(1, 1001, 64))
    want, _ = sw.ops.sparse_decode(q[:, :, 1000:], k, v, index, count)
    assert torch.equal(out, want)
    assert 0 < state.last_density[0] < 1


def group_scores(q, k, layer_idx, state):
    """A per-KV-group toy decode scorer: each group ranks blocks by its own key norms."""
    n = -(-k.shape[2] // 64)
    norms = torch.nn.functional.pad(k.float().norm(dim=-1), (0, 64 * n - k.shape[2]))
    return norms.view(k.shape[0], k.shape[1], n, 64).sum(-1).contiguous()


@pytest.mark.parametrize("num_keys", [1001, 130, 65])
def test_registered_decode_scorer_per_kv_group(sw, num_keys):
    import reference as R

    sw.scorers.register_decode_scorer("test_groups", group_scores, per_kv_group=True)
    cfg = sw.SketchWalkConfig(dense_layers=0, decode_scorer="test_groups", decode_kblocks_frac=0.2)
    q, k, v = (torch.randn(2, h, num_keys, 64) for h in (4, 2, 2))
    state = sw.SketchWalkState(cfg)
    t = num_keys - 1
    sw.sketchwalk_attention(q[:, :, :t], k[:, :, :t], v[:, :, :t], 0, state)
    out = sw.sketchwalk_attention(q[:, :, t:], k, v, 0, state)
    # Reference: keys4's rule per group on the scorer's masses, float64 masked attention.
    keep, _, _ = R.select_blocks_keys4(
        group_scores(q[:, :, t:], k, 0, state), torch.full((2,), num_keys), *cfg.decode_fracs()
    )
    mask = keep.repeat_interleave(64, dim=-1)[..., :num_keys].unsqueeze(2)  # [B, Hkv, 1, Tk]
    want, _ = R.masked_attention(q[:, :, t:], k, v, mask)
    torch.testing.assert_close(out.double(), want, atol=1e-5, rtol=1e-5)
    # The two groups keep different blocks here: one selection per group, not per layer.
    if num_keys > 1000:
        assert not torch.equal(keep[:, 0], keep[:, 1])
    bad = lambda q, k, i, s: group_scores(q, k, i, s)[:, :1, :-1]  # noqa: E731
    sw.scorers.register_decode_scorer("test_groups_bad", bad, per_kv_group=True)
    state = sw.SketchWalkState(dataclasses.replace(cfg, decode_scorer="test_groups_bad"))
    sw.sketchwalk_attention(q[:, :, :t], k[:, :, :t], v[:, :, :t], 0, state)
    assert_raises_naming(lambda: sw.sketchwalk_attention(q[:, :, t:], k, v, 0, state), "float32")


def test_scorer_config_refusals(sw):
    assert_raises_naming(lambda: sw.SketchWalkConfig(prefill_scorer="nope"), "prefill_scorer")
    assert_raises_naming(lambda: sw.SketchWalkConfig(decode_scorer="nope"), "decode_scorer")
    sw.scorers.register_prefill_scorer("test_sketch", sketch_scores(sw))
    # Under "kv_group" a scorer returns one row per (sequence, KV group): the layer-wide shape is
    # refused, naming the one expected.
    cfg = sw.SketchWalkConfig(
        dense_layers=0, prefill_scorer="test_sketch", prefill_selection="kv_group"
    )
    q = torch.randn(1, 4, 100, 64)
    with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
        sw.sketchwalk_attention(q, q[:, :2], q[:, :2], 0, sw.SketchWalkState(cfg))
    with pytest.raises(ValueError, match="walk"):
        sw.SketchWalkConfig(prefill_scorer="test_sketch", decode_scorer="walk")
    with pytest.raises(ValueError, match="built in"):
        sw.scorers.register_decode_scorer("keys4", recency_scores)
    sw.scorers.register_prefill_scorer("test_bad", lambda q, k, i, s: torch.zeros(3))
    cfg = sw.SketchWalkConfig(dense_layers=0, prefill_scorer="test_bad")
    q = torch.randn(1, 4, 100, 64)
    with pytest.raises(ValueError, match="test_bad"):
        sw.sketchwalk_attention(q, q[:, :2], q[:, :2], 0, sw.SketchWalkState(cfg))


def test_registered_scorers_through_transformers(sw):
    hf_test = pytest.importorskip("test_hf_integration")
    sw.scorers.register_prefill_scorer("test_sketch", sketch_scores(sw))
    sw.scorers.register_decode_scorer("test_recency", recency_scores)
    _, model = hf_test.make_pair("llama")
    hf_test.hf.configure(
        model, hf_test.sparse_config(prefill_scorer="test_sketch", decode_scorer="test_recency")
    )
    ids = hf_test.prompts(2, hf_test.PROMPT_LEN)
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, hf_test.PROMPT_LEN + 4)
    assert hf_test.hf.last_density(model, "decode")
