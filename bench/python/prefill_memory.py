"""Peak memory of one Sketch&Walk prefill layer, at Llama-3.1-8B shapes (32 q / 8 kv heads,
head_dim 128, bf16, batch 1) by default.

For each config (default, paper preset; kv_group on request) it runs the first sparse layer on a
fresh state, then the next layer with the first one's walk carried in (the steady state of a
forward pass), and prints the bytes of q, k, v and out, the peak allocated beyond them
(torch.cuda.max_memory_allocated; the carried walk, made by the previous layer and freed inside
this one, counts as this layer's), the ratio peak / (q + k + v + out), what the accounting of
tests/test_prefill_memory.py expects (walk W + block index + lse, plus the walk decode state
under the paper preset), the block index shape, and whether a second run of the layer is
bitwise equal to the first.

    python -m bench.python.prefill_memory --tokens 1048576               # from the repository root
    python -m bench.python.prefill_memory --tokens 2048 --heads 2 --kv-heads 1 --device cpu

On the CPU (a smoke test) peaks are not measured: torch has no max_memory_allocated there
(tests/test_prefill_memory.py measures them from the profiler's allocation events).
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

import sketchwalk
from sketchwalk.attention import select_prefill_blocks

GIB = 2**30
CONFIGS = {
    "default": sketchwalk.SketchWalkConfig,
    "paper": sketchwalk.SketchWalkConfig.paper,
    "kv_group": lambda: sketchwalk.SketchWalkConfig(prefill_selection="kv_group"),
}


def expected_extra(cfg, state, layer: int, hq: int, hkv: int, tokens: int) -> int:
    """Bytes beyond q/k/v/out by the accounting: W (float32) and the block index (int32), N x N
    per selection row, and lse; the walk decode state under decode_scorer 'walk'."""
    n = -(-tokens // cfg.block_size)
    rows = hkv if cfg.prefill_selection == "kv_group" else 1
    extra = rows * n * n * 8 + hq * tokens * 4
    if cfg.decode_scorer == "walk":
        s = state.layers[layer]
        extra += (
            s.transition.nbytes
            + s.key_blocks.nbytes
            + s.window_logits.nbytes
            + s.query_window.nbytes
        )
    return extra


def run_layer(q, k, v, layer: int, state) -> tuple[torch.Tensor, int | None]:
    """(out, bytes allocated beyond q/k/v/out at the peak; None on the CPU)."""
    cuda = q.is_cuda
    carried = state._carried_walk.nbytes if state._carried_walk is not None else 0
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    out = sketchwalk.sketchwalk_attention(q, k, v, layer, state)
    if not cuda:
        return out, None
    torch.cuda.synchronize()
    return out, torch.cuda.max_memory_allocated() - before - out.nbytes + carried


def measure(name: str, q, k, v) -> list[dict]:
    hq, hkv, tokens = q.shape[1], k.shape[1], q.shape[2]
    qkvo = 2 * q.nbytes + k.nbytes + v.nbytes
    cfg = dataclasses.replace(CONFIGS[name](), dense_layers=0)
    rows = []
    state = sketchwalk.SketchWalkState(cfg)
    for layer in (0, 1):
        out, extra = run_layer(q, k, v, layer, state)
        density = float(state.density_tensor(layer))
        # Determinism: the same layer on a state in the same condition (layer 1 gets the walk
        # layer 0 carries), bitwise equal out and density.
        again = sketchwalk.SketchWalkState(cfg)
        if layer == 1:
            sketchwalk.sketchwalk_attention(q, k, v, 0, again)
        out2, _ = run_layer(q, k, v, layer, again)
        equal = torch.equal(out, out2) and float(again.density_tensor(layer)) == density
        del out2, again
        rows.append(
            {
                "config": name,
                "layer": layer,
                "carried_walk": layer == 1,
                "qkvo": qkvo,
                "extra": extra,
                "expected": expected_extra(cfg, state, layer, hq, hkv, tokens),
                "density": density,
                "checksum": checksum(out),
                "deterministic": equal,
            }
        )
        del out
    bi, _, _, _ = select_prefill_blocks(q, k, 1, sketchwalk.SketchWalkState(cfg))
    for r in rows:
        r["block_index"] = (tuple(bi.shape), str(bi.dtype).replace("torch.", ""))
    return rows


def size(nbytes: int) -> str:
    return f"{nbytes / GIB:.3f} GiB" if nbytes >= GIB // 4 else f"{nbytes / 2**20:.2f} MiB"


def checksum(out: torch.Tensor) -> int:
    """Sum of the raw bits of out, one head at a time (compares outputs across builds/commits)."""
    bits = torch.int16 if out.element_size() == 2 else torch.int32
    return sum(
        int(out[:, h].contiguous().view(bits).to(torch.int64).sum()) for h in range(out.shape[1])
    )


def report(r: dict) -> str:
    if r.get("error"):
        return f"{r['config']:8s}: {r['error']}"
    qkvo = r["qkvo"]
    if r["extra"] is None:
        peak = "peak not measured on CPU"
    else:
        peak = f"peak beyond them {size(r['extra'])}, ratio {(qkvo + r['extra']) / qkvo:.3f}"
    return (
        f"{r['config']:8s} layer {r['layer']} (walk carried in: {r['carried_walk']!s:5s}): "
        f"q+k+v+out {size(qkvo)}, {peak}; expected beyond {size(r['expected'])}; "
        f"block_index {r['block_index'][0]} {r['block_index'][1]}; density {r['density']:.6f}; "
        f"out checksum {r['checksum']}; two runs equal: {r['deterministic']}"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1 << 20)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument(
        "--configs", default="default,paper", help=f"comma-separated, of {list(CONFIGS)}"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator(device=device).manual_seed(args.tokens)
    shape = (1, args.heads, args.tokens, args.head_dim)
    kv_shape = (1, args.kv_heads, args.tokens, args.head_dim)
    q = torch.randn(shape, device=device, dtype=dtype, generator=gen)
    k = torch.randn(kv_shape, device=device, dtype=dtype, generator=gen)
    v = torch.randn(kv_shape, device=device, dtype=dtype, generator=gen)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(
        f"{args.tokens} tokens, q {tuple(q.shape)}, k/v {tuple(k.shape)}, {dtype}, {device}{gpu}",
        flush=True,
    )
    rows = []
    with torch.no_grad():
        for name in args.configs.split(","):
            try:
                results = measure(name, q, k, v)
            except torch.OutOfMemoryError as err:  # report it and go on with the next config
                results = [{"config": name, "error": f"out of memory: {str(err).splitlines()[0]}"}]
            for r in results:
                print(report(r), flush=True)
                rows.append(r)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    main()
