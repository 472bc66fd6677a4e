"""Where a Sketch&Walk decode step spends its time: torch.profiler over a few steps of one
sparse layer at Llama-3.1-8B shapes (32 q / 8 kv heads, head_dim 128, bf16).

    python bench/python/profile_decode.py --tokens 131072 --batch 1
"""

from __future__ import annotations

import argparse
import time

import torch

import sketchwalk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=131072)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    b, t, steps = args.batch, args.tokens, args.steps
    dt = torch.bfloat16
    k = torch.randn(b, 8, t + steps + 8, 128, device="cuda", dtype=dt)
    v = torch.randn_like(k)
    state = sketchwalk.SketchWalkState()
    q = torch.randn(b, 32, t, 128, device="cuda", dtype=dt)
    sketchwalk.sketchwalk_attention(q, k[:, :, :t], v[:, :, :t], 2, state)
    del q
    q1 = torch.randn(b, 32, 1, 128, device="cuda", dtype=dt)
    n = t
    for _ in range(4):  # warm-up
        n += 1
        sketchwalk.sketchwalk_attention(q1, k[:, :, :n], v[:, :, :n], 2, state)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps // 2):
        n += 1
        sketchwalk.sketchwalk_attention(q1, k[:, :, :n], v[:, :, :n], 2, state)
    host = (time.perf_counter() - start) / (steps // 2)
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / (steps // 2)
    print(f"per step: host (issue) {host * 1e3:.3f} ms, wall {wall * 1e3:.3f} ms")
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps // 2):
            n += 1
            sketchwalk.sketchwalk_attention(q1, k[:, :, :n], v[:, :, :n], 2, state)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=50))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=50))


if __name__ == "__main__":
    main()
