"""Time to first token of a Llama-3.1-8B-shaped model (random weights, bf16) through Hugging Face
transformers: one prefill forward of the prompt (KV cache filled, logits of the last position),
dense SDPA against Sketch&Walk, in one process on one GPU.

    python -m bench.python.bench_e2e --tokens 32768 131072 --out $OUT/e2e.md

Sketch&Walk runs at its defaults and at the ~20% knobs of bench_attention.py (kblocks_frac
calibrated on the first sparse layer's q/k of a random input, so the achieved density is reported
per run: the mean over the sparse layers of the prefill). Times: median of `--reps` forwards after
one warm-up, CUDA-synchronized wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import sketchwalk
from bench.python.bench_attention import KNOBS_20, environment
from sketchwalk.integrations import hf

# Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json): shapes only, the weights are random.
LLAMA_31_8B = dict(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    vocab_size=128256,
    rope_theta=500000.0,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def build_model(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**dict(LLAMA_31_8B, num_hidden_layers=layers))
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def ttft_s(model, input_ids, reps: int) -> float:
    times = []
    for i in range(reps + 1):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        torch.cuda.synchronize()
        if i > 0:
            times.append(time.perf_counter() - start)
        torch.cuda.empty_cache()
    return statistics.median(times)


def mean_density(model) -> float:
    d = hf.last_density(model, "prefill")
    sparse = [v for v in d.values() if v < 1.0]
    return sum(sparse) / len(sparse) if sparse else 1.0


def kblocks_frac_20(model, input_ids) -> float:
    """kblocks_frac for ~20% with KNOBS_20, bisected on the whole model's mean density."""
    lo, hi = 0.0, 1.0
    mid = 0.5
    for _ in range(8):
        mid = (lo + hi) / 2
        hf.configure(model, kblocks_frac=mid, **KNOBS_20)
        with torch.no_grad():
            model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        d = mean_density(model)
        if abs(d - 0.20) < 0.005:
            break
        lo, hi = (mid, hi) if d < 0.20 else (lo, mid)
    return mid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, nargs="*", default=[32768, 131072])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    env = environment()
    model = build_model(args.layers)
    lines = [
        f"Llama-3.1-8B shapes ({args.layers} layers, random weights, bf16), batch 1, "
        f"{env['device']}, torch {env['torch']}, commit {env['commit']}, {env['date']}.",
        "",
        "| tokens | attention | knobs | mean density (sparse layers) | TTFT s | SDPA / this |",
        "|---|---|---|---|---|---|",
    ]
    for n in args.tokens:
        gen = torch.Generator(device="cuda").manual_seed(n)
        input_ids = torch.randint(
            0, LLAMA_31_8B["vocab_size"], (1, n), device="cuda", generator=gen
        )
        model.set_attn_implementation("sdpa")
        t_sdpa = ttft_s(model, input_ids, args.reps)
        lines.append(f"| {n} | SDPA (dense) | | 1.0 | {t_sdpa:.3f} | 1.00x |")
        print(lines[-1], flush=True)
        frac = kblocks_frac_20(model, input_ids)
        for label, knobs in (
            ("defaults", {}),
            (f"~20% (kblocks_frac={frac:.3f})", dict(kblocks_frac=frac, **KNOBS_20)),
        ):
            hf.configure(model, sketchwalk.SketchWalkConfig(), **knobs)
            t = ttft_s(model, input_ids, args.reps)
            lines.append(
                f"| {n} | Sketch&Walk | {label} | {mean_density(model):.3f} | {t:.3f} | "
                f"{t_sdpa / t:.2f}x |"
            )
            print(lines[-1], flush=True)
        hf.configure(model, enable=False)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
