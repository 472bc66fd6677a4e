"""A ragged prefill batch in one call (issue 20's target row): 16 sequences, lengths drawn once
from 1K-64K (seed 0), Llama-3.1-8B attention shapes (32 query / 8 KV heads, head_dim 128, bf16,
random inputs). Each sequence's Sketch&Walk selection (sketch, scores, walk, select) runs as
today, per sequence; the attention of the whole batch is one sparse_prefill_varlen call, against
the dense baselines on the same batch: SDPA per sequence (the faster of cuDNN and flash) and
torch's varlen attention where this torch has one. Density is the kept fraction of the batch's
causal area (sum over sequences of kept pairs / sum of causal pairs).

    python -m bench.python.bench_varlen [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random

import torch
import torch.nn.functional as F

import sketchwalk
from sketchwalk import ops
from sketchwalk.attention import select_prefill_blocks
from sketchwalk.density import prefill_density

from .bench_attention import KNOBS_20, bench_ms, environment

HQ, HKV, HEAD_DIM = 32, 8, 128
NUM_SEQS = 16


def ragged_lengths(seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1024, 65536) for _ in range(NUM_SEQS)]


def causal_pairs(t: int) -> int:
    return t * (t + 1) // 2


def select_ragged(qs, ks, cfg):
    """Per-sequence selection -> one padded index [S, 1, max Nq, max Nk] and the density."""
    rows = []
    kept = 0.0
    for q, k in zip(qs, ks):
        state = sketchwalk.SketchWalkState(cfg)
        bi, ns, _, _ = select_prefill_blocks(q, k, cfg.dense_layers, state)
        t = q.shape[2]
        kept += float(prefill_density(bi, ns, t, 64)) * causal_pairs(t)
        rows.append((bi, ns))
    nq = max(bi.shape[2] for bi, _ in rows)
    width = max(bi.shape[3] for bi, _ in rows)
    index = torch.full((len(rows), 1, nq, width), -1, dtype=torch.int32, device="cuda")
    count = torch.zeros((len(rows), 1, nq), dtype=torch.int32, device="cuda")
    for b, (bi, ns) in enumerate(rows):
        index[b, :, : bi.shape[2], : bi.shape[3]] = bi[0]
        count[b, :, : ns.shape[2]] = ns[0]
    return index, count, kept / sum(causal_pairs(q.shape[2]) for q in qs), rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    lens = ragged_lengths()
    torch.manual_seed(0)
    qs = [torch.randn(1, HQ, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    ks = [torch.randn(1, HKV, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    vs = [torch.randn(1, HKV, t, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for t in lens]
    packed = [torch.cat([x[0].transpose(0, 1) for x in xs]).contiguous() for xs in (qs, ks, vs)]
    cu = torch.tensor([0] + lens, device="cuda").cumsum(0).to(torch.int32)
    total_flops = sum(4 * HQ * HEAD_DIM * causal_pairs(t) for t in lens)
    print(f"lengths {lens} (total {sum(lens)} tokens)")

    def sdpa_all(backend):
        from torch.nn.attention import sdpa_kernel

        def run():
            with sdpa_kernel(backend):
                for q, k, v in zip(qs, ks, vs):
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return run

    from torch.nn.attention import SDPBackend

    rows = []
    dense = {}
    for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
        try:
            dense[name] = bench_ms(sdpa_all(backend))
        except RuntimeError as err:
            print(f"SDPA {name}: {err}")
    try:
        from torch.nn.attention.varlen import varlen_attn

        dense["torch varlen_attn"] = bench_ms(lambda: varlen_attn(
            packed[0], packed[1].repeat_interleave(HQ // HKV, 1),
            packed[2].repeat_interleave(HQ // HKV, 1), cu, cu, max(lens), max(lens), is_causal=True))
    except (ImportError, RuntimeError, TypeError) as err:
        print(f"torch varlen_attn: {err}")
    best = min(dense.values())
    for name, ms in dense.items():
        rows.append(dict(method=f"dense: {name} (per sequence)" if "varlen" not in name else
                         f"dense: {name} (one call; K/V repeated to the query heads, not timed)",
                         density=1.0, ms=ms, tflops=total_flops / ms / 1e9, speedup=best / ms))
    base = sketchwalk.SketchWalkConfig()
    for label, cfg in (("defaults", base),
                       ("~20%", dataclasses.replace(base, kblocks_frac=0.12, **KNOBS_20))):
        index, count, density, per_seq = select_ragged(qs, ks, cfg)
        t_select = bench_ms(lambda: select_ragged(qs, ks, cfg), warmup_ms=20, rep_ms=100)
        t_varlen = bench_ms(lambda: ops.sparse_prefill_varlen(
            packed[0], packed[1], packed[2], index, count, cu, cu, validate=False))
        t_loop = bench_ms(lambda: [ops.sparse_prefill(q, k, v, bi, ns, validate=False)
                                   for q, k, v, (bi, ns) in zip(qs, ks, vs, per_seq)])
        for method, ms in ((f"{label}: sparse_prefill_varlen, one call", t_varlen),
                           (f"{label}: sparse_prefill per sequence (16 calls)", t_loop),
                           (f"{label}: whole layer (selection per sequence + one varlen call)",
                            t_varlen + t_select)):
            rows.append(dict(method=method, density=density, ms=ms,
                             tflops=total_flops * density / ms / 1e9, speedup=best / ms))
    env = environment()
    print(json.dumps(env))
    print(f"{'method':<75} {'density':>8} {'ms':>9} {'eff TF/s':>9} {'vs best dense':>13}")
    for r in rows:
        print(f"{r['method']:<75} {r['density']:8.3f} {r['ms']:9.3f} {r['tflops']:9.1f} "
              f"{r['speedup']:12.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(env=env, lengths=lens, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
