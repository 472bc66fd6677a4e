"""Where a Sketch&Walk decode step spends its time, at Llama-3.1-8B shapes (32 q / 8 kv heads,
head_dim 128, bf16), one sparse layer:

1. the step as the benchmark times it (events around one call, GPU idle before it);
2. host issue time per step (calls queued back to back, no sync) and GPU time per step
   (the same step captured in a CUDA graph and replayed: no host work at all);
3. host cost of each op of the step on its own (issued back to back; the GPU keeps up);
4. torch.profiler's per-kernel GPU times.

    python bench/python/profile_decode.py --tokens 131072 --batch 1
"""

from __future__ import annotations

import argparse
import time

import torch

import sketchwalk
from sketchwalk import ops
from sketchwalk.plan import SelectionArgs
from sketchwalk.state import LayerKeys4State


def host_us(fn, calls: int = 200) -> float:
    """Mean host time of one call, issued back to back (the GPU drains in between)."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def keys4_pieces(q1, kk, vv, layer, cfg) -> dict:
    """The ops of a keys4 decode step (docs/spec.md section 7), on scratch copies of its state."""
    codes, scales, lens = layer.codes.clone(), layer.scales.clone(), layer.seq_lens.clone()
    q_score = q1.to(torch.bfloat16)
    mass = ops.score_blocks_keys4(q_score, codes, scales, lens, None, False)
    fracs = SelectionArgs.decode(cfg).keys4_fracs()  # the decode knobs, as the layer uses them
    bi, ns = ops.select_blocks_keys4(mass, lens, *fracs, False)
    return {
        "python step (sketchwalk_attention)": None,
        "quantize_keys4_ (1 token)": lambda: ops.quantize_keys4_(
            codes, scales, kk[:, :, -1:], lens, False
        ),
        "score_blocks_keys4": lambda: ops.score_blocks_keys4(
            q_score, codes, scales, lens, None, False
        ),
        "select_blocks_keys4": lambda: ops.select_blocks_keys4(mass, lens, *fracs, False),
        "sparse_decode": lambda: ops.sparse_decode(q1, kk, vv, bi, ns, validate=False),
    }


def walk_pieces(q1, kk, vv, layer, state, cfg) -> dict:
    """The ops of a walk decode step (docs/spec.md section 6), on scratch copies of its state."""
    nk = kk.shape[2]
    nb = -(-nk // 64)
    signs, coords = state.sketch_transform(128, q1.device)
    c = ops.logit_scale(cfg.sketch_dim, 128)
    qs = ops.hadamard_sketch(q1, signs, coords, 1, validate=False)
    r = ops.window_block_scores(layer.window_logits, cfg.query_window, nb)
    a = layer.transition[:, :nb, :nb]
    walk = ops.walk_blocks(r[:, None], a, None, cfg.degree, cfg.damping)
    args = SelectionArgs.decode(cfg, nk)  # the decode knobs, as the layer uses them
    bi, ns = ops.select_blocks(walk, *args.select_blocks_args(1, nk, 64))
    scratch_kb = layer.key_blocks.clone()
    scratch_win = layer.query_window.clone()
    scratch_logits = layer.window_logits.clone()
    scratch_a = a.clone()
    scratch_t = layer.transition.clone()
    return {
        "python step (sketchwalk_attention)": None,
        "select_decode_blocks_ (op)": lambda: ops.select_decode_blocks_(
            q1,
            kk,
            scratch_kb,
            scratch_win,
            scratch_logits,
            scratch_t,
            signs,
            coords,
            cfg.query_window,
            100,
            64,
            cfg.degree,
            cfg.damping,
            c,
            args.keep_frac,
            args.window_tokens,
            args.exclude_sink_tokens,
            args.attend_sink_tokens,
        ),
        "hadamard_sketch (1 token)": lambda: ops.hadamard_sketch(
            q1, signs, coords, 1, validate=False
        ),
        "update_block_sketch_": lambda: ops.update_block_sketch_(scratch_kb, qs[:, :8], nk - 1, 64),
        "push_query_window_": lambda: ops.push_query_window_(scratch_win, qs, 7),
        "update_window_logits_": lambda: ops.update_window_logits_(
            scratch_logits, scratch_win, scratch_kb, nb, 7, c
        ),
        "window_block_scores": lambda: ops.window_block_scores(
            scratch_logits, cfg.query_window, nb
        ),
        "update_block_matrix_": lambda: ops.update_block_matrix_(scratch_a, r, nk, 64),
        "walk_blocks": lambda: ops.walk_blocks(r[:, None], a, None, cfg.degree, cfg.damping),
        "select_blocks": lambda: ops.select_blocks(walk, *args.select_blocks_args(1, nk, 64)),
        "sparse_decode": lambda: ops.sparse_decode(q1, kk, vv, bi, ns, validate=False),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=131072)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    b, t, steps = args.batch, args.tokens, args.steps
    dt = torch.bfloat16
    extra = 512 + 8 * steps  # every step() call below appends one token
    k = torch.randn(b, 8, t + extra, 128, device="cuda", dtype=dt)
    v = torch.randn_like(k)
    state = sketchwalk.SketchWalkState()
    cfg = state.config
    q = torch.randn(b, 32, t, 128, device="cuda", dtype=dt)
    sketchwalk.sketchwalk_attention(q, k[:, :, :t], v[:, :, :t], 2, state)
    del q
    q1 = torch.randn(b, 32, 1, 128, device="cuda", dtype=dt)
    n = t

    def step():
        nonlocal n
        n += 1
        return sketchwalk.sketchwalk_attention(q1, k[:, :, :n], v[:, :, :n], 2, state)

    for _ in range(4):  # warm-up
        step()
    torch.cuda.synchronize()

    # 1. As bench_attention.py times it.
    times = []
    for _ in range(steps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        step()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1) * 1e3)
    print(f"step (events, GPU idle before): median {sorted(times)[len(times) // 2]:.1f} us")

    # 2. Host issue time per step, and GPU time per step from a graph of one step.
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    host = (time.perf_counter() - start) / steps * 1e6
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) / steps * 1e6
    print(f"back to back: host issue {host:.1f} us/step, wall {wall:.1f} us/step")
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(side):
            step()  # warm the side stream's allocator pool
            torch.cuda.synchronize()
            with torch.cuda.graph(graph, stream=side):
                step()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        graph.replay()
        e0.record()
        for _ in range(steps):
            graph.replay()  # re-applies the same step's in-place updates: timing only
        e1.record()
        e1.synchronize()
        print(
            f"GPU only (graph replay of one step): {e0.elapsed_time(e1) * 1e3 / steps:.1f} us/step"
        )
    except RuntimeError as err:  # report and go on: the rest needs no graph
        print(f"graph capture of a step failed: {err}")

    # 3. Host cost of each op of the step (the ops of the layer's decode scorer).
    layer = state.layers[2]
    nk = n
    kk, vv = k[:, :, :nk], v[:, :, :nk]
    if isinstance(layer, LayerKeys4State):
        pieces = keys4_pieces(q1, kk, vv, layer, cfg)
    else:
        pieces = walk_pieces(q1, kk, vv, layer, state, cfg)
    pieces["empty tensor op (torch.empty, baseline)"] = lambda: torch.empty(16, device="cuda")
    pieces["python step (sketchwalk_attention)"] = step
    for name, fn in pieces.items():
        print(f"host {name:45s} {host_us(fn):8.1f} us/call")

    # 4. Kernel times.
    acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps // 2):
            step()
        torch.cuda.synchronize()
    print(
        prof.key_averages().table(sort_by="cuda_time_total", row_limit=22, max_name_column_width=60)
    )


if __name__ == "__main__":
    main()
