"""The 4-bit key states of the sequences that decode together, kept stacked between steps.

A ragged step's decode sequences under the keys4 scorer are scored and selected in one launch
each (ragged.py), which needs their 4-bit keys (LayerKeys4State, docs/spec.md section 7) in one
[S, Hkv, capacity, head_dim / 2] buffer. Stacking them anew at every step and layer costs a copy
of every cached 4-bit key and four launches per sequence. A Keys4DecodePool keeps that buffer:
each member's LayerKeys4State holds views of its own row (codes[i : i + 1], scales[i : i + 1],
lengths[i : i + 1]), so a step appends the new keys of all its sequences with one launch and
scores the buffer as it is. The buffer is rebuilt (each member's live rows copied once) only
when the step's decode sequences differ from the last step's, in membership or order, or
outgrow its capacity.

Invariants: while a member's codes is the view the pool gave it, that view is the member's only
storage, so every path (batched or single-sequence) reads and writes the same rows; a path that
replaces the member's tensors (a prefill, a capacity growth) makes the pool rebuild before it is
used again. A storage the pool has let go of is never written by the pool again; members that
left keep reading their rows there. Every row has the longest member's capacity, so the pool is
only made while that costs at most MAX_WASTE times the members' own buffers (one long request
among short ones would multiply their memory): past it the step stacks per step instead.
"""

from __future__ import annotations

import torch

from .state import LayerKeys4State, keys4_capacity

# A pool's rows may hold at most this many times the rows the members would hold on their own.
MAX_WASTE = 2.0


class Keys4DecodePool:
    """One stacked buffer per layer for the decode sequences of a serving loop (one per engine:
    integrations/hf_serving.py gives it to every request's SketchWalkState)."""

    def __init__(self) -> None:
        # layer -> (codes [S, Hkv, cap, D/2], scales [S, Hkv, cap], lengths int32 [S], the codes
        # views handed out, in row order)
        self._layers: dict[int, tuple] = {}
        self.rebuilds = 0  # how many times a layer's buffer was (re)made: for tests and profiles

    def stacked(
        self, layer_idx: int, layers: list[LayerKeys4State], num_keys: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(codes, scales, lengths) with row i holding layers[i]'s 4-bit keys and room for
        num_keys[i] keys, layers[i]'s codes / scales / seq_lens views of row i. Reuses the
        layer's buffer when it was made for these states in this order and is large enough;
        else makes a new one, or returns None when a pool would waste too much memory (the
        caller stacks per step then)."""
        held = self._layers.get(layer_idx)
        if held is not None:
            codes, scales, lengths, views = held
            if (
                len(views) == len(layers)
                and all(layer.codes is view for layer, view in zip(layers, views))
                and max(num_keys) <= codes.shape[2]
            ):
                return codes, scales, lengths
            del self._layers[layer_idx]  # let go of it before a new one is made
        capacity = keys4_capacity(max(num_keys))
        if len(layers) * capacity > MAX_WASTE * sum(keys4_capacity(n) for n in num_keys):
            for layer in layers:  # back to buffers of their own size: a pool's rows go
                _unpool(layer)
            return None
        return self._rebuild(layer_idx, layers, capacity)

    def release(self) -> None:
        """Lets go of every buffer (a request left: the next decode step rebuilds). Members keep
        their views, so nothing they hold is lost."""
        self._layers.clear()

    def _rebuild(self, layer_idx, layers, capacity):
        first = layers[0]
        num_kv_heads, half = first.codes.shape[1], first.codes.shape[3]
        # Rows past a member's keys are never read (its length bounds the scorer and the
        # next append writes them), so they need no fill.
        codes = first.codes.new_empty((len(layers), num_kv_heads, capacity, half))
        scales = first.scales.new_empty((len(layers), num_kv_heads, capacity))
        lengths = first.seq_lens.new_empty((len(layers),))
        views = []
        for i, layer in enumerate(layers):
            live = layer.num_keys
            codes[i, :, :live] = layer.codes[0, :, :live]
            scales[i, :, :live] = layer.scales[0, :, :live]
            layer.codes, layer.scales = codes[i : i + 1], scales[i : i + 1]
            layer.seq_lens = lengths[i : i + 1]
            layer.in_pool = True
            views.append(layer.codes)
        self._layers[layer_idx] = (codes, scales, lengths, views)
        self.rebuilds += 1
        return codes, scales, lengths


def _unpool(layer: LayerKeys4State) -> None:
    """Moves a member's live rows out of a pool's buffer into buffers of its own."""
    if not layer.in_pool:
        return
    live, capacity = layer.num_keys, keys4_capacity(layer.num_keys)
    codes = layer.codes.new_empty((1, layer.codes.shape[1], capacity, layer.codes.shape[3]))
    scales = layer.scales.new_empty((1, layer.scales.shape[1], capacity))
    codes[:, :, :live] = layer.codes[:, :, :live]
    scales[:, :, :live] = layer.scales[:, :, :live]
    layer.codes, layer.scales, layer.seq_lens = codes, scales, layer.seq_lens.clone()
    layer.in_pool = False
