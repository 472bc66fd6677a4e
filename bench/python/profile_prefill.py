"""Run sparse_prefill a few times on the ~20% Sketch&Walk index at Llama-3.1-8B shapes, for a
profiler wrapped around it (bench/RESULTS.md quotes the ncu summary):

    ncu --clock-control none -k regex:sparse_prefill_sm90 -c 1 --section SpeedOfLight \
        python3 -m bench.python.profile_prefill --tokens 32768
"""

from __future__ import annotations

import argparse

import torch

from bench.python.bench_attention import (
    HEAD_DIM,
    HQ,
    calibrated_index,
    dense_causal_flops,
    llama_qkv,
)
from sketchwalk import ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    n = args.tokens
    q, k, v = llama_qkv(n)
    block_index, num_selected, density = calibrated_index(q, k)
    kept = int(num_selected.sum())
    # Bytes the kernel must move at least: Q and O once, K and V of every kept (row, block) pair
    # once per CTA (2 query heads share a CTA's K/V), from L2 or HBM.
    kv_bytes = kept * (HQ // 2) * 2 * 64 * HEAD_DIM * 2
    print(
        f"tokens {n} density {density:.4f} effective GFLOP "
        f"{density * dense_causal_flops(n) / 1e9:.1f} "
        f"K/V bytes requested by CTAs {kv_bytes / 1e9:.2f} GB",
        flush=True,
    )
    for _ in range(args.calls):
        ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
