"""The 4-bit key states of the sequences that decode together, kept stacked between steps.

A ragged step's decode sequences under the keys4 scorer are scored and selected in one launch
each (ragged.py), which needs their 4-bit keys (LayerKeys4State, docs/spec.md section 7) in one
[S, Hkv, capacity, head_dim / 2] buffer. Stacking them anew at every step and layer costs a copy
of every cached 4-bit key and four launches per sequence. A Keys4DecodePool keeps that buffer:
each member's LayerKeys4State holds a view of its own row (codes[i : i + 1], scales[i : i + 1]),
so a step appends the new keys of all its sequences with one launch and scores the buffer as it
is. The buffer is rebuilt (each member's live rows copied once) only when the step's decode
sequences differ from the last step's, in membership or order, or outgrow its capacity.

Invariant: while a member's codes is the view the pool gave it, that view is the member's only
storage, so every path (batched or single-sequence) reads and writes the same rows; a path that
replaces the member's tensors (a prefill, a capacity growth) makes the pool rebuild before it is
used again. A storage the pool has let go of is never written by the pool again; members that
left keep reading their rows there.
"""

from __future__ import annotations

import torch

from .state import LayerKeys4State, keys4_capacity


class Keys4DecodePool:
    """One stacked buffer per layer for the decode sequences of a serving loop (one per engine:
    integrations/hf_serving.py gives it to every request's SketchWalkState)."""

    def __init__(self) -> None:
        # layer -> (codes [S, Hkv, cap, D/2], scales [S, Hkv, cap], the views handed out)
        self._layers: dict[int, tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] = {}
        self.rebuilds = 0  # how many times a layer's buffer was (re)made: for tests and profiles

    def stacked(
        self, layer_idx: int, layers: list[LayerKeys4State], num_keys: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, scales) with row i holding layers[i]'s 4-bit keys, room for num_keys[i] keys,
        and layers[i].codes / .scales views of row i. Reuses the layer's buffer when it was made
        for these states in this order and is large enough; else makes a new one."""
        held = self._layers.get(layer_idx)
        if held is not None:
            codes, scales, views = held
            if (
                len(views) == len(layers)
                and all(layer.codes is view for layer, view in zip(layers, views))
                and max(num_keys) <= codes.shape[2]
            ):
                return codes, scales
        return self._rebuild(layer_idx, layers, num_keys)

    def release(self) -> None:
        """Lets go of every buffer (a request left: the next decode step rebuilds). Members keep
        their views, so nothing they hold is lost."""
        self._layers.clear()

    def _rebuild(self, layer_idx, layers, num_keys):
        first = layers[0]
        num_kv_heads, half = first.codes.shape[1], first.codes.shape[3]
        capacity = keys4_capacity(max(num_keys))
        # Rows past a member's keys are never read (its length bounds the scorer and the
        # next append writes them), so they need no fill.
        codes = first.codes.new_empty((len(layers), num_kv_heads, capacity, half))
        scales = first.scales.new_empty((len(layers), num_kv_heads, capacity))
        views = []
        for i, layer in enumerate(layers):
            live = layer.num_keys
            codes[i, :, :live] = layer.codes[0, :, :live]
            scales[i, :, :live] = layer.scales[0, :, :live]
            layer.codes, layer.scales = codes[i : i + 1], scales[i : i + 1]
            views.append(layer.codes)
        self._layers[layer_idx] = (codes, scales, views)
        self.rebuilds += 1
        return codes, scales
