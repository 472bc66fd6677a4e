"""A ragged batch (issue 20's target rows): 16 sequences, lengths drawn once from 1K-64K (seed 0),
Llama-3.1-8B attention shapes (32 query / 8 KV heads, head_dim 128, bf16, random inputs).
Decode: one step of every sequence from a paged cache, in a CUDA graph, against SDPA per sequence
on contiguous caches (also in a graph); density = kept keys / keys. Prefill: each sequence's
Sketch&Walk selection (sketch, scores, walk, select) runs per sequence; the attention of the
whole batch is one sparse_prefill_varlen call, against the dense baselines on the same batch:
SDPA per sequence (cuDNN, flash) and torch's varlen attention where this torch has one. Density
is the kept fraction of the batch's causal area (kept pairs / causal pairs, over sequences).

    python -m bench.python.bench_varlen [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random

import torch
import torch.nn.functional as F

import sketchwalk
from sketchwalk import ops
from sketchwalk.attention import select_prefill_blocks
from sketchwalk.density import prefill_density
from sketchwalk.plan import SelectionArgs

from .bench_attention import KNOBS_20, bench_ms, environment, graph_ms

HQ, HKV, HEAD_DIM = 32, 8, 128
NUM_SEQS = 16


def ragged_lengths(seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1024, 65536) for _ in range(NUM_SEQS)]


def causal_pairs(t: int) -> int:
    return t * (t + 1) // 2


def select_ragged(qs, ks, cfg, plan):
    """Per-sequence selection -> one padded index (StepPlan.pad_index) and the rows. No density
    work here: it is timed as the layer's selection."""
    rows = [
        select_prefill_blocks(
            q, k, cfg.dense_layers, sketchwalk.SketchWalkState(cfg, track_density=False)
        )[:2]
        for q, k in zip(qs, ks)
    ]
    index, count = plan.pad_index(rows)
    return index, count, rows


def batch_density(rows, lens) -> float:
    """Kept fraction of the batch's causal area: kept pairs over causal pairs, over sequences."""
    kept = sum(
        float(prefill_density(bi, ns, t, 64)) * causal_pairs(t) for (bi, ns), t in zip(rows, lens)
    )
    return kept / sum(causal_pairs(t) for t in lens)


def bench_decode(lens: list[int], rows: list[dict]) -> None:
    """One decode step of the ragged batch from a paged cache (64-key pages, shuffled), keys4 at
    the defaults and at ~10%: append the new key's 4-bit row, score, select, attend (4 ops, one
    graph), against dense SDPA per sequence on contiguous caches (also in a graph)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    torch.manual_seed(1)
    dt = torch.bfloat16
    pages = [-(-t // 64) for t in lens]
    num_pages = sum(pages)
    order = torch.randperm(num_pages, device="cuda").to(torch.int32)
    table = torch.zeros(len(lens), max(pages), dtype=torch.int32, device="cuda")
    at = 0
    for b, n in enumerate(pages):
        table[b, :n] = order[at : at + n]
        at += n
    k_pool = torch.randn(num_pages, 64, HKV, HEAD_DIM, device="cuda", dtype=dt)
    v_pool = torch.randn_like(k_pool)
    codes = torch.zeros(num_pages, HKV, 64, HEAD_DIM // 2, dtype=torch.uint8, device="cuda")
    scales = torch.zeros(num_pages, HKV, 64, device="cuda")
    seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
    # The prompts' 4-bit keys, sequence by sequence (the prefill's work; not timed).
    for b, t in enumerate(lens):
        kb = k_pool[table[b, : pages[b]].long()].flatten(0, 1)[:t].transpose(0, 1)[None]
        ops.quantize_keys4_(codes, scales, kb, seq_lens[b : b + 1], False, table[b : b + 1])
    q = torch.randn(len(lens), HQ, 1, HEAD_DIM, device="cuda", dtype=dt)
    k_new = torch.randn(len(lens), HKV, 1, HEAD_DIM, device="cuda", dtype=dt)
    caches = [
        (
            k_pool[table[b, : pages[b]].long()]
            .flatten(0, 1)[:t]
            .transpose(0, 1)[None]
            .contiguous(),
            v_pool[table[b, : pages[b]].long()]
            .flatten(0, 1)[:t]
            .transpose(0, 1)[None]
            .contiguous(),
        )
        for b, t in enumerate(lens)
    ]

    def dense(backend):
        def run():
            with sdpa_kernel(backend):
                for b, (kc, vc) in enumerate(caches):
                    F.scaled_dot_product_attention(q[b : b + 1], kc, vc, enable_gqa=True)

        return run

    dense_ms = {}
    for name, backend in (
        ("cuDNN", SDPBackend.CUDNN_ATTENTION),
        ("flash", SDPBackend.FLASH_ATTENTION),
        ("efficient", SDPBackend.EFFICIENT_ATTENTION),
    ):
        try:
            dense_ms[name] = graph_ms(dense(backend))
        except RuntimeError as err:
            print(f"dense decode {name}: {err}")
    best = min(dense_ms.values())
    kv_bytes = 2 * sum(lens) * HKV * HEAD_DIM * 2
    for name, ms in dense_ms.items():
        rows.append(
            dict(
                method=f"decode, dense SDPA {name} per sequence (graph)",
                density=1.0,
                ms=ms,
                tb_s=kv_bytes / ms / 1e9,
                speedup=best / ms,
            )
        )
    base = sketchwalk.SketchWalkConfig()
    for label, cfg in (
        ("defaults", base),
        (
            "~10%",
            dataclasses.replace(
                base, decode_kblocks_frac=0.07, decode_window_frac=0.02, decode_sink_frac=0.01
            ),
        ),
    ):
        fracs = SelectionArgs.decode(cfg).keys4_fracs()

        def step():
            ops.quantize_keys4_(codes, scales, k_new, seq_lens, False, table)
            mass = ops.score_blocks_keys4(q, codes, scales, seq_lens, None, False, table)
            bi, ns = ops.select_blocks_keys4(mass, seq_lens, *fracs, False)
            return ops.sparse_decode(q, k_pool, v_pool, bi, ns, None, False, seq_lens, table)

        mass = ops.score_blocks_keys4(q, codes, scales, seq_lens, None, False, table)
        _, ns = ops.select_blocks_keys4(mass, seq_lens, *fracs, False)
        last = [t - (-(-t // 64) - 1) * 64 for t in lens]  # keys of each last (own) block
        kept = sum(float(((ns[b].double() - 1) * 64 + last[b]).mean()) for b in range(len(lens)))
        density = kept / sum(lens)
        ms = graph_ms(step)
        rows.append(
            dict(
                method=f"decode {label}: keys4 step from the paged cache (graph, 4 ops)",
                density=density,
                ms=ms,
                tb_s=None,
                speedup=best / ms,
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: prefill,decode")
    args = parser.parse_args()
    lens = ragged_lengths()
    rows = []
    if "decode" not in args.skip:
        bench_decode(lens, rows)
    if "prefill" not in args.skip:
        bench_prefill(lens, rows)
    env = environment()
    print(json.dumps(env))
    print(f"lengths {lens} (total {sum(lens)} tokens)")
    print(f"{'method':<75} {'density':>8} {'ms':>9} {'vs best dense':>13}")
    for r in rows:
        print(f"{r['method']:<75} {r['density']:8.3f} {r['ms']:9.3f} {r['speedup']:12.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(env=env, lengths=lens, rows=rows), f, indent=1)


def to_pages(k: torch.Tensor, v: torch.Tensor, lens: list[int]):
    """Packed [total, Hkv, D] keys and values -> pools [pages, 64, Hkv, D] with the pages in a
    shuffled order (unused rows of each last page NaN: never read) and the int32 page table."""
    pages = [-(-t // 64) for t in lens]
    order = torch.randperm(sum(pages), device="cuda").to(torch.int32)
    table = torch.zeros(len(lens), max(pages), dtype=torch.int32, device="cuda")
    pools = [
        torch.full((sum(pages), 64, *k.shape[1:]), float("nan"), device="cuda", dtype=k.dtype)
        for _ in (k, v)
    ]
    at, t0 = 0, 0
    for b, (n, t) in enumerate(zip(pages, lens)):
        ids = order[at : at + n]
        table[b, :n] = ids
        for pool, x in zip(pools, (k, v)):
            rows = torch.zeros(n * 64, *x.shape[1:], device="cuda", dtype=x.dtype)
            rows[:t] = x[t0 : t0 + t]
            block = rows.view(n, 64, *x.shape[1:])
            pool[ids.long()] = torch.where(
                torch.arange(n * 64, device="cuda").view(n, 64, 1, 1) < t, block, pool[ids.long()]
            )
        at, t0 = at + n, t0 + t
    return pools[0], pools[1], table


def bench_prefill(lens: list[int], rows: list[dict]) -> None:
    torch.manual_seed(0)
    qs = [torch.randn(1, HQ, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    ks = [torch.randn(1, HKV, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    vs = [torch.randn(1, HKV, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    packed = [torch.cat([x[0].transpose(0, 1) for x in xs]).contiguous() for xs in (qs, ks, vs)]
    cu = torch.tensor([0] + lens, device="cuda").cumsum(0).to(torch.int32)
    total_flops = sum(4 * HQ * HEAD_DIM * causal_pairs(t) for t in lens)

    def sdpa_all(backend):
        from torch.nn.attention import sdpa_kernel

        def run():
            with sdpa_kernel(backend):
                for q, k, v in zip(qs, ks, vs):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

        return run

    from torch.nn.attention import SDPBackend

    dense = {}
    for name, backend in (
        ("cuDNN", SDPBackend.CUDNN_ATTENTION),
        ("flash", SDPBackend.FLASH_ATTENTION),
    ):
        try:
            dense[name] = bench_ms(sdpa_all(backend))
        except RuntimeError as err:
            print(f"SDPA {name}: {err}")
    try:
        from torch.nn.attention.varlen import varlen_attn

        k_rep, v_rep = (x.repeat_interleave(HQ // HKV, 1) for x in packed[1:])  # not timed
        args = (packed[0], k_rep, v_rep, cu, cu, max(lens), max(lens))
        try:  # torch 2.10 takes is_causal; 2.11 on, a (left, right) window: (-1, 0) is causal
            varlen_attn(*args, is_causal=True)
            causal = dict(is_causal=True)
        except TypeError:
            causal = dict(window_size=(-1, 0))
        dense["torch varlen_attn"] = bench_ms(lambda: varlen_attn(*args, **causal))
    except (ImportError, RuntimeError, TypeError) as err:
        print(f"torch varlen_attn: {err}")
    best = min(dense.values())
    for name, ms in dense.items():
        rows.append(
            dict(
                method=f"dense: {name} (per sequence)"
                if "varlen" not in name
                else f"dense: {name} (one call; K/V repeated to the query heads beforehand)",
                density=1.0,
                ms=ms,
                tflops=total_flops / ms / 1e9,
                speedup=best / ms,
            )
        )
    k_pool, v_pool, table = to_pages(packed[1], packed[2], lens)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device="cuda")
    base = sketchwalk.SketchWalkConfig()
    for label, cfg in (
        ("defaults", base),
        ("~20%", dataclasses.replace(base, kblocks_frac=0.12, **KNOBS_20)),
    ):
        plan = sketchwalk.StepPlan(cfg, lens, lens, "cuda", track_density=False)
        index, count, per_seq = select_ragged(qs, ks, cfg, plan)
        density = batch_density(per_seq, lens)
        t_select = bench_ms(lambda: select_ragged(qs, ks, cfg, plan), warmup_ms=20, rep_ms=100)
        t_varlen = bench_ms(
            lambda: ops.sparse_prefill_varlen(
                packed[0], packed[1], packed[2], index, count, cu, cu, validate=False
            )
        )
        t_loop = bench_ms(
            lambda: [
                ops.sparse_prefill(q, k, v, bi, ns, validate=False)
                for q, k, v, (bi, ns) in zip(qs, ks, vs, per_seq)
            ]
        )

        def paged():
            return ops.sparse_prefill_varlen(
                packed[0], k_pool, v_pool, index, count, cu, None, seq_lens, table, validate=False
            )

        t_paged = bench_ms(paged)
        os.environ["SKETCHWALK_PREFILL_ARCH"] = "sm80"  # read per call (sparse_prefill.cu)
        try:
            t_paged80 = bench_ms(paged)
        finally:
            del os.environ["SKETCHWALK_PREFILL_ARCH"]

        def layer():
            states = [sketchwalk.SketchWalkState(cfg, track_density=False) for _ in lens]
            return sketchwalk.sketchwalk_attention_varlen(
                packed[0], packed[1], packed[2], cfg.dense_layers, states, plan
            )

        t_layer = bench_ms(layer, warmup_ms=20, rep_ms=100)
        rows.append(
            dict(
                method=f"{label}: whole layer, sketchwalk_attention_varlen (public API)",
                density=density,
                ms=t_layer,
                tflops=total_flops * density / t_layer / 1e9,
                speedup=best / t_layer,
            )
        )
        for method, ms in (
            (f"{label}: sparse_prefill_varlen, one call", t_varlen),
            (f"{label}: sparse_prefill_varlen from a paged cache, one call", t_paged),
            (f"{label}: the same, sm80 kernel", t_paged80),
            (f"{label}: sparse_prefill per sequence (16 calls)", t_loop),
            (
                f"{label}: whole layer (selection per sequence + one varlen call)",
                t_varlen + t_select,
            ),
        ):
            rows.append(
                dict(
                    method=method,
                    density=density,
                    ms=ms,
                    tflops=total_flops * density / ms / 1e9,
                    speedup=best / ms,
                )
            )


if __name__ == "__main__":
    main()
