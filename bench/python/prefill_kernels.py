"""The two CUDA prefill kernels side by side with cuDNN dense attention, at Llama-3.1-8B shapes
(32 query / 8 kv heads, head_dim 128, bf16, causal) on the index Sketch&Walk selects at ~20%
kept density. A quick check between full runs of bench_attention.py.

    python -m bench.python.prefill_kernels --tokens 8192 32768 131072
"""

from __future__ import annotations

import argparse

import torch

from bench.python.bench_attention import (
    calibrated_index,
    dense_causal_flops,
    llama_qkv,
    sdpa_ms,
    sparse_prefill_ms,
)


def main() -> None:
    from torch.nn.attention import SDPBackend

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="*", default=[8192, 32768, 131072])
    args = parser.parse_args()
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(
        "| tokens | density | cuDNN ms | sm80 ms | sm90 ms | sm80 TFLOP/s | sm90 TFLOP/s | sm90 "
        "vs sm80 | cuDNN / sm90 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.tokens:
        q, k, v = llama_qkv(n)
        block_index, num_selected, density = calibrated_index(q, k)
        flops = density * dense_causal_flops(n)
        t_dense = sdpa_ms(q, k, v, SDPBackend.CUDNN_ATTENTION, True)
        t80 = sparse_prefill_ms(q, k, v, block_index, num_selected, "sm80")
        t90 = sparse_prefill_ms(q, k, v, block_index, num_selected, "sm90")
        print(
            f"| {n} | {density:.3f} | {t_dense:.3f} | {t80:.3f} | {t90:.3f} | "
            f"{flops / t80 / 1e9:.0f} | "
            f"{flops / t90 / 1e9:.0f} | {t80 / t90:.2f}x | {t_dense / t90:.2f}x |",
            flush=True,
        )
        del q, k, v
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
