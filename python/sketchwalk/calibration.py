"""Per-layer budgets from one calibration prompt: the walk's entropy per layer.

A layer whose walk is flat over the causal key blocks ranks them worst, so it is given more of
the budget (docs/spec.md section 12). record_walk_entropy() watches the sketch + walk prefills
run inside it and keeps, per layer, the mean over query-block rows of the walk's entropy over
that row's causal key blocks 0..i, normalized by log(i + 1) to [0, 1]. Only rows the selection
thinned count (a row that keeps every causal block has nothing to rank). Layers run dense, and
layers of a registered prefill scorer (no walk), are not recorded.

    with sketchwalk.calibration.record_walk_entropy() as entropy:
        ...  # one prefill of a representative prompt, uniform budget
    cfg = sketchwalk.calibration.with_walk_entropy_budget(cfg, num_layers, entropy, power=3.0)

The Hugging Face integration wraps this: sketchwalk.integrations.hf.calibrate_layer_budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math

import torch

from . import attention
from .config import SketchWalkConfig
from .layer_budget import keep_scale_from_signal

# The power of the entropy in the budget: the best of 1, 2 and 3 in CPU perplexity of three
# models at ~20%; on RULER (both Qwens, 8K and 16K) no budget beat the uniform rule
# (bench/RESULTS.md), which is why none is a default.
DEFAULT_ENTROPY_POWER = 3.0


def causal_walk_entropy(walk: torch.Tensor, num_selected: torch.Tensor) -> tuple[float, int]:
    """(sum, count) over the rows the selection thinned of each row's normalized causal entropy.

    walk [rows, N, N] (a prefill: query block i sees key blocks 0..i), num_selected [rows, N]
    (blocks kept per query block). Row i's entropy is that of walk[i, :i+1] (clamped at 0,
    normalized to sum 1) divided by log(i + 1); row 0 (one block) is never thinned."""
    if walk.dim() != 3 or walk.shape[-1] != walk.shape[-2]:
        raise ValueError(f"walk must be [rows, N, N], got {tuple(walk.shape)}")
    rows, n = walk.shape[0], walk.shape[-1]
    if num_selected.shape != (rows, n):
        raise ValueError(
            f"num_selected must be [{rows}, {n}] (one count per walk row), "
            f"got {tuple(num_selected.shape)}"
        )
    i = torch.arange(n, device=walk.device)
    causal = i[None, :] <= i[:, None]
    p = walk.double().clamp_min(0) * causal
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-300)
    h = -(p * p.clamp_min(1e-300).log()).sum(-1)  # [rows, N]
    norm = torch.log((i + 1).double())
    norm[0] = 1.0  # row 0: one block, entropy 0 (and never thinned)
    thinned = num_selected.to(walk.device).long() < (i + 1)[None, :]
    count = int(thinned.sum())
    return float((h / norm * thinned).sum()), count


class WalkEntropy:
    """The per-layer record of record_walk_entropy: sums and counts of thinned rows."""

    def __init__(self) -> None:
        self._sum: dict[int, float] = {}
        self._count: dict[int, int] = {}

    def __call__(self, layer_idx: int, walk: torch.Tensor, num_selected: torch.Tensor) -> None:
        # walk [rows, N, N]; num_selected [batch, index_heads, N] with rows = batch x index_heads
        total, count = causal_walk_entropy(walk, num_selected.reshape(walk.shape[0], -1))
        self._sum[layer_idx] = self._sum.get(layer_idx, 0.0) + total
        self._count[layer_idx] = self._count.get(layer_idx, 0) + count

    def per_layer(self) -> dict[int, float]:
        """Mean normalized entropy per recorded layer (layers with no thinned row left out)."""
        return {i: self._sum[i] / c for i, c in sorted(self._count.items()) if c > 0}


@contextlib.contextmanager
def record_walk_entropy():
    """Records the walk entropy of every sketch + walk prefill layer run inside (any batch,
    prefill_selection "layer" or "kv_group"; prefill chunks are not recorded). Not reentrant."""
    if attention.prefill_walk_observer is not None:
        raise RuntimeError("record_walk_entropy: already recording")
    record = WalkEntropy()
    attention.prefill_walk_observer = record
    try:
        yield record
    finally:
        attention.prefill_walk_observer = None


def with_walk_entropy_budget(
    cfg: SketchWalkConfig,
    num_layers: int,
    entropy: WalkEntropy | dict[int, float],
    power: float = DEFAULT_ENTROPY_POWER,
) -> SketchWalkConfig:
    """cfg with layer_keep_scale proportional to entropy ** power over its sparse layers, mean
    1 (layer_budget.keep_scale_from_signal): the same average budget, moved to the layers whose
    walk is flattest. Every sparse layer needs a recorded value."""
    signal = entropy.per_layer() if isinstance(entropy, WalkEntropy) else dict(entropy)
    if not all(math.isfinite(v) for v in signal.values()):
        raise ValueError(f"entropy: non-finite values {signal}")
    missing = [i for i in range(num_layers) if not cfg.is_dense_layer(i) and i not in signal]
    if missing:
        raise ValueError(
            f"entropy: no walk entropy for sparse layers {missing} (a layer of a registered "
            "prefill scorer has no walk; a prompt too short for the selection to drop a block "
            "records none)"
        )
    scale = keep_scale_from_signal(cfg, num_layers, signal, power)
    return dataclasses.replace(cfg, layer_keep_scale=scale)
