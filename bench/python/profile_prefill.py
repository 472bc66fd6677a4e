"""Run sparse_prefill a few times on the ~20% Sketch&Walk index at Llama-3.1-8B shapes, for a
profiler wrapped around it (bench/RESULTS.md quotes the ncu summary):

    ncu --clock-control none -k regex:sparse_prefill_sm90 -c 1 --section SpeedOfLight \
        python3 -m bench.python.profile_prefill --tokens 32768
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

import sketchwalk
from sketchwalk import ops
from sketchwalk.attention import select_prefill_blocks
from sketchwalk.density import prefill_density

from bench.python.bench_attention import (BATCH, DTYPE, HEAD_DIM, HKV, HQ, LAYER, calibrate_knobs,
                                          dense_causal_flops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    n = args.tokens
    gen = torch.Generator(device="cuda").manual_seed(n)
    q, k, v = (torch.randn(BATCH, h, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
               for h in (HQ, HKV, HKV))
    cfg = dataclasses.replace(sketchwalk.SketchWalkConfig(), **calibrate_knobs(q, k))
    block_index, num_selected, _, _ = select_prefill_blocks(q, k, LAYER, sketchwalk.SketchWalkState(cfg))
    density = float(prefill_density(block_index, num_selected, n, 64))
    kept = int(num_selected.sum())
    # Bytes the kernel must move at least: Q and O once, K and V of every kept (row, block) pair
    # once per CTA (2 query heads share a CTA's K/V), from L2 or HBM.
    kv_bytes = kept * (HQ // 2) * 2 * 64 * HEAD_DIM * 2
    print(f"tokens {n} density {density:.4f} effective GFLOP {density * dense_causal_flops(n) / 1e9:.1f} "
          f"K/V bytes requested by CTAs {kv_bytes / 1e9:.2f} GB", flush=True)
    for _ in range(args.calls):
        ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
