"""Fixed costs of one Sketch&Walk layer through the public API (issue 20): the CUDA kernels it
launches, its host synchronizations and memcpys (torch.profiler's CUDA runtime events), the
host-side wall time against the GPU time, for a prefill layer and a keys4 decode step at
Llama-3.1-8B shapes (bf16, random inputs), beside cuDNN SDPA on the same tensors. Every sync is
also reported with its Python stack (torch.cuda.set_sync_debug_mode("warn")).

    python -m bench.python.profile_layer_overhead [--tokens 8192]
"""

from __future__ import annotations

import argparse
import collections
import time
import warnings

import torch
import torch.nn.functional as F

import sketchwalk

HQ, HKV, HEAD_DIM = 32, 8, 128
LAYER = 2  # the first sparse layer at the defaults (dense_layers = 2)


def runtime_counts(fn) -> dict:
    """CUDA runtime calls of one fn() call (kernels launched, syncs, memcpys by name) and the GPU
    busy time (the sum of its kernels' and copies' durations)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    counts = collections.Counter()
    busy_us = 0.0
    for e in prof.events():
        name = e.name
        if e.device_type == torch.autograd.DeviceType.CUDA:  # a kernel, memcpy or memset on the GPU
            busy_us += getattr(e, "device_time", None) or getattr(e, "cuda_time", 0.0)
            continue
        if name.startswith(("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")):
            counts["kernel launches"] += 1
        elif "Synchronize" in name and name != "cudaDeviceSynchronize":
            counts[name] += 1
        elif name.startswith("cudaMemcpy") or name.startswith("cudaMemset"):
            counts[name] += 1
        elif name.startswith(("cudaGraphLaunch",)):
            counts[name] += 1
    counts["GPU busy us"] = round(busy_us, 1)
    return dict(counts)


def timed(fn, reps: int = 20) -> tuple[float, float]:
    """(wall ms per call back to back, GPU ms per call from events)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) * 1e3 / reps
    return wall, start.elapsed_time(end) / reps


def sync_sites(fn) -> list[str]:
    """The warnings torch raises for each host synchronization inside fn()."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return [str(w.message).splitlines()[0] + " @ " + f"{w.filename}:{w.lineno}" for w in caught]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=8192)
    args = parser.parse_args()
    n = args.tokens
    torch.manual_seed(0)
    q = torch.randn(1, HQ, n + 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, HKV, n + 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    cfg = sketchwalk.SketchWalkConfig()
    state = sketchwalk.SketchWalkState(cfg)

    def prefill():
        return sketchwalk.sketchwalk_attention(q[:, :, :n], k[:, :, :n], v[:, :, :n], LAYER, state)

    quiet = sketchwalk.SketchWalkState(cfg, track_density=False)

    def prefill_untracked():
        return sketchwalk.sketchwalk_attention(q[:, :, :n], k[:, :, :n], v[:, :, :n], LAYER, quiet)

    def decode():
        # The step re-run on the same state: each call appends key n again (same work per call).
        state.layers[LAYER].num_keys = n
        return sketchwalk.sketchwalk_attention(q[:, :, n:], k, v, LAYER, state)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    def cudnn_prefill():
        with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
            return F.scaled_dot_product_attention(
                q[:, :, :n], k[:, :, :n], v[:, :, :n], is_causal=True, enable_gqa=True
            )

    def dense_decode():
        return F.scaled_dot_product_attention(q[:, :, n:], k, v, enable_gqa=True)

    prefill()
    print(f"device {torch.cuda.get_device_name(0)}, torch {torch.__version__}, {n} tokens")
    for name, fn in (
        ("prefill layer (sketchwalk_attention)", prefill),
        ("prefill layer, track_density=False", prefill_untracked),
        ("cuDNN SDPA prefill", cudnn_prefill),
        ("decode step (sketchwalk_attention, keys4)", decode),
        ("dense SDPA decode", dense_decode),
    ):
        wall, gpu = timed(fn)
        print(
            f"{name}: wall {wall:.3f} ms/call, GPU {gpu:.3f} ms/call, runtime {runtime_counts(fn)}"
        )
        for site in sync_sites(fn):
            print(f"   sync: {site}")


if __name__ == "__main__":
    main()
