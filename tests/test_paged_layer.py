"""sketchwalk_attention_paged: a step over a paged KV cache equals the same step over packed
keys (sketchwalk_attention_varlen) and each sequence run alone: prefill, then decode steps of
every sequence in one batched call, then a step mixing a chunk, a decode and a new prompt."""

import pytest
import torch

from conftest import device_params
from utils import assert_raises_naming, capture_graph, run_without_sync

HQ, HKV, D, B = 4, 2, 64, 64


class PagedCache:
    """A test engine's K/V pools: pages handed out from a shuffled free list."""

    def __init__(self, num_pages, max_pages, num_seqs, device="cpu", dtype=torch.float32):
        self.k = torch.full((num_pages, B, HKV, D), float("nan"), device=device, dtype=dtype)
        self.v = torch.full((num_pages, B, HKV, D), float("nan"), device=device, dtype=dtype)
        self.free = torch.randperm(num_pages).tolist()
        self.table = torch.zeros(num_seqs, max_pages, dtype=torch.int32, device=device)
        self.lens = [0] * num_seqs

    def append(self, b, k, v):
        """Write tokens [T, HKV, D] at the end of sequence b."""
        for t in range(k.shape[0]):
            pos = self.lens[b] + t
            if pos % B == 0:
                self.table[b, pos // B] = self.free.pop()
            page = int(self.table[b, pos // B])
            self.k[page, pos % B] = k[t]
            self.v[page, pos % B] = v[t]
        self.lens[b] += k.shape[0]


def tokens(n, heads, device="cpu", dtype=torch.float32):
    return torch.randn(n, heads, D, device=device).to(dtype)


def tolerance(device, exact):
    """CPU: bitwise where the arithmetic is the same (exact), else float32 rounding. CUDA: bf16
    (the packed prefill takes the sm90 kernel, the paged one sm80; SDPA vs the varlen kernel)."""
    if device == "cuda":
        return dict(atol=3e-2, rtol=3e-2)
    return dict(atol=0, rtol=0) if exact else dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", device_params())
def test_paged_step_equals_packed_and_alone(sw, device):
    cfg = sw.SketchWalkConfig()
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    lens = [300, 65, 700]
    num_seqs = len(lens)
    cache = PagedCache(64, 16, num_seqs, device, dt)
    keys4 = sw.PagedKeys4Cache(64, HKV, D, device)
    qs = [tokens(t + 3, HQ, device, dt) for t in lens]
    ks = [tokens(t + 3, HKV, device, dt) for t in lens]
    vs = [tokens(t + 3, HKV, device, dt) for t in lens]
    for b, t in enumerate(lens):
        cache.append(b, ks[b][:t], vs[b][:t])
    plan = sw.StepPlan(cfg, lens, lens, device, page_table=cache.table)
    states = [sw.SketchWalkState(cfg) for _ in lens]
    packed_plan = sw.StepPlan(cfg, lens, lens, device)
    layers = range(4)  # two dense layers, two sparse (the walk carried between them)
    for layer in layers:
        q = torch.cat([x[:t] for x, t in zip(qs, lens)])
        k = torch.cat([x[:t] for x, t in zip(ks, lens)])
        v = torch.cat([x[:t] for x, t in zip(vs, lens)])
        got = sw.sketchwalk_attention_paged(q, k, cache.k, cache.v, layer, plan, keys4)
        want = sw.sketchwalk_attention_varlen(q, k, v, layer, states, packed_plan)
        torch.testing.assert_close(got, want, **tolerance(device, True), msg=f"layer {layer}")
    density = sw.paged.paged_density(plan, 3)
    assert {b: float(d) for b, d in density.items()} == {
        b: s.last_density[3] for b, s in enumerate(states)
    }
    # Decode steps: every sequence in one batched call per layer, equal to each alone.
    for step in range(2):
        for b, t in enumerate(lens):
            cache.append(b, ks[b][t + step : t + step + 1], vs[b][t + step : t + step + 1])
        keys_now = [t + step + 1 for t in lens]
        plan = sw.StepPlan(cfg, [1] * num_seqs, keys_now, device, page_table=cache.table)
        for layer in layers:
            q = torch.cat([x[n - 1 : n] for x, n in zip(qs, keys_now)])
            k = torch.cat([x[n - 1 : n] for x, n in zip(ks, keys_now)])
            got = sw.sketchwalk_attention_paged(q, k, cache.k, cache.v, layer, plan, keys4)
            for b, n in enumerate(keys_now):
                alone = sw.sketchwalk_attention(
                    qs[b][n - 1 : n].transpose(0, 1)[None],
                    ks[b][:n].transpose(0, 1)[None],
                    vs[b][:n].transpose(0, 1)[None],
                    layer,
                    states[b],
                )
                tol = tolerance(device, layer >= cfg.dense_layers)
                torch.testing.assert_close(got[b], alone[0, :, 0], **tol, msg=f"{step} {layer} {b}")
        density = sw.paged.paged_density(plan, 2)
        assert set(density) == {0, 1, 2}
        for b in range(num_seqs):
            assert float(density[b]) == pytest.approx(states[b].last_density[2])


SCORERS = {
    "sketch": {},
    # The sampled-row scorer reaches the paged step through the same per-sequence selection as
    # the ragged one: per layer and per KV group.
    "sampled_rows": dict(prefill_scorer="sampled_rows", prefill_score_rows=2),
    "sampled_rows_kv_group": dict(
        prefill_scorer="sampled_rows", prefill_score_rows=2, prefill_selection="kv_group"
    ),
}


@pytest.mark.parametrize("scorer", list(SCORERS))
def test_paged_mixed_step(sw, scorer):
    """One step: a chunk of sequence 0 (over its cached prompt), a decode of sequence 1, and a
    new prompt 2, against each alone."""
    cfg = sw.SketchWalkConfig(**SCORERS[scorer])
    cache = PagedCache(64, 24, 3)
    keys4 = sw.PagedKeys4Cache(64, HKV, D, "cpu")
    q0, k0, v0 = tokens(500, HQ), tokens(500, HKV), tokens(500, HKV)
    q1, k1, v1 = tokens(201, HQ), tokens(201, HKV), tokens(201, HKV)
    q2, k2, v2 = tokens(1300, HQ), tokens(1300, HKV), tokens(1300, HKV)
    alone = [sw.SketchWalkState(cfg) for _ in range(3)]
    cache.append(0, k0[:300], v0[:300])
    cache.append(1, k1[:200], v1[:200])
    first = sw.StepPlan(cfg, [300, 200], [300, 200], page_table=cache.table[:2].contiguous())
    for layer in range(3):
        sw.sketchwalk_attention_paged(
            torch.cat([q0[:300], q1[:200]]),
            torch.cat([k0[:300], k1[:200]]),
            cache.k,
            cache.v,
            layer,
            first,
            keys4,
        )
        for b, (q, k, v, t) in enumerate(((q0, k0, v0, 300), (q1, k1, v1, 200))):
            hnd = [x[:t].transpose(0, 1)[None] for x in (q, k, v)]
            sw.sketchwalk_attention(*hnd, layer, alone[b])
    cache.append(0, k0[300:], v0[300:])
    cache.append(1, k1[200:], v1[200:])
    cache.append(2, k2, v2)
    plan = sw.StepPlan(cfg, [200, 1, 1300], [500, 201, 1300], page_table=cache.table)
    assert plan.phases() == ("chunk", "decode", "prefill")
    for layer in range(3):
        got = sw.sketchwalk_attention_paged(
            torch.cat([q0[300:], q1[200:], q2]),
            torch.cat([k0[300:], k1[200:], k2]),
            cache.k,
            cache.v,
            layer,
            plan,
            keys4,
        )
        want = [
            sw.sketchwalk_attention(
                q0[300:].transpose(0, 1)[None],
                k0.transpose(0, 1)[None],
                v0.transpose(0, 1)[None],
                layer,
                alone[0],
            ),
            sw.sketchwalk_attention(
                q1[200:].transpose(0, 1)[None],
                k1.transpose(0, 1)[None],
                v1.transpose(0, 1)[None],
                layer,
                alone[1],
            ),
            sw.sketchwalk_attention(
                q2.transpose(0, 1)[None],
                k2.transpose(0, 1)[None],
                v2.transpose(0, 1)[None],
                layer,
                alone[2],
            ),
        ]
        want = torch.cat([w[0].transpose(0, 1) for w in want])
        tol = dict(atol=1e-5, rtol=1e-5) if layer < cfg.dense_layers else dict(atol=0, rtol=0)
        torch.testing.assert_close(got, want, **tol, msg=f"layer {layer}")
    density = sw.paged.paged_density(plan, 2)
    assert {b: float(d) for b, d in density.items()} == {
        b: s.last_density[2] for b, s in enumerate(alone)
    }
    assert float(density[2]) < 0.9  # the new prompt is ranked by the scorer, not kept whole


def test_paged_refusals(sw):
    cfg = sw.SketchWalkConfig()
    keys4 = sw.PagedKeys4Cache(8, HKV, D, "cpu")
    table = torch.zeros(1, 2, dtype=torch.int32)
    plan = sw.StepPlan(cfg, [10], [10], page_table=table)
    pool = torch.zeros(8, 64, HKV, D)
    f = sw.sketchwalk_attention_paged
    assert_raises_naming(
        lambda: f(
            tokens(10, HQ), tokens(10, HKV), pool, pool, 2, sw.StepPlan(cfg, [10], [10]), keys4
        ),
        "plan",
        exc=TypeError,
    )
    assert_raises_naming(lambda: f(tokens(9, HQ), tokens(10, HKV), pool, pool, 2, plan, keys4), "q")
    assert_raises_naming(
        lambda: f(tokens(10, HQ), tokens(10, HKV), pool[:4], pool[:4], 2, plan, keys4), "k_pages"
    )
    meta_plan = sw.StepPlan(cfg, [10], [10], "meta", page_table=table.to("meta"))
    assert_raises_naming(
        lambda: f(tokens(10, HQ), tokens(10, HKV), pool, pool, 2, meta_plan, keys4), "plan"
    )
    with pytest.raises(ValueError, match="page_table"):
        sw.StepPlan(cfg, [10], [200], page_table=table)  # 200 keys need 4 pages


@pytest.mark.gpu
@pytest.mark.parametrize(
    "knobs", [{}, {"layer_keep_scale": (1, 1, 0.3, 2)}, {"dense_spread_q_frac": 0.2}]
)
def test_paged_step_no_sync_and_graph(sw, knobs):
    """Over a paged cache, a prefill step (a chunk and a new prompt) and a decode step of every
    sequence run with no host synchronization once the plan is built, and the decode step of
    all layers replays from a CUDA graph; also with per-layer keep fractions."""
    cfg = sw.SketchWalkConfig(**knobs)
    dt = torch.bfloat16
    cache = PagedCache(64, 16, 3, "cuda", dt)
    keys4 = sw.PagedKeys4Cache(64, HKV, D, "cuda")
    lens = [300, 130, 700]
    qs = [tokens(t + 1, HQ, "cuda", dt) for t in lens]
    ks = [tokens(t + 1, HKV, "cuda", dt) for t in lens]
    vs = [tokens(t + 1, HKV, "cuda", dt) for t in lens]
    for b, t in enumerate(lens):
        cache.append(b, ks[b][:t], vs[b][:t])
    layers = range(4)
    warm = sw.StepPlan(cfg, [100], [100], "cuda", page_table=cache.table[2:].contiguous())
    for layer in layers:  # first use: the sketch's draw reaches the device, pools are made
        sw.sketchwalk_attention_paged(
            qs[2][:100], ks[2][:100], cache.k, cache.v, layer, warm, keys4
        )
    plan = sw.StepPlan(cfg, [200, 130, 700], lens, "cuda", page_table=cache.table)
    assert plan.phases() == ("chunk", "prefill", "prefill")
    q = torch.cat([qs[0][100:300], qs[1][:130], qs[2][:700]])
    k = torch.cat([ks[0][100:300], ks[1][:130], ks[2][:700]])
    run_without_sync(
        lambda: [
            sw.sketchwalk_attention_paged(q, k, cache.k, cache.v, layer, plan, keys4)
            for layer in layers
        ]
    )
    for b, t in enumerate(lens):
        cache.append(b, ks[b][t : t + 1], vs[b][t : t + 1])
    step = sw.StepPlan(cfg, [1, 1, 1], [t + 1 for t in lens], "cuda", page_table=cache.table)
    q1 = torch.cat([qs[b][t : t + 1] for b, t in enumerate(lens)])
    k1 = torch.cat([ks[b][t : t + 1] for b, t in enumerate(lens)])

    def decode_all_layers():
        return [
            sw.sketchwalk_attention_paged(q1, k1, cache.k, cache.v, layer, step, keys4)
            for layer in layers
        ]

    eager = run_without_sync(decode_all_layers)
    graph, captured = capture_graph(decode_all_layers)
    graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(captured, eager):
        assert torch.equal(a, b)  # the same step again: the same 4-bit rows, the same output
