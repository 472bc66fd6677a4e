"""Per-sequence Sketch&Walk state: the walk carried from layer to layer within a forward
pass, and each sparse layer's decode state (docs/spec.md section 6) carried across steps."""

from __future__ import annotations

import dataclasses

import torch

from .config import SketchWalkConfig
from .density import (
    decode_density,
    decode_density_per_row,
    kept_block_tails,
    prefill_density_from_tails,
)


def density_of(record) -> torch.Tensor | None:
    """The kept fraction (0-dim tensor) of a SketchWalkState.density_record, or None."""
    if isinstance(record, tuple):
        if record[0] == "prefill":
            return prefill_density_from_tails(*record[1:])
        if record[0] == "rows":
            return decode_density_per_row(*record[1:])
        return decode_density(*record)
    return record


@dataclasses.dataclass
class LayerDecodeState:
    """What one sparse layer keeps between decode steps (float32, on the layer's device).

    Buffers are allocated with spare capacity and grown by doubling; only the leading
    ``num_blocks`` rows/columns are live.
    """

    transition: torch.Tensor
    """[batch, capacity, capacity]: the block transition matrix A, live part [:n, :n]."""
    key_blocks: torch.Tensor
    """[batch, num_kv_heads, capacity, m]: sketches of the key block means."""
    query_window: torch.Tensor
    """[batch, num_q_heads, W, m]: ring buffer of the sketches of the recent queries."""
    window_logits: torch.Tensor
    """[batch, num_q_heads, W, capacity]: sketched logits of query_window against key_blocks
    (the decode scores' only per-step work is the new query's row and the open block's column).
    Costs 4 * num_q_heads * W bytes per key block: 8.5 MB per sequence and layer at 128K tokens
    for Llama-3.1-8B (32 heads, W = 32), beside 16 MB for transition and 512 MB of KV cache."""
    window_fill: int
    """Number of valid slots of query_window (<= W)."""
    pushes: int
    """Queries written so far; the next one goes to slot pushes % W (the oldest)."""
    num_keys: int
    """Keys summarized so far."""

    @property
    def capacity(self) -> int:
        return self.transition.shape[-1]

    def ensure_capacity(self, num_blocks: int) -> None:
        """Grow the buffers (zero-filled: the decode blend relies on finite entries)."""
        if num_blocks <= self.capacity:
            return
        new_cap = -(-max(num_blocks, 2 * self.capacity) // 16) * 16  # 16-byte aligned rows
        old = self.capacity
        t = self.transition.new_zeros((self.transition.shape[0], new_cap, new_cap))
        t[:, :old, :old] = self.transition
        kb = self.key_blocks.new_zeros(
            (*self.key_blocks.shape[:2], new_cap, self.key_blocks.shape[-1])
        )
        kb[:, :, :old] = self.key_blocks
        lg = self.window_logits.new_zeros((*self.window_logits.shape[:3], new_cap))
        lg[..., :old] = self.window_logits
        self.transition, self.key_blocks, self.window_logits = t, kb, lg


@dataclasses.dataclass
class LayerKeys4State:
    """What one sparse layer keeps between decode steps under the keys4 scorer (docs/spec.md
    section 7): a 4-bit copy of every cached key (layout: include/sketchwalk/keys4.h).

    Costs head_dim / 2 + 4 bytes per token and KV head, 13.3% of a bf16 KV cache at head_dim 128
    (Llama-3.1-8B at 128K tokens: 71 MB per layer and sequence beside 537 MB of K and V), 14.1%
    at head_dim 64. Buffers grow by doubling; rows [0, num_keys) are live.
    """

    codes: torch.Tensor
    """uint8 [batch, num_kv_heads, capacity, head_dim / 2]."""
    scales: torch.Tensor
    """float32 [batch, num_kv_heads, capacity]."""
    seq_lens: torch.Tensor
    """int32 [batch] on the layer's device: num_keys, for the ops that read lengths on the
    device."""
    num_keys: int
    """Keys encoded so far."""
    in_pool: bool = False
    """Whether codes, scales and seq_lens are views of a Keys4DecodePool's row (decode_pool.py)."""

    @property
    def capacity(self) -> int:
        return self.codes.shape[2]

    def ensure_capacity(self, num_keys: int) -> None:
        if num_keys <= self.capacity:
            return
        new_cap = keys4_capacity(max(num_keys, 2 * self.capacity))
        codes = self.codes.new_zeros((*self.codes.shape[:2], new_cap, self.codes.shape[3]))
        codes[:, :, : self.capacity] = self.codes
        scales = self.scales.new_zeros((*self.scales.shape[:2], new_cap))
        scales[:, :, : self.capacity] = self.scales
        self.codes, self.scales = codes, scales
        if self.in_pool:  # its own buffers now: the pool rebuilds before it reads this layer
            self.seq_lens, self.in_pool = self.seq_lens.clone(), False


# The sketch's draw on each device, shared by every state of a process: a state made per request
# (or per benchmark call) copies nothing to the device after the first.
_DEVICE_TRANSFORMS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _on_device(
    signs: torch.Tensor, coords: torch.Tensor, seed: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    key = (signs.numel(), coords.numel(), seed, str(torch.device(device)))
    if key not in _DEVICE_TRANSFORMS:
        _DEVICE_TRANSFORMS[key] = (signs.to(device), coords.to(device))
    return _DEVICE_TRANSFORMS[key]


@dataclasses.dataclass
class LayerStepState:
    """What a layer keeps between decode steps under a registered decode scorer (scorers.py),
    which sees the query and every key each step: only the key count, to tell a decode step."""

    num_keys: int


def keys4_capacity(num_keys: int) -> int:
    """Rows to allocate for num_keys keys: 1/8 spare (at least 256), rounded to 64-key blocks."""
    return -(-(num_keys + max(256, num_keys // 8)) // 64) * 64


class SketchWalkState:
    """Per-sequence (per batch of sequences) state of Sketch&Walk.

    Make one per ``generate()`` call or prefill and pass it to every layer's
    ``sketchwalk_attention``; a prefill of a layer (num_queries == num_keys) resets that
    layer's decode state.
    """

    def __init__(self, config: SketchWalkConfig | None = None, track_density: bool = True) -> None:
        self.config = config if config is not None else SketchWalkConfig()
        # Whether layers keep what their kept fraction needs (a prefill: its rows' counts and last
        # two kept blocks, a few small launches; a decode step: its num_selected) and compute
        # it when read. False: last_density is empty after a prefill.
        self.track_density = track_density
        # Slots of a fixed-capacity KV cache (a static cache) that decode steps will use: the
        # keys4 state of a prefill gets room for them up front (sketchwalk_attention's seq_lens).
        self.cache_capacity: int | None = None
        self.layers: dict[int, LayerDecodeState | LayerKeys4State] = {}
        # The pool a serving loop shares among its requests' states (decode_pool.py): the ragged
        # layer then keeps the decode sequences' 4-bit keys stacked between steps. None: each
        # ragged decode step stacks them anew.
        self.decode_pool = None
        # (batch, num_q_heads, num_kv_heads) each sparse layer last ran with: a decode step or
        # chunk with other shapes is refused (it would read a state made for other heads).
        self.layer_heads: dict[int, tuple[int, int, int]] = {}
        self._carried_layer: int | None = None
        self._carried_walk: torch.Tensor | None = None
        self._density: dict[int, torch.Tensor | tuple] = {}
        # The sketch's random draw for every n = 1, 2, ..., 256, made eagerly here: a
        # torch.Generator cannot be created inside a torch.compile region.
        from .ops import _sketch_transform_cpu

        self._transforms_cpu = {
            1 << e: _sketch_transform_cpu(1 << e, 1 << e, self.config.seed) for e in range(9)
        }
        self._transforms: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def sketch_transform(
        self, head_dim: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(signs, coords) on `device`, equal to ``ops.sketch_transform(head_dim, sketch_dim,
        seed)``."""
        n = 1 << (head_dim - 1).bit_length()
        m = self.config.effective_sketch_dim(head_dim)
        key = (n, m, str(device))
        if key not in self._transforms:
            signs, perm = self._transforms_cpu[n]
            self._transforms[key] = _on_device(signs, perm[:m], self.config.seed, device)
        return self._transforms[key]

    def reset(self) -> None:
        """Forget everything (a new sequence starts)."""
        self.layers.clear()
        self.layer_heads.clear()
        self._carried_layer = None
        self._carried_walk = None
        self._density.clear()

    # -- the walk carried between consecutive sparse layers of one forward pass --------
    def carried_walk(
        self, layer_idx: int, num_blocks: int, rows: int | None = None
    ) -> torch.Tensor | None:
        """W of layer ``layer_idx - 1`` when it produced one of size num_blocks (docs/spec.md
        section 3), and of ``rows`` batch rows when given (one per KV group and sequence under
        prefill_selection "kv_group")."""
        w = self._carried_walk
        if (
            self._carried_layer == layer_idx - 1
            and w is not None
            and w.shape[-1] == num_blocks
            and w.shape[-2] == num_blocks
            and (rows is None or w.shape[0] == rows)
        ):
            return w
        return None

    def take_carried_walk(
        self, layer_idx: int, num_blocks: int, rows: int | None = None
    ) -> torch.Tensor | None:
        """carried_walk(...), and the state lets go of the walk it holds (which no later layer
        can use once layer ``layer_idx`` runs): the prefill frees it mid-walk (N x N float32
        per row: 1 GiB at 1M tokens)."""
        w = self.carried_walk(layer_idx, num_blocks, rows)
        self._carried_layer, self._carried_walk = None, None
        return w

    def carry_walk(self, layer_idx: int, walk: torch.Tensor) -> None:
        self._carried_layer, self._carried_walk = layer_idx, walk

    # -- density actually achieved ------------------------------------------------------
    def record_density(self, layer_idx: int, density: torch.Tensor) -> None:
        self._density[layer_idx] = density

    def record_prefill_selection(
        self,
        layer_idx: int,
        block_index: torch.Tensor,
        num_selected: torch.Tensor,
        num_queries: int,
        block_size: int,
        num_keys: int | None = None,
    ) -> None:
        """The kept fraction of a prefill or chunk layer when track_density: what it needs of
        the index (freed after the layer) is kept now, a few small launches, and the density is
        computed when read; else nothing (the layer's entry is dropped)."""
        if self.track_density:
            self._density[layer_idx] = (
                "prefill",
                kept_block_tails(block_index, num_selected),
                num_selected,
                num_queries,
                block_size,
                num_keys,
            )
        else:
            self._density.pop(layer_idx, None)

    def record_decode_rows(
        self, layer_idx: int, num_selected: torch.Tensor, seq_lens: torch.Tensor, block_size: int
    ) -> None:
        """A decode step with a length per batch row on the device: kept only, turned into a
        density when read (no work per step)."""
        self._density[layer_idx] = ("rows", num_selected, seq_lens, block_size)

    def record_decode_selection(
        self, layer_idx: int, num_selected: torch.Tensor, num_keys: int, block_size: int
    ) -> None:
        """Kept keys of a decode step, turned into a density only when read (no work per step).

        The query's own block is always kept (window), so kept keys = full blocks + the last one."""
        self._density[layer_idx] = (num_selected, num_keys, block_size)

    def density_tensor(self, layer_idx: int) -> torch.Tensor | None:
        """Layer ``layer_idx``'s kept fraction of its last call as a 0-dim tensor on the layer's
        device (no sync), or None when the layer has not run sparse."""
        return density_of(self._density.get(layer_idx))

    def density_record(self, layer_idx: int):
        """What layer ``layer_idx`` kept of its last call to compute its density (a few small
        tensors and ints; density_of turns it into the 0-dim tensor), or None. A caller that
        averages over calls keeps these records and computes when it is read."""
        return self._density.get(layer_idx)

    @property
    def last_density(self) -> dict[int, float]:
        """Kept fraction of the causal attention area, per sparse layer, of the last call
        (block-granular: what the kernels compute). Reading it syncs with the device."""
        return {layer: float(self.density_tensor(layer)) for layer in sorted(self._density)}
