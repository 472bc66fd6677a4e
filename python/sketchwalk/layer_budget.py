"""Per-layer budgets at an equal average (SketchWalkConfig.layer_keep_scale).

A model's sparse layers are cut into contiguous bands; each band gets a weight, and the weights
become per-layer multipliers of the keep fraction whose mean over the sparse layers is 1, so the
kept candidates add up to the uniform rule's (up to layers whose scaled fraction clips at 1, and
the window / sink / dense rows, which the scale leaves alone). The same bands serve the
ablations that located the loss (eval/layer_bands.py). Or the multipliers follow a per-layer
signal measured once (keep_scale_from_signal), e.g. the walk's entropy per layer
(eval/layer_recall.py).
"""

from __future__ import annotations

import dataclasses
import math

from .config import SketchWalkConfig


def sparse_layer_bands(cfg: SketchWalkConfig, num_layers: int, bands: int) -> list[list[int]]:
    """The layers of a num_layers model past cfg.dense_layers, cut into contiguous bands of
    ceil(count / bands) layers, the last one shorter where count is not a multiple. That sizing
    may give fewer than `bands` bands (26 layers in 8: six of 4 layers and one of 2; and any
    count < bands): keep_scale_by_band refuses weights it cannot place."""
    if num_layers < 1 or bands < 1:
        raise ValueError(f"num_layers and bands must be >= 1, got {num_layers} and {bands}")
    sparse = list(range(min(cfg.dense_layers, num_layers), num_layers))
    size = max(1, -(-len(sparse) // bands))
    return [sparse[i : i + size] for i in range(0, len(sparse), size)]


def keep_scale_by_band(
    cfg: SketchWalkConfig, num_layers: int, weights: tuple[float, ...]
) -> tuple[float, ...]:
    """layer_keep_scale for a num_layers model: band j of sparse_layer_bands(cfg, num_layers,
    len(weights)) weighted by weights[j], normalized so the mean over the sparse layers
    (cfg.is_dense_layer false) is 1; dense layers get 1.0 (unused)."""
    if (
        not isinstance(weights, (tuple, list))
        or not weights
        or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and 0.0 <= w < float("inf")
            for w in weights
        )
    ):
        raise ValueError(f"weights must be finite numbers >= 0, one per band, got {weights!r}")
    bands = sparse_layer_bands(cfg, num_layers, len(weights))
    if len(bands) != len(weights):
        raise ValueError(
            f"weights: {len(weights)} given, but the {sum(map(len, bands))} sparse layers past "
            f"dense_layers={cfg.dense_layers} make {len(bands)} bands of "
            f"{len(bands[0]) if bands else 0} (sparse_layer_bands)"
        )
    weight_of = {layer: float(w) for band, w in zip(bands, weights) for layer in band}
    sparse = _sparse_layers(cfg, num_layers)
    raw = {i: weight_of.get(i, 1.0) for i in sparse}
    if not sparse or sum(raw.values()) <= 0.0:
        raise ValueError(f"weights {weights!r} leave no budget to the sparse layers")
    return _mean_one(raw, num_layers)


def with_band_budget(
    cfg: SketchWalkConfig, num_layers: int, weights: tuple[float, ...]
) -> SketchWalkConfig:
    """cfg with layer_keep_scale = keep_scale_by_band(cfg, num_layers, weights)."""
    return dataclasses.replace(cfg, layer_keep_scale=keep_scale_by_band(cfg, num_layers, weights))


def keep_scale_from_signal(
    cfg: SketchWalkConfig, num_layers: int, signal: dict[int, float], power: float = 1.0
) -> tuple[float, ...]:
    """layer_keep_scale for a num_layers model from a per-layer signal (e.g. the normalized
    entropy of each layer's walk over one calibration prompt: flat walks rank worst, issue 21):
    sparse layer i gets signal[i] ** power, normalized so the mean over the sparse layers is 1;
    dense layers get 1.0 (unused). Every sparse layer needs a finite signal > 0."""
    if not (
        isinstance(power, (int, float)) and not isinstance(power, bool) and math.isfinite(power)
    ):
        raise ValueError(f"power must be a finite number, got {power!r}")
    sparse = _sparse_layers(cfg, num_layers)
    missing = [i for i in sparse if i not in signal]
    if missing:
        raise ValueError(f"signal: no value for sparse layers {missing}")
    bad = {i: signal[i] for i in sparse if not (0.0 < float(signal[i]) < math.inf)}
    if bad:
        raise ValueError(f"signal must be finite and > 0 in every sparse layer, got {bad}")
    return _mean_one({i: float(signal[i]) ** power for i in sparse}, num_layers)


def _sparse_layers(cfg: SketchWalkConfig, num_layers: int) -> list[int]:
    return [i for i in range(num_layers) if not cfg.is_dense_layer(i)]


def _mean_one(raw: dict[int, float], num_layers: int) -> tuple[float, ...]:
    """A num_layers layer_keep_scale: the sparse layers' raw weights (keys of raw, sum > 0)
    scaled to mean 1, every other layer 1.0 (unused)."""
    norm = len(raw) / sum(raw.values())
    return tuple(raw[i] * norm if i in raw else 1.0 for i in range(num_layers))
