"""Ops one sparse layer of a ragged decode step launches, with and without a Keys4DecodePool
(python/sketchwalk/decode_pool.py): the host-side cost that bounds a serving loop's decode step
(bench/RESULTS.md, "Serving"). Counts the top-level torch and sketchwalk ops that run a kernel
(views left out) on the CPU, for S sequences decoding together after their prefill; each op is a
kernel launch on CUDA.

    python -m bench.python.decode_step_ops --seqs 8 --keys 3000
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import sketchwalk as sw
from sketchwalk.decode_pool import Keys4DecodePool

# Ops that only make a view or an uninitialized tensor: no kernel.
NO_KERNEL = {
    "aten::select", "aten::slice", "aten::transpose", "aten::unsqueeze", "aten::new_empty",
    "aten::empty", "aten::view", "aten::reshape", "aten::as_strided", "aten::expand",
}  # fmt: skip


def packed(tensors):
    return torch.cat([t[0].transpose(0, 1) for t in tensors])


def launches_per_step(pooled: bool, seqs: int, keys: int, steps: int, heads=(12, 2), dim=128):
    """Kernel-running ops of each of `steps` decode steps of the first sparse layer."""
    cfg = sw.SketchWalkConfig()
    layer = cfg.dense_layers
    pool = Keys4DecodePool() if pooled else None
    states = [sw.SketchWalkState(cfg) for _ in range(seqs)]
    for st in states:
        st.decode_pool = pool
    hq, hkv = heads
    qs = [torch.randn(1, hq, keys + steps, dim) for _ in range(seqs)]
    ks = [torch.randn(1, hkv, keys + steps, dim) for _ in range(seqs)]
    vs = [torch.randn(1, hkv, keys + steps, dim) for _ in range(seqs)]
    plan = sw.StepPlan(cfg, [keys] * seqs, [keys] * seqs)
    cut = [(q[:, :, :keys], k[:, :, :keys], v[:, :, :keys]) for q, k, v in zip(qs, ks, vs)]
    sw.sketchwalk_attention_varlen(*(packed(list(t)) for t in zip(*cut)), layer, states, plan)
    counts = []
    for n in range(1, steps + 1):
        plan = sw.StepPlan(cfg, [1] * seqs, [keys + n] * seqs)
        q = packed([t[:, :, keys + n - 1 : keys + n] for t in qs])
        k, v = packed([t[:, :, : keys + n] for t in ks]), packed([t[:, :, : keys + n] for t in vs])
        plan.decode_rows(), plan.decode_last_keys()  # once per step, not per layer
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sw.sketchwalk_attention_varlen(q, k, v, layer, states, plan)
        counts.append(
            sum(
                1
                for e in prof.events()
                if e.cpu_parent is None
                and e.name.startswith(("aten::", "sketchwalk::"))
                and e.name not in NO_KERNEL
            )
        )
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seqs", type=int, default=8)
    p.add_argument("--keys", type=int, default=3000)
    p.add_argument("--steps", type=int, default=3)
    args = p.parse_args()
    for pooled in (False, True):
        counts = launches_per_step(pooled, args.seqs, args.keys, args.steps)
        print(f"{'pooled ' if pooled else 'stacked'}: kernel launches per step {counts}")


if __name__ == "__main__":
    main()
