"""The two CUDA prefill kernels side by side with cuDNN dense attention, at Llama-3.1-8B shapes
(32 query / 8 kv heads, head_dim 128, bf16, causal) on the index Sketch&Walk selects at ~20%
kept density. A quick check between full runs of bench_attention.py.

    python -m bench.python.prefill_kernels --tokens 8192 32768 131072
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import torch

import sketchwalk
from sketchwalk import ops
from sketchwalk.attention import select_prefill_blocks
from sketchwalk.density import prefill_density

from bench.python.bench_attention import (BATCH, DTYPE, HEAD_DIM, HKV, HQ, LAYER, bench_ms,
                                          calibrate_knobs, dense_causal_flops, sdpa_ms)


def kernel_ms(arch: str, q, k, v, block_index, num_selected) -> float:
    os.environ["SKETCHWALK_PREFILL_ARCH"] = arch
    try:
        return bench_ms(lambda: ops.sparse_prefill(q, k, v, block_index, num_selected, validate=False))
    finally:
        os.environ.pop("SKETCHWALK_PREFILL_ARCH")


def main() -> None:
    from torch.nn.attention import SDPBackend

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="*", default=[8192, 32768, 131072])
    args = parser.parse_args()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| tokens | density | cuDNN ms | sm80 ms | sm90 ms | sm80 TFLOP/s | sm90 TFLOP/s | sm90 vs sm80 | cuDNN / sm90 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.tokens:
        gen = torch.Generator(device="cuda").manual_seed(n)
        q, k, v = (torch.randn(BATCH, h, n, HEAD_DIM, device="cuda", dtype=DTYPE, generator=gen)
                   for h in (HQ, HKV, HKV))
        cfg = dataclasses.replace(sketchwalk.SketchWalkConfig(), **calibrate_knobs(q, k))
        block_index, num_selected, _, _ = select_prefill_blocks(q, k, LAYER, sketchwalk.SketchWalkState(cfg))
        density = float(prefill_density(block_index, num_selected, n, 64))
        flops = density * dense_causal_flops(n)
        t_dense = sdpa_ms(q, k, v, SDPBackend.CUDNN_ATTENTION, True)
        t80 = kernel_ms("sm80", q, k, v, block_index, num_selected)
        t90 = kernel_ms("sm90", q, k, v, block_index, num_selected)
        print(f"| {n} | {density:.3f} | {t_dense:.3f} | {t80:.3f} | {t90:.3f} | {flops / t80 / 1e9:.0f} | "
              f"{flops / t90 / 1e9:.0f} | {t80 / t90:.2f}x | {t_dense / t90:.2f}x |", flush=True)
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
