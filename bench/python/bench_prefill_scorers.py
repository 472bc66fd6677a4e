"""What a prefill ranking costs in its layer: the sketch + walk (docs/spec.md sections 1-3),
with its walk in float32 and from bfloat16 halves (walk_matmul "bf16x3"), against the
sampled-row scorer (section 11) at 1, 2 and 4 rows, at the default knobs, on one GPU
in one process (the issue-21 budget: the selection at most 12% of a layer at 8K, 5% at 128K).

Per length, at Llama-3.1-8B shapes (batch 1, 32 query / 8 KV heads, head_dim 128, bf16) unless
--heads says otherwise: dense SDPA (cuDNN), and per scorer the selection alone
(select_prefill_blocks), the whole layer (sketchwalk_attention: selection + sparse_prefill), the
selection's share of the layer and the density it kept; for sampled_rows also the scorer op
alone (ops.score_blocks_sampled_rows) with its FLOPs (2 passes x 2 x head_dim per visible
(sampled row, key) pair) and the rate it reaches, at the launcher's choice of query blocks per CTA
and at each count of --cta-blocks (SKETCHWALK_SAMPLED_ROWS_BLOCKS; 1 = one block a CTA); and
per scorer the selection's largest kernels by GPU time (torch.profiler).

    python -m bench.python.bench_prefill_scorers --tokens 8192 32768 131072 \\
        --out bench/results/prefill_scorers_<gpu>_<commit>
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

import torch

import sketchwalk
from bench.python.bench_attention import bench_ms, environment, kernel_times_us
from sketchwalk import ops
from sketchwalk.attention import select_prefill_blocks
from sketchwalk.density import prefill_density

LAYER = 2  # the first sparse layer under the default dense_layers=2
# (label, SketchWalkConfig knobs): the default ranking, its walk from bfloat16 halves
# (walk_matmul "bf16x3"), with 3/32 of the query blocks dense by query spread (docs/spec.md
# section 13: the spread's cost in the selection, the dense rows' in the layer) paid for by the
# other rows (dense_spread_in_budget) and by a lower kblocks_frac set by hand, and the sampled
# rows at 1, 2 and 4 rows.
SCORERS = (
    ("sketch_walk", {}),
    ("sketch_walk, walk bf16x3", {"walk_matmul": "bf16x3"}),
    ("sketch_walk, spread rows in budget", {"dense_spread_q_frac": 3 / 32}),
    (
        "sketch_walk, spread rows eq",
        {"dense_spread_q_frac": 3 / 32, "kblocks_frac": 0.236, "dense_spread_in_budget": False},
    ),
    *(
        (f"sampled_rows x{r}", {"prefill_scorer": "sampled_rows", "prefill_score_rows": r})
        for r in (1, 2, 4)
    ),
)


def sampled_rows_flops(num_tokens: int, num_q_heads: int, rows: int, head_dim: int) -> float:
    """Multiply-adds x 2 of the scorer's two passes: each sampled row (query t) against its t + 1
    causal keys, rows per 64-query block and query head."""
    pairs = 0
    for i in range(-(-num_tokens // 64)):
        valid = min(64, num_tokens - 64 * i)
        pairs += sum(64 * i + (2 * j + 1) * valid // (2 * rows) + 1 for j in range(rows))
    return 2 * 2 * head_dim * pairs * num_q_heads


def time_scorer_op(q, k, rows: int, cta_blocks: int) -> float:
    """ms of the scorer op alone with `cta_blocks` query blocks per CTA (0: the launcher's)."""
    name = "SKETCHWALK_SAMPLED_ROWS_BLOCKS"
    old = os.environ.pop(name, None)
    if cta_blocks:
        os.environ[name] = str(cta_blocks)
    try:
        return bench_ms(lambda: ops.score_blocks_sampled_rows(q, k, rows))
    finally:
        os.environ.pop(name, None)
        if old is not None:
            os.environ[name] = old


def bench_length(
    num_tokens: int,
    hq: int,
    hkv: int,
    head_dim: int,
    cta_blocks: list[int],
    rows_out: list,
    scorers: list[str],
) -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator(device="cuda").manual_seed(num_tokens)
    q, k, v = (
        torch.randn(1, h, num_tokens, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen)
        for h in (hq, hkv, hkv)
    )
    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
        t_dense = bench_ms(
            lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, enable_gqa=True
            )
        )
    base = dict(tokens=num_tokens, q_heads=hq, kv_heads=hkv, head_dim=head_dim)
    rows_out.append(dict(base, scorer="dense SDPA cuDNN", layer_ms=t_dense))
    print(f"[{num_tokens}] dense cuDNN {t_dense:.3f} ms", flush=True)
    for label, knobs in SCORERS:
        if scorers and not any(w in label for w in scorers):
            continue
        rows = knobs.get("prefill_score_rows")
        cfg = dataclasses.replace(sketchwalk.SketchWalkConfig(), **knobs)
        state = sketchwalk.SketchWalkState(cfg)
        block_index, num_selected, _, _ = select_prefill_blocks(q, k, LAYER, state)
        density = float(prefill_density(block_index, num_selected, num_tokens, 64))
        t_select = bench_ms(lambda: select_prefill_blocks(q, k, LAYER, state))
        t_layer = bench_ms(lambda: sketchwalk.sketchwalk_attention(q, k, v, LAYER, state))
        # Kernel time alone (the profiler's sum over the kernels of one call): what a CUDA graph
        # would take, free of the host's launch speed, which made the wall-clock share 19.5% on
        # one H100 host and 28.9% on another at 8K.
        select_kernels = kernel_times_us(lambda: select_prefill_blocks(q, k, LAYER, state))
        layer_kernels = kernel_times_us(
            lambda: sketchwalk.sketchwalk_attention(q, k, v, LAYER, state)
        )
        gpu_select, gpu_layer = sum(select_kernels.values()), sum(layer_kernels.values())
        row = dict(
            base,
            scorer=label,
            density=density,
            selection_ms=t_select,
            layer_ms=t_layer,
            selection_share=t_select / t_layer,
            selection_gpu_us=gpu_select,
            layer_gpu_us=gpu_layer,
            selection_gpu_share=gpu_select / gpu_layer,
            layer_vs_dense=t_dense / t_layer,
            selection_kernels_us=dict(sorted(select_kernels.items(), key=lambda kv: -kv[1])[:8]),
        )
        if rows is not None:
            t_op = time_scorer_op(q, k, rows, 0)
            flops = sampled_rows_flops(num_tokens, hq, rows, head_dim)
            row.update(scorer_op_ms=t_op, scorer_tflops=flops / t_op / 1e9)
            row["scorer_op_ms_by_cta_blocks"] = {
                n: time_scorer_op(q, k, rows, n) for n in cta_blocks
            }
        rows_out.append(row)
        print(json.dumps(row), flush=True)
    torch.cuda.empty_cache()


def write_markdown(env: dict, rows: list[dict], path: str) -> None:
    def f(x, fmt):
        return "" if x is None else format(x, fmt)

    lines = [
        "# Prefill scorers in their layer (bench/python/bench_prefill_scorers.py)",
        "",
        f"{env.get('device')}, torch {env.get('torch')}, commit {env.get('commit')}. "
        "Default knobs; times are medians of CUDA-event timings; share = selection / whole layer; "
        "GPU share = the same by the kernels' own time (torch.profiler, the sum over one call's "
        "kernels: free of the host's launch speed).",
        "",
        "| tokens | heads q/kv | scorer | density | selection ms | layer ms | share | "
        "selection / layer kernel us | GPU share | "
        "dense / layer | scorer op ms | scorer TFLOP/s | op ms at n blocks per CTA |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['tokens']} | {r['q_heads']}/{r['kv_heads']} | {r['scorer']} | "
            f"{f(r.get('density'), '.3f')} | {f(r.get('selection_ms'), '.3f')} | "
            f"{f(r['layer_ms'], '.3f')} | {f(r.get('selection_share'), '.1%')} | "
            + (
                f"{r['selection_gpu_us']:.0f} / {r['layer_gpu_us']:.0f}"
                if "selection_gpu_us" in r
                else ""
            )
            + f" | {f(r.get('selection_gpu_share'), '.1%')} | "
            f"{f(r.get('layer_vs_dense'), '.2f')} | {f(r.get('scorer_op_ms'), '.3f')} | "
            f"{f(r.get('scorer_tflops'), '.0f')} | "
            + ", ".join(f"{n}: {t:.3f}" for n, t in r.get("scorer_op_ms_by_cta_blocks", {}).items())
            + " |"
        )
    lines += ["", "Where the selection's GPU time goes (us per call, largest kernels):", ""]
    for r in rows:
        if r.get("selection_kernels_us"):
            kernels = "; ".join(f"{n} {us}" for n, us in r["selection_kernels_us"].items())
            lines.append(f"- {r['tokens']} {r['scorer']}: {kernels}")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="*", default=[8192, 32768, 131072])
    parser.add_argument(
        "--heads", default="32,8,128", help="q heads, KV heads, head_dim (default Llama-3.1-8B)"
    )
    parser.add_argument(
        "--cta-blocks",
        default="1",
        help="comma-separated query blocks per CTA to time the scorer op at besides the launcher's",
    )
    parser.add_argument(
        "--scorers",
        default="",
        help="comma-separated substrings of the scorer labels to run, e.g. 'sketch' for both "
        "walks, 'bf16x3', 'x2' (default: all)",
    )
    parser.add_argument("--out", required=True, help="output stem (.md and .json added)")
    args = parser.parse_args()
    hq, hkv, head_dim = (int(x) for x in args.heads.split(","))
    cta_blocks = [int(x) for x in args.cta_blocks.split(",") if x]
    scorers = [x.strip() for x in args.scorers.split(",") if x.strip()]
    env = environment()
    rows: list[dict] = []
    for t in args.tokens:
        bench_length(t, hq, hkv, head_dim, cta_blocks, rows, scorers)
    write_markdown(env, rows, args.out + ".md")
    with open(args.out + ".json", "w") as fh:
        json.dump({"environment": env, "rows": rows}, fh, indent=1, default=str)
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    main()
