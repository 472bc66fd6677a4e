"""sketchwalk_attention_varlen: a ragged step through a StepPlan equals each sequence run alone
through sketchwalk_attention (the selection is the same per sequence; the attention of the step
is one varlen call), in prefill, in decode and with both phases in one step."""

import pytest
import torch

from conftest import device_params
from utils import assert_raises_naming

LENS = [300, 65, 1000]
HQ, HKV, D = 4, 2, 64


def packed(tensors):
    """[1, H, T, D] tensors -> packed [sum T, H, D]."""
    return torch.cat([t[0].transpose(0, 1) for t in tensors])


def assert_same_states(alone, ragged, layer_idx):
    """Each ragged sequence's state holds what its lone run's does: density and the live rows
    of its 4-bit keys (a pooled state's capacity is the pool's)."""
    for a, r in zip(alone, ragged):
        assert a.last_density == r.last_density
        la, lr = a.layers[layer_idx], r.layers[layer_idx]
        n = la.num_keys
        assert lr.num_keys == n
        assert torch.equal(la.codes[:, :, :n], lr.codes[:, :, :n])
        assert torch.equal(la.scales[:, :, :n], lr.scales[:, :, :n])
        assert lr.seq_lens.tolist() == [n]  # the lengths a pooled row shares stay its own


def qkv(lens):
    return (
        [torch.randn(1, HQ, t, D) for t in lens],
        [torch.randn(1, HKV, t, D) for t in lens],
        [torch.randn(1, HKV, t, D) for t in lens],
    )


def ragged_step(sw, cfg, qkvs, members, spans, layer_idx, states):
    """(sketchwalk_attention_varlen's output, its plan) for one step of sequences `members` of
    qkvs = (qs, ks, vs): sequence members[i]'s queries are its tokens spans[i] = (start, end),
    its keys and values its first `end` tokens; states[i] is its state."""
    qs, ks, vs = qkvs
    plan = sw.StepPlan(cfg, [e - s for s, e in spans], [e for _, e in spans], qs[0].device)
    out = sw.sketchwalk_attention_varlen(
        packed([qs[b][:, :, s:e] for b, (s, e) in zip(members, spans)]),
        packed([ks[b][:, :, :e] for b, (_, e) in zip(members, spans)]),
        packed([vs[b][:, :, :e] for b, (_, e) in zip(members, spans)]),
        layer_idx,
        states,
        plan,
    )
    return out, plan


@pytest.mark.parametrize("layer_idx", [0, 2])
def test_ragged_prefill_then_decode_equals_each_sequence_alone(sw, layer_idx):
    cfg = sw.SketchWalkConfig()
    qs, ks, vs = qkv([t + 1 for t in LENS])  # the last token of each: its decode step
    alone = [sw.SketchWalkState(cfg) for _ in LENS]
    ragged = [sw.SketchWalkState(cfg) for _ in LENS]
    want = [
        sw.sketchwalk_attention(q[:, :, :t], k[:, :, :t], v[:, :, :t], layer_idx, s)
        for q, k, v, t, s in zip(qs, ks, vs, LENS, alone)
    ]
    plan = sw.StepPlan(cfg, LENS, LENS)
    assert plan.phases() == ("prefill",) * 3
    got = sw.sketchwalk_attention_varlen(
        packed([q[:, :, :t] for q, t in zip(qs, LENS)]),
        packed([k[:, :, :t] for k, t in zip(ks, LENS)]),
        packed([v[:, :, :t] for v, t in zip(vs, LENS)]),
        layer_idx,
        ragged,
        plan,
    )
    want_packed = packed(want)
    if layer_idx < cfg.dense_layers:  # SDPA alone, the varlen kernel with every block ragged
        torch.testing.assert_close(got, want_packed, atol=1e-5, rtol=1e-5)
    else:
        assert torch.equal(got, want_packed)
        for a, r in zip(alone, ragged):
            assert a.last_density == r.last_density
    # One decode step of every sequence, and then a step mixing a prefill with two decodes.
    step_want = [
        sw.sketchwalk_attention(q[:, :, t:], k, v, layer_idx, s)
        for q, k, v, t, s in zip(qs, ks, vs, LENS, alone)
    ]
    plan = sw.StepPlan(cfg, [1, 1, 1], [t + 1 for t in LENS])
    assert plan.phases() == ("decode",) * 3
    got = sw.sketchwalk_attention_varlen(
        packed([q[:, :, t:] for q, t in zip(qs, LENS)]),
        packed(ks),
        packed(vs),
        layer_idx,
        ragged,
        plan,
    )
    # Dense layers: the varlen kernel against SDPA; sparse layers: the same selection, the varlen
    # kernel's rows against the decode kernel's (the same float32 operations on the CPU).
    tol = dict(atol=1e-5, rtol=1e-5) if layer_idx < cfg.dense_layers else dict(atol=0, rtol=0)
    torch.testing.assert_close(got, packed(step_want), **tol)
    if layer_idx >= cfg.dense_layers:
        assert_same_states(alone, ragged, layer_idx)
    fresh = sw.SketchWalkState(cfg)
    q_new, k_new, v_new = qkv([129])
    want_new = sw.sketchwalk_attention(
        q_new[0], k_new[0], v_new[0], layer_idx, sw.SketchWalkState(cfg)
    )
    plan = sw.StepPlan(cfg, [1, 129, 1], [LENS[0] + 1, 129, LENS[2] + 1])
    assert plan.phases() == ("decode", "prefill", "decode")
    mixed_q = packed([qs[0][:, :, -1:], q_new[0], qs[2][:, :, -1:]])
    mixed_k = packed([ks[0], k_new[0], ks[2]])
    mixed_v = packed([vs[0], v_new[0], vs[2]])
    states = [sw.SketchWalkState(cfg), fresh, sw.SketchWalkState(cfg)]
    # Sequences 0 and 2 continue the decode states of a prefill of their own first LENS keys.
    for b in (0, 2):
        t = LENS[b]
        sw.sketchwalk_attention(
            qs[b][:, :, :t], ks[b][:, :, :t], vs[b][:, :, :t], layer_idx, states[b]
        )
    got = sw.sketchwalk_attention_varlen(mixed_q, mixed_k, mixed_v, layer_idx, states, plan)
    torch.testing.assert_close(got[1:130], want_new[0].transpose(0, 1), **tol)
    torch.testing.assert_close(got[0], step_want[0][0, :, 0], **tol)
    torch.testing.assert_close(got[130], step_want[2][0, :, 0], **tol)


@pytest.mark.parametrize("layer_idx", [0, 2])
def test_ragged_chunks_equal_each_sequence_alone(sw, layer_idx):
    """A step of two chunks (over caches their states hold) and a prefill, in one call."""
    cfg = sw.SketchWalkConfig()
    qs, ks, vs = qkv([500, 130, 300])
    cut = [200, 64]  # sequences 0 and 1: a first prefill of `cut` tokens, then the rest
    alone = [sw.SketchWalkState(cfg) for _ in range(3)]
    ragged = [sw.SketchWalkState(cfg) for _ in range(3)]
    for b, c in enumerate(cut):
        for st in (alone[b], ragged[b]):
            sw.sketchwalk_attention(
                qs[b][:, :, :c], ks[b][:, :, :c], vs[b][:, :, :c], layer_idx, st
            )
    want = [
        sw.sketchwalk_attention(qs[b][:, :, cut[b] :], ks[b], vs[b], layer_idx, alone[b])
        for b in range(2)
    ]
    want.append(sw.sketchwalk_attention(qs[2], ks[2], vs[2], layer_idx, alone[2]))
    plan = sw.StepPlan(cfg, [500 - 200, 130 - 64, 300], [500, 130, 300])
    assert plan.phases() == ("chunk", "chunk", "prefill")
    got = sw.sketchwalk_attention_varlen(
        packed([qs[0][:, :, 200:], qs[1][:, :, 64:], qs[2]]),
        packed(ks),
        packed(vs),
        layer_idx,
        ragged,
        plan,
    )
    tol = dict(atol=1e-5, rtol=1e-5) if layer_idx < cfg.dense_layers else dict(atol=0, rtol=0)
    torch.testing.assert_close(got, packed(want), **tol)
    if layer_idx >= cfg.dense_layers:
        assert_same_states(alone, ragged, layer_idx)


def test_ragged_layer_refusals(sw):
    cfg = sw.SketchWalkConfig()
    qs, ks, vs = qkv([100, 200])
    states = [sw.SketchWalkState(cfg) for _ in range(2)]
    plan = sw.StepPlan(cfg, [100, 200], [100, 200])
    f = sw.sketchwalk_attention_varlen
    assert_raises_naming(lambda: f(packed(qs)[:-1], packed(ks), packed(vs), 2, states, plan), "q")
    assert_raises_naming(
        lambda: f(packed(qs), packed(ks), packed(vs), 2, states[:1], plan), "states"
    )
    assert_raises_naming(
        lambda: f(packed(qs), packed(ks), packed(vs), 2, states, None), "plan", exc=TypeError
    )
    elsewhere = sw.StepPlan(cfg, [100, 200], [100, 200], "meta")  # not the tensors' device
    assert_raises_naming(
        lambda: f(packed(qs), packed(ks), packed(vs), 2, states, elsewhere), "plan"
    )
    with pytest.raises(ValueError, match="queries"):
        sw.StepPlan(cfg, [101], [100])
    with pytest.raises(ValueError, match="same sequences"):
        sw.StepPlan(cfg, [1, 2], [3])


def test_plan_device_lengths(sw):
    plan = sw.StepPlan(sw.SketchWalkConfig(), [3, 1, 70], [3, 5, 200])
    assert plan.cu_seqlens_q.tolist() == [0, 3, 4, 74]
    assert plan.cu_seqlens_k.tolist() == [0, 3, 8, 208]
    assert plan.seq_lens_k.tolist() == [3, 5, 200]
    assert plan.cu_seqlens_q.dtype == torch.int32
    assert plan.phases() == ("prefill", "decode", "chunk")
    index, count = plan.dense_index()
    assert index.shape == (3, 1, 2, 4)
    # Row i keeps every causal block: causal_limit(i) + 1 (sequence 2's 70 queries sit at keys
    # 130-199: blocks 0-3 for both rows); rows past a sequence's queries 0.
    assert count[:, 0].tolist() == [[1, 0], [1, 0], [4, 4]]
    with pytest.raises(ValueError, match="no new token"):
        sw.StepPlan(sw.SketchWalkConfig(), [0], [5])


def test_ragged_walk_carried_between_layers_equals_each_sequence_alone(sw):
    """Consecutive sparse layers of one step: the batched selection carries the walk (padded to
    the longest sequence) from layer to layer as each sequence alone carries its own."""
    cfg = sw.SketchWalkConfig()
    first = cfg.dense_layers
    alone = [sw.SketchWalkState(cfg) for _ in LENS]
    ragged = [sw.SketchWalkState(cfg) for _ in LENS]
    plan = sw.StepPlan(cfg, LENS, LENS)
    for layer_idx in (first, first + 1, first + 2):
        qs, ks, vs = qkv(LENS)
        want = [
            sw.sketchwalk_attention(q, k, v, layer_idx, s) for q, k, v, s in zip(qs, ks, vs, alone)
        ]
        got = sw.sketchwalk_attention_varlen(
            packed(qs), packed(ks), packed(vs), layer_idx, ragged, plan
        )
        torch.testing.assert_close(got, packed(want), atol=1e-6, rtol=1e-5)
        for a, r in zip(alone, ragged):
            assert a.last_density == r.last_density, f"layer {layer_idx}"
    assert plan.carried_walk is not None and plan.carried_walk[0] == first + 2


@pytest.mark.parametrize("selection", ["layer", "kv_group"])
def test_ragged_decode_rows_beside_a_chunk_and_a_prefill_equal_each_sequence_alone(
    sw, selection, monkeypatch
):
    """Two decode sequences (2001 and 65 keys: past and at a block edge), a chunk and a prefill
    in one step: the decode rows join the step's varlen call (their index per KV group beside
    the prefill rows, repeated over the groups under the per-layer selection) and every sequence
    answers, and keeps its 4-bit keys and density, exactly as alone."""
    cfg = sw.SketchWalkConfig(prefill_selection=selection)
    layer_idx = cfg.dense_layers  # the first sparse layer
    lens = [2001, 250, 70, 65]
    cached = [2000, 100, 0, 64]  # keys each sequence's state saw before the step
    qs, ks, vs = qkv(lens)
    alone = [sw.SketchWalkState(cfg) for _ in lens]
    ragged = [sw.SketchWalkState(cfg) for _ in lens]
    for b, c in enumerate(cached):
        if c:
            for st in (alone[b], ragged[b]):
                sw.sketchwalk_attention(
                    qs[b][:, :, :c], ks[b][:, :, :c], vs[b][:, :, :c], layer_idx, st
                )
    want = [
        sw.sketchwalk_attention(qs[b][:, :, c:], ks[b], vs[b], layer_idx, alone[b])
        for b, c in enumerate(cached)
    ]
    plan = sw.StepPlan(cfg, [t - c for t, c in zip(lens, cached)], lens)
    assert plan.phases() == ("decode", "chunk", "prefill", "decode")
    from sketchwalk import ragged as ragged_module

    batched, inner = [], ragged_module._with_keys4_decode_rows
    monkeypatch.setattr(
        ragged_module,
        "_with_keys4_decode_rows",
        lambda *a: batched.append(1) or inner(*a),
    )
    monkeypatch.setattr(ragged_module, "sketchwalk_attention", None)  # no per-sequence decode
    got = sw.sketchwalk_attention_varlen(
        packed([q[:, :, c:] for q, c in zip(qs, cached)]),
        packed(ks),
        packed(vs),
        layer_idx,
        ragged,
        plan,
    )
    assert batched == [1]  # the decode rows were selected together, in the step's call
    assert torch.equal(got, packed(want))
    assert_same_states(alone, ragged, layer_idx)


def test_pooled_decode_steps_equal_each_sequence_alone(sw, monkeypatch):
    """A serving loop's states share a Keys4DecodePool: over consecutive decode steps of two
    sparse layers, with a sequence joining (after its prefill), one leaving, the same number of
    sequences with another member or in another order, and a sequence outgrowing the pool's
    capacity, every step answers and keeps its 4-bit keys and lengths exactly as each sequence
    alone; the pool is rebuilt only when the decode set changes or outgrows it, and the per-step
    stacking is never used."""
    from sketchwalk import ragged as ragged_module
    from sketchwalk.decode_pool import Keys4DecodePool
    from sketchwalk.state import keys4_capacity

    cfg = sw.SketchWalkConfig()
    layers = (cfg.dense_layers, cfg.dense_layers + 1)
    pool = Keys4DecodePool()
    monkeypatch.setattr(ragged_module, "_stack_keys4", None)  # the pool's path only
    monkeypatch.setattr(ragged_module, "sketchwalk_attention", None)  # no per-sequence decode
    # Sequence 0 outgrows its pool capacity (keys4_capacity(300) = 576 rows) in the last loop.
    prompts = [300, 200, 260]
    grow = keys4_capacity(prompts[0]) - prompts[0] + 1
    total = [t + grow + 12 for t in prompts]  # room for every decode step below
    qkvs = {layer: qkv(total) for layer in layers}  # each layer its own q, k, v
    alone = [sw.SketchWalkState(cfg) for _ in total]
    pooled = [sw.SketchWalkState(cfg) for _ in total]
    for st in pooled:
        st.decode_pool = pool
    done = [0, 0, 0]  # keys each sequence's states hold

    def run(members, phases):
        """One ragged step of `members` (prefill or one decode token each) beside each alone,
        through both layers."""
        spans = []
        for b, phase in zip(members, phases):
            end = prompts[b] if phase == "prefill" else done[b] + 1
            spans.append((0 if phase == "prefill" else done[b], end))
            done[b] = end
        for layer in layers:
            qs, ks, vs = qkvs[layer]
            want = [
                sw.sketchwalk_attention(
                    qs[b][:, :, s:e], ks[b][:, :, :e], vs[b][:, :, :e], layer, alone[b]
                )
                for b, (s, e) in zip(members, spans)
            ]
            states = [pooled[b] for b in members]
            got, plan = ragged_step(sw, cfg, qkvs[layer], members, spans, layer, states)
            assert plan.phases() == tuple(phases)
            assert torch.equal(got, packed(want))
            assert_same_states([alone[b] for b in members], [pooled[b] for b in members], layer)

    run([0, 1], ["prefill", "prefill"])
    run([0, 1], ["decode", "decode"])
    assert pool.rebuilds == 2  # one per layer
    run([0, 1], ["decode", "decode"])  # the same set: no rebuild, the stacked keys reused
    assert pool.rebuilds == 2
    run([0, 1, 2], ["decode", "decode", "prefill"])  # a prefill beside: the decode set holds
    assert pool.rebuilds == 2
    run([0, 1, 2], ["decode"] * 3)  # sequence 2 joins
    assert pool.rebuilds == 4
    run([0, 2], ["decode", "decode"])  # sequence 1 leaves (without release(): still right)
    assert pool.rebuilds == 6
    run([2, 0], ["decode", "decode"])  # the same two in another order
    assert pool.rebuilds == 8
    run([1, 0], ["decode", "decode"])  # as many, another member
    assert pool.rebuilds == 10
    pool.release()  # a request left (the serving loop freed its state): buffers let go
    assert pool._layers == {}
    run([0, 2], ["decode", "decode"])
    assert pool.rebuilds == 12
    for _ in range(grow):  # sequence 0 outgrows the pool's rows once
        run([0, 2], ["decode", "decode"])
    assert pool.rebuilds == 14
    # Sequence 1, left behind, still holds its own rows.
    for layer in layers:
        assert_same_states([alone[1]], [pooled[1]], layer)


def test_a_pool_that_would_waste_memory_is_not_made(sw):
    """One long sequence among short ones: pooled rows of the longest's capacity would hold more
    than MAX_WASTE times the members' own, so the step stacks per step, and the members that
    were pooled move back to buffers of their own size; the answers stay each sequence's own."""
    from sketchwalk.decode_pool import MAX_WASTE, Keys4DecodePool
    from sketchwalk.state import keys4_capacity

    cfg = sw.SketchWalkConfig()
    layer_idx = cfg.dense_layers
    pool = Keys4DecodePool()
    lens = [3000, 70, 70, 70]
    assert 4 * keys4_capacity(3000) > MAX_WASTE * sum(keys4_capacity(n) for n in lens)
    qs, ks, vs = qkv([t + 2 for t in lens])
    alone = [sw.SketchWalkState(cfg) for _ in lens]
    pooled = [sw.SketchWalkState(cfg) for _ in lens]
    for st in pooled:
        st.decode_pool = pool
    for b, t in enumerate(lens):
        for st in (alone[b], pooled[b]):
            sw.sketchwalk_attention(
                qs[b][:, :, :t], ks[b][:, :, :t], vs[b][:, :, :t], layer_idx, st
            )

    done = list(lens)  # keys each sequence's states hold

    def step(members):
        want = [
            sw.sketchwalk_attention(
                qs[b][:, :, done[b] : done[b] + 1],
                ks[b][:, :, : done[b] + 1],
                vs[b][:, :, : done[b] + 1],
                layer_idx,
                alone[b],
            )
            for b in members
        ]
        spans = [(done[b], done[b] + 1) for b in members]
        states = [pooled[b] for b in members]
        got, _ = ragged_step(sw, cfg, (qs, ks, vs), members, spans, layer_idx, states)
        for b in members:
            done[b] += 1
        assert torch.equal(got, packed(want))
        assert_same_states([alone[b] for b in members], [pooled[b] for b in members], layer_idx)

    step([1, 2, 3])  # the short ones alone: pooled
    assert pool.rebuilds == 1 and pooled[1].layers[layer_idx].in_pool
    step([0, 1, 2, 3])  # the long one joins: no pool
    assert pool.rebuilds == 1
    for b in range(4):
        layer = pooled[b].layers[layer_idx]
        assert not layer.in_pool and layer.capacity <= keys4_capacity(lens[b] + 2)


@pytest.mark.parametrize("device", device_params())
def test_pooled_decode_steps_equal_the_stacked_steps(sw, device):
    """On each device (CUDA in bf16), the pooled path (one batched quantize_keys4_ with
    per-sequence lengths, the scorer on the persistent buffer) answers and keeps the 4-bit keys
    of the per-step stacking exactly, over steps where the decode set changes and the pool
    grows."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from sketchwalk.decode_pool import Keys4DecodePool
    from sketchwalk.state import keys4_capacity

    cfg = sw.SketchWalkConfig()
    layer_idx = cfg.dense_layers
    prompts = [300, 130, 64]
    grow = keys4_capacity(prompts[0]) - prompts[0] + 1
    total = [t + grow + 8 for t in prompts]  # room for every decode step below
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    qs, ks, vs = ([t.to(device, dtype) for t in ts] for ts in qkv(total))
    schedule = [[0, 1]] * 3 + [[0, 1, 2]] * 2 + [[0, 2]] * (grow + 1)

    def run(pool):
        states = [sw.SketchWalkState(cfg) for _ in total]
        for st in states:
            st.decode_pool = pool
        done = list(prompts)
        outs = []
        for b in range(3):  # each sequence's prefill
            sw.sketchwalk_attention(
                qs[b][:, :, : prompts[b]],
                ks[b][:, :, : prompts[b]],
                vs[b][:, :, : prompts[b]],
                layer_idx,
                states[b],
            )
        previous = schedule[0]
        for members in schedule:
            if pool is not None and set(previous) - set(members):
                pool.release()  # a sequence left (the serving loop freed its state)
            previous = members
            spans = [(done[b], done[b] + 1) for b in members]
            step = [states[b] for b in members]
            outs.append(ragged_step(sw, cfg, (qs, ks, vs), members, spans, layer_idx, step)[0])
            for b in members:
                done[b] += 1
        return outs, states

    pool = Keys4DecodePool()
    pooled, pooled_states = run(pool)
    stacked, stacked_states = run(None)
    assert pool.rebuilds == 4  # made, joined, left, grew
    for a, b in zip(pooled, stacked):
        assert torch.equal(a, b)
    assert_same_states(stacked_states, pooled_states, layer_idx)


@pytest.mark.parametrize("selection", ["layer", "kv_group"])
def test_ragged_sampled_rows_scorer_equals_each_sequence_alone(sw, selection):
    # prefill_scorer="sampled_rows" ranks each sequence of a ragged step on its own rows (strided
    # views of the packed tokens): a prefill step, then a chunk, as each sequence alone.
    cfg = sw.SketchWalkConfig(
        dense_layers=0,
        prefill_scorer="sampled_rows",
        prefill_score_rows=2,
        prefill_selection=selection,
    )
    qkvs = qkv(LENS)
    alone = [sw.SketchWalkState(cfg) for _ in LENS]
    ragged = [sw.SketchWalkState(cfg) for _ in LENS]
    for step, spans in enumerate(([(0, t - 60) for t in LENS], [(t - 60, t) for t in LENS])):
        got, _ = ragged_step(sw, cfg, qkvs, range(len(LENS)), spans, 0, ragged)
        want = [
            sw.sketchwalk_attention(q[:, :, s:e], k[:, :, :e], v[:, :, :e], 0, st)
            for q, k, v, (s, e), st in zip(*qkvs, spans, alone)
        ]
        assert torch.equal(got, packed(want))
        assert [a.last_density for a in alone] == [r.last_density for r in ragged]
        if step == 0:
            assert alone[2].last_density[0] < 0.95  # the long prefill is sparse
