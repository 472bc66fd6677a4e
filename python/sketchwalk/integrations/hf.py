"""Sketch&Walk as a Hugging Face transformers attention implementation.

After `import sketchwalk` (which calls `register()` when transformers is installed),
`AutoModelForCausalLM.from_pretrained(..., attn_implementation="sketchwalk")` or
`model.set_attn_implementation("sketchwalk")` routes every attention layer through
`sketchwalk_attention`. `configure(model, config)` sets the knobs per model (stored as a
plain dict on `model.config.sketchwalk_config`, so it round-trips through save/load) and
binds the per-sequence state to the model's KV cache. This is the only module of the
package that imports transformers.

How the state follows a sequence. transformers calls the attention function once per
layer with q (batch, Hq, Tq, D) and the un-repeated k/v (batch, Hkv, Tk, D) that already
include the cache, but it does not pass the cache itself. One `SketchWalkState` per
sequence therefore lives in a small runtime object keyed on the model's config:

- a forward whose first layer sees Tq == Tk is a prefill of a new sequence: fresh state;
- a forward with Tq == 1 and Tk one past the previous call is a decode step: same state;
- with a fixed-capacity cache (transformers' StaticCache, `cache_implementation="static"`), k/v
  always hold the cache's capacity: a forward with several queries is the prefill of a new
  sequence (its keys are the first Tq slots), and a decode step reads the sequence length from
  `position_ids` on the device (keys4 decode scorer, unpadded batches), so nothing on the host
  depends on the step and the model's decode forward can be captured in a CUDA graph;
- new tokens on top of a cache (chunked prefill, a prompt continuing a cache, a cache reused
  across prompts) run as prefill chunks (docs/spec.md section 10): on the same states when
  they continue the sequence, on fresh ones for a cache the states have not seen. Padded
  batches over a cache raise NotImplementedError. `configure()` installs a forward pre-hook
  that records the `past_key_values` object, so a step on another cache is detected.

Left-padded batches: the boolean mask gives each row's pad length, and each row keeps a state
of its own; padding never enters the sketches, the walk or the density. The prefill runs as one
ragged step (a StepPlan of the rows' unpadded lengths: each row's selection on its own tokens,
one varlen attention call per layer); with the keys4 decode scorer the decode steps run batched
(one 4-bit key state per layer for the batch, lengths on the device, sparse_decode from each
row's first key), with the others row by row. Right padding and packed sequences raise.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

ATTN_IMPLEMENTATION = "sketchwalk"
CONFIG_ATTR = "sketchwalk_config"  # on model.config: a dict of SketchWalkConfig fields
SPARSE_DECODE_ATTR = "sketchwalk_sparse_decode"  # on model.config: False = dense decode steps

__all__ = [
    "ATTN_IMPLEMENTATION",
    "configure",
    "get_config",
    "last_density",
    "register",
    "reset",
    "sketchwalk_attention_forward",
]


def _package():
    import sketchwalk

    return sketchwalk


# --------------------------------------------------------------------------------------
# Per-model runtime: the states of the sequence being generated.


@dataclass
class _Runtime:
    """The sequence currently running through one model (one config object)."""

    config_dict: dict | None = None  # the dict the cached `config` was built from
    config: Any = None  # SketchWalkConfig
    states: list = field(default_factory=list)  # one state (batched), or one per row
    pads: list[int] | None = None  # left-pad length per row when running row by row
    num_keys: int = 0  # keys (padding included) seen by the last completed call
    cache_ref: Any = None  # weakref to the past_key_values the states belong to
    static_capacity: int | None = None  # slots of a fixed-capacity (static) cache, else None
    hooked_cache: Any = None  # weakref set by the forward pre-hook of configure()
    hook_installed: bool = False
    plan: Any = None  # StepPlan of a left-padded prefill (its rows as one ragged step), else None
    chunk: bool = False  # this forward's new tokens are a prefill chunk over a cache
    # Decode steps of a left-padded batch (keys4): per sparse layer one batched 4-bit key state
    # (row b's keys at slots [0, L_b)), made from the rows' states at the first step; the rows'
    # first keys (their pad lengths) on the device. None: rows run one at a time.
    padded: dict | None = None
    pad_starts: Any = None
    # Densities are computed when read (last_density), never per layer or step: a prefill layer
    # keeps its rows' density records (SketchWalkState.density_record), a decode layer a
    # DecodeDensityLog of its steps.
    prefill_density: dict[int, list] = field(default_factory=dict)
    decode_density: dict[int, Any] = field(default_factory=dict)
    decode_steps: int = 0

    def reset(self) -> None:
        self.states = []
        self.pads = None
        self.plan = None
        self.chunk = False
        self.padded = None
        self.pad_starts = None
        self.num_keys = 0
        self.cache_ref = None
        self.static_capacity = None

    def start_sequence(self, states: list, cache) -> None:
        """A prefill: fresh per-sequence states bound to `cache` (the forward's past_key_values,
        or None); the densities of the previous sequence are dropped."""
        self.reset()
        self.states = states
        self.cache_ref = weakref.ref(cache) if cache is not None else None
        self.prefill_density = {}
        self.decode_density = {}
        self.decode_steps = 0

    def bound_cache(self):
        """The cache the states belong to, or None (none recorded, or collected)."""
        return self.cache_ref() if self.cache_ref is not None else None


_RUNTIMES: dict[int, _Runtime] = {}


def _runtime_for_config(cfg) -> _Runtime:
    key = id(cfg)
    rt = _RUNTIMES.get(key)
    if rt is None:
        rt = _Runtime()
        _RUNTIMES[key] = rt
        weakref.finalize(cfg, _RUNTIMES.pop, key, None)
    return rt


def _attention_configs(model) -> list:
    """Distinct config objects held by the model's attention modules, then model.config."""
    seen: dict[int, Any] = {}
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(module, "layer_idx"):
            seen.setdefault(id(cfg), cfg)
    seen.setdefault(id(model.config), model.config)
    return list(seen.values())


def _sketchwalk_config(module_config, rt: _Runtime):
    pkg = _package()
    raw = getattr(module_config, CONFIG_ATTR, None)
    if rt.config is None or raw != rt.config_dict:
        rt.config = pkg.SketchWalkConfig(**raw) if raw else pkg.SketchWalkConfig()
        rt.config_dict = dict(raw) if raw else None
    return rt.config


# --------------------------------------------------------------------------------------
# Padding


def _left_pads(attention_mask: torch.Tensor | None, batch: int, num_keys: int) -> list[int] | None:
    """Pad length per row from a 4D mask (bool: True = attend, or additive float), or None
    when no row is padded. Only left padding is supported."""
    if attention_mask is None:
        return None
    if attention_mask.dim() != 4:
        raise NotImplementedError(
            f"sketchwalk: expected a 4D attention mask, got shape {tuple(attention_mask.shape)}"
        )
    last = attention_mask[:, 0, -1, :]  # the last query sees every non-pad key
    visible = last if last.dtype == torch.bool else last > torch.finfo(last.dtype).min / 2
    visible = visible.expand(batch, num_keys)
    counts = visible.sum(dim=-1)
    pads = (num_keys - counts).tolist()
    for row, pad in enumerate(pads):
        if pad and (bool(visible[row, :pad].any()) or not bool(visible[row, pad:].all())):
            raise NotImplementedError(
                "sketchwalk: only left padding is supported (row "
                f"{row} has masked keys that are not a prefix); run such rows separately"
            )
    return pads if any(pads) else None


# --------------------------------------------------------------------------------------
# The attention function


def sketchwalk_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention interface: q (B, Hq, Tq, D), k/v (B, Hkv, Tk, D) un-repeated,
    cache included. Returns (out (B, Tq, Hq, D), None), like `sdpa_attention_forward`."""
    pkg = _package()
    if dropout and module.training:
        raise NotImplementedError("sketchwalk: attention dropout (training) is not supported")
    if kwargs.get("softcap") is not None:
        raise NotImplementedError("sketchwalk: logit softcapping is not supported")
    head_dim = query.shape[-1]
    if scaling is not None and not math.isclose(scaling, head_dim**-0.5, rel_tol=1e-6):
        raise NotImplementedError(
            f"sketchwalk: softmax scale {scaling} differs from 1/sqrt(head_dim) = {head_dim**-0.5}"
        )
    if "cu_seq_lens_q" in kwargs and ("write_index" in kwargs or "block_table" in kwargs):
        # a packed step of transformers' continuous batching (its cache indices come with it)
        from . import hf_serving

        return hf_serving.cb_attention(module, query, key, value, kwargs), None
    batch, _, num_queries, _ = query.shape
    num_keys = key.shape[2]
    window = kwargs.get("sliding_window")
    if window is not None and num_keys > window:
        raise NotImplementedError(
            f"sketchwalk: sliding-window attention ({window} < {num_keys} keys) is not supported"
        )

    layer_idx = int(module.layer_idx)
    rt = _runtime_for_config(module.config)
    cfg = _sketchwalk_config(module.config, rt)

    if layer_idx == 0:
        _begin_forward(
            rt, cfg, attention_mask, batch, num_queries, num_keys, kwargs.get("position_ids")
        )
    elif not rt.states:
        raise RuntimeError("sketchwalk: layer 0 must run before the other layers")
    if rt.static_capacity is not None:
        out = _static_cache_attention(module, rt, query, key, value, attention_mask, kwargs)
        if num_queries == 1 and not getattr(module.config, SPARSE_DECODE_ATTR, True):
            _record_dense_decode(rt, layer_idx)
        else:
            _record_density(rt, layer_idx, num_queries > 1)
        return out.transpose(1, 2).contiguous(), None

    if num_queries == 1 and num_keys > 1 and not getattr(module.config, SPARSE_DECODE_ATTR, True):
        # Sparse prefill only (the paper's "prefill" setting): decode steps attend densely.
        out = _dense_decode(query, key, value, rt.pads)
        _record_dense_decode(rt, layer_idx)
        rt.num_keys = num_keys
        return out.transpose(1, 2).contiguous(), None
    if rt.chunk:  # new tokens over a cache: a prefill chunk, named (never inferred per layer)
        out = pkg.attention.prefill_chunk_or_dense(query, key, value, layer_idx, rt.states[0])
    elif rt.padded is not None and num_queries == 1:  # a padded batch's decode step, batched
        out = _padded_decode(pkg, query, key, value, layer_idx, rt)
        rt.num_keys = num_keys
        return out.transpose(1, 2).contiguous(), None
    elif rt.pads is None:
        out = pkg.sketchwalk_attention(query, key, value, layer_idx, rt.states[0])
    elif rt.plan is not None:  # a padded prefill: the rows without their padding, in one call
        out = _ragged_prefill(pkg, query, key, value, layer_idx, rt)
    else:
        out = query.new_zeros(query.shape)
        for row, pad in enumerate(rt.pads):
            keys_row = num_keys - pad
            if keys_row <= 0:
                continue
            q_row = query[row : row + 1]
            if num_queries == num_keys:  # prefill: drop the pad queries too
                q_row = q_row[:, :, pad:]
            out_row = pkg.sketchwalk_attention(
                q_row,
                key[row : row + 1, :, pad:],
                value[row : row + 1, :, pad:],
                layer_idx,
                rt.states[row],
            )
            out[row : row + 1, :, num_queries - out_row.shape[2] :] = out_row

    _record_density(rt, layer_idx, num_queries == num_keys or rt.chunk)
    rt.num_keys = num_keys
    return out.transpose(1, 2).contiguous(), None


def _padded_decode(pkg, query, key, value, layer_idx: int, rt: "_Runtime") -> torch.Tensor:
    """One decode step of a left-padded batch in one call per op: the dense layers through SDPA
    with the padding masked; a sparse layer appends each row's new 4-bit key to the batched
    state, scores and selects per row (lengths on the device) and attends with sparse_decode
    from each row's first key (seq_starts = the pads)."""
    cfg = rt.config
    if cfg.is_dense_layer(layer_idx):  # (not recorded: as in the unpadded decode steps)
        return _dense_decode(query, key, value, rt.pads)
    layer = rt.padded.get(layer_idx)
    if layer is None:  # the first step: the rows' states (keys at slots [0, L_b)) in one batch
        layer = rt.padded[layer_idx] = _batched_keys4(pkg, [s.layers[layer_idx] for s in rt.states])
    num_keys = key.shape[2]
    layer.ensure_capacity(num_keys - min(rt.pads))  # the longest row after this step
    layer.seq_lens.add_(1)  # every row gains its new key (on the device: no sync)
    pkg.ops.quantize_keys4_(layer.codes, layer.scales, key[:, :, -1:], layer.seq_lens, False)
    index, count = pkg.attention.select_keys4_blocks(query, layer, layer.seq_lens, cfg, layer_idx)
    out, _ = pkg.ops.sparse_decode(
        query, key, value, index, count, None, False, layer.seq_lens, None, rt.pad_starts
    )
    _decode_log(rt, layer_idx, cfg.block_size).add(count, tuple(num_keys - p for p in rt.pads))
    return out


def _batched_keys4(pkg, rows: list):
    """One keys4 state for a batch from per-row ones ([1, ...] each, row b's keys at [0, L_b))."""
    capacity = max(r.capacity for r in rows)
    first = rows[0]
    codes = first.codes.new_zeros((len(rows), first.codes.shape[1], capacity, first.codes.shape[3]))
    scales = first.scales.new_zeros((len(rows), first.scales.shape[1], capacity))
    for b, r in enumerate(rows):
        codes[b, :, : r.num_keys] = r.codes[0, :, : r.num_keys]
        scales[b, :, : r.num_keys] = r.scales[0, :, : r.num_keys]
    lens = torch.cat([r.seq_lens for r in rows])
    return pkg.state.LayerKeys4State(
        codes=codes, scales=scales, seq_lens=lens, num_keys=max(r.num_keys for r in rows)
    )


def _ragged_prefill(pkg, query, key, value, layer_idx: int, rt: "_Runtime") -> torch.Tensor:
    """A left-padded prefill as one ragged step (rt.plan): each row's tokens after its padding,
    packed, through sketchwalk_attention_varlen; padded query rows of the output are 0."""

    def pack(x):
        return torch.cat([x[row, :, pad:].transpose(0, 1) for row, pad in enumerate(rt.pads)])

    packed = pkg.sketchwalk_attention_varlen(
        pack(query), pack(key), pack(value), layer_idx, rt.states, rt.plan
    )
    out = query.new_zeros(query.shape)
    offsets = rt.plan.q_offsets
    for row, pad in enumerate(rt.pads):
        out[row, :, pad:] = packed[offsets[row] : offsets[row + 1]].transpose(0, 1)
    return out


def _static_cache_attention(module, rt: _Runtime, query, key, value, attention_mask, kwargs):
    """One layer over a fixed-capacity cache: the prefill's keys are the first Tq slots; a decode
    step's length is position_ids + 1 (unpadded batches), a device tensor."""
    pkg = _package()
    layer_idx = int(module.layer_idx)
    num_queries = query.shape[2]
    if num_queries > 1:
        return pkg.sketchwalk_attention(
            query, key[:, :, :num_queries], value[:, :, :num_queries], layer_idx, rt.states[0]
        )
    if not getattr(module.config, SPARSE_DECODE_ATTR, True):  # dense decode steps
        return torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, enable_gqa=query.shape[1] != key.shape[1]
        )
    position_ids = kwargs.get("position_ids")
    if position_ids is not None:
        seq_lens = (position_ids[:, -1] + 1).to(torch.int32)
    else:  # host-side count: correct, but a captured graph would replay this length
        seq_lens = torch.full(
            (query.shape[0],), rt.num_keys, dtype=torch.int32, device=query.device
        )
    return pkg.sketchwalk_attention(query, key, value, layer_idx, rt.states[0], seq_lens=seq_lens)


def _dense_decode(query, key, value, pads: list[int] | None) -> torch.Tensor:
    """One query per row over all its (non-pad) keys."""
    group = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(group, dim=1)
    value = value.repeat_interleave(group, dim=1)
    mask = None
    if pads is not None:
        positions = torch.arange(key.shape[2], device=key.device)
        mask = positions[None, :] >= torch.tensor(pads, device=key.device)[:, None]
        mask = mask[:, None, None, :]
    return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)


def _begin_forward(
    rt: _Runtime,
    cfg,
    attention_mask,
    batch: int,
    num_queries: int,
    num_keys: int,
    position_ids=None,
) -> None:
    """Layer 0 of a forward: start a new sequence (prefill) or continue one (decode)."""
    pkg = _package()
    hooked = rt.hooked_cache() if rt.hooked_cache is not None else None
    static = hooked is not None and bool(getattr(hooked, "is_compileable", False))
    static_step = (
        rt.static_capacity is not None and num_queries == 1 and num_keys == rt.static_capacity
    )
    if hooked is None and num_queries > 1 and num_keys > num_queries and position_ids is not None:
        # No cache recorded (configure() installs the hook that records it; a model loaded with
        # attn_implementation="sketchwalk" alone has none): a fixed-capacity cache shows as key
        # slots past every row's last position. One host read per prompt or chunk, never in a
        # decode step.
        static = int(position_ids[:, -1].max()) + 1 < num_keys
    elif (
        hooked is None
        and not static_step
        and num_keys > num_queries
        and position_ids is None
        and not (rt.states and num_keys == rt.num_keys + num_queries)
    ):
        raise NotImplementedError(
            "sketchwalk: new tokens over a cache this model's states have not seen, with neither "
            "the cache recorded nor position_ids to tell empty fixed-capacity slots from keys: "
            "call sketchwalk.integrations.hf.configure(model) once (it records the cache)"
        )
    if static and num_queries > 1:  # a new sequence in a fixed-capacity cache
        if position_ids is not None and int(position_ids[:, 0].min()) > 0:
            raise NotImplementedError(
                "sketchwalk: chunked prefill over a static cache is not "
                "supported (its chunks after the first start past position "
                "0); use a dynamic cache for chunked prefill"
            )
        if attention_mask is not None:
            raise NotImplementedError(
                "sketchwalk: padded batches with a static cache are not "
                "supported; run the rows separately or use a dynamic cache"
            )
        if cfg.decode_scorer != "keys4":
            raise NotImplementedError(
                "sketchwalk: a static cache needs decode_scorer='keys4' (the "
                "paper's walk tracks lengths on the host)"
            )
        state = pkg.SketchWalkState(cfg)
        state.cache_capacity = num_keys
        rt.start_sequence([state], hooked)
        rt.static_capacity = num_keys
        rt.num_keys = num_queries
        return
    if (
        rt.static_capacity is not None
        and num_queries == 1
        and num_keys == rt.static_capacity
        and (hooked is None or hooked is rt.bound_cache())
    ):
        rt.decode_steps += 1
        rt.num_keys += 1
        return
    if num_queries == num_keys:
        rt.reset()  # a refused mask below leaves no stale sequence behind
        pads = _left_pads(attention_mask, batch, num_keys)
        count = 1 if pads is None else batch
        rt.start_sequence([pkg.SketchWalkState(cfg) for _ in range(count)], hooked)
        rt.pads = pads
        if pads is not None and cfg.decode_scorer == "keys4" and max(pads) < num_keys:
            lens = [num_keys - pad for pad in pads]  # one ragged call per layer
            rt.plan = pkg.StepPlan(cfg, lens, lens, attention_mask.device)
            rt.padded = {}
            rt.pad_starts = torch.tensor(pads, dtype=torch.int32).to(attention_mask.device)
        return
    bound = rt.bound_cache()
    # The prefill may have run without a cache object (use_cache with none given): the first
    # step that continues its lengths adopts the cache it brings.
    unbound = rt.cache_ref is None and bool(rt.states)
    continues = (
        bool(rt.states)
        and num_keys == rt.num_keys + num_queries
        and (hooked is None or bound is hooked or unbound)
    )
    if continues and unbound and hooked is not None:
        rt.cache_ref = weakref.ref(hooked)
    rt.static_capacity = None  # a static cache's steps returned above
    if not continues or num_queries > 1:
        # New tokens on a cache: a prefill chunk (docs/spec.md section 10), continuing this
        # sequence's states, or fresh ones for a cache they have not seen (a cache reused across
        # prompts, prefix caching: each layer's keys4 state is then built from every key).
        if attention_mask is not None and _left_pads(attention_mask, batch, num_keys) is not None:
            raise NotImplementedError(
                "sketchwalk: padded batches over a cache (chunked prefill, cache reuse) are not "
                f"supported; got {num_queries} new tokens over {num_keys} keys with padding"
            )
        if cfg.decode_scorer == "walk":
            raise NotImplementedError(
                "sketchwalk: chunked prefill and cache reuse need a decode scorer other than "
                f"'walk'; got {num_queries} new tokens over {num_keys} keys"
            )
        if not continues or rt.pads is not None or len(rt.states) != 1:
            rt.start_sequence([pkg.SketchWalkState(cfg)], hooked)
        rt.chunk = True
        return
    pads = _left_pads(attention_mask, batch, num_keys)
    if pads != rt.pads:
        raise NotImplementedError(
            f"sketchwalk: padding changed between prefill ({rt.pads}) and decode ({pads})"
        )
    rt.plan = None  # decode steps of a padded batch run row by row (per-row keys4 states)
    rt.chunk = False
    rt.decode_steps += 1


def _record_dense_decode(rt: _Runtime, layer_idx: int) -> None:
    """A decode step this layer ran densely (sparse_decode=False) keeps every key: density 1."""
    _decode_log(rt, layer_idx).add_value(1.0)


def _decode_log(rt: _Runtime, layer_idx: int, block_size: int = 64):
    log = rt.decode_density.get(layer_idx)
    if log is None:
        log = rt.decode_density[layer_idx] = _package().density.DecodeDensityLog(block_size)
    return log


def _record_density(rt: _Runtime, layer_idx: int, is_prefill: bool) -> None:
    """Keeps what the rows' densities need (no computation: a few launches per layer and step
    would add up over a generation; a sync would stall it); last_density computes them."""
    records = [s.density_record(layer_idx) for s in rt.states]
    records = [r for r in records if r is not None]
    if not records:
        return
    if is_prefill:
        rt.prefill_density[layer_idx] = records
        return
    # A decode step: every row's (num_selected, key count), one log entry for the step.
    if any(not isinstance(r, tuple) for r in records):  # densities already computed
        _decode_log(rt, layer_idx).add_value(sum(records) / len(records))
    elif len(records) == 1 and isinstance(records[0][0], str):  # ("rows", ...): device lengths
        _, count, seq_lens, block_size = records[0]
        _decode_log(rt, layer_idx, block_size).add(count, seq_lens.clone())
    else:  # (num_selected [rows, heads, 1], num_keys, block_size) per state
        counts = torch.cat([r[0] for r in records])
        lens = tuple(n for r in records for n in [r[1]] * r[0].shape[0])
        _decode_log(rt, layer_idx, records[0][2]).add(counts, lens)


# --------------------------------------------------------------------------------------
# Public helpers


_REGISTERED = False


def register() -> bool:
    """Register "sketchwalk" with transformers' attention and mask interfaces (idempotent;
    returns False when transformers is not installed). The mask is SDPA's boolean mask:
    None when nothing is padded, else (B, 1, Tq, Tk)."""
    global _REGISTERED
    if _REGISTERED:
        return True
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:  # transformers is optional: nothing to register
        return False

    AttentionInterface.register(ATTN_IMPLEMENTATION, sketchwalk_attention_forward)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
    _REGISTERED = True
    return True


def _capture_cache(rt: _Runtime):
    def hook(module, args, kwargs):
        # "past_key_values" up to transformers 5.2x, "cache" after its rename.
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        rt.hooked_cache = weakref.ref(cache) if cache is not None else None

    return hook


def configure(model, config=None, *, enable: bool = True, sparse_decode: bool = True, **overrides):
    """Store Sketch&Walk knobs on `model.config` (as `sketchwalk_config`, a dict) and, when
    `enable`, switch the model to attn_implementation="sketchwalk". Keyword overrides are
    applied with dataclasses.replace. `sparse_decode=False` keeps decode steps dense
    (sparse prefill only). Returns the SketchWalkConfig in use.

        configure(model, kblocks_frac=0.06, window_frac=0.02, sink_frac=0.01)
    """
    pkg = _package()
    register()
    cfg = config if config is not None else pkg.SketchWalkConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    _check_model_supported(model)
    layers = getattr(text_config(model), "num_hidden_layers", None)
    if layers is not None and len(cfg.layer_keep_scale) > layers:
        raise ValueError(
            f"sketchwalk: layer_keep_scale has {len(cfg.layer_keep_scale)} entries for a model "
            f"of {layers} layers (one per layer: sketchwalk.layer_budget.keep_scale_by_band)"
        )
    configs = _attention_configs(model)
    for c in configs:
        setattr(c, CONFIG_ATTR, dataclasses.asdict(cfg))
        setattr(c, SPARSE_DECODE_ATTR, bool(sparse_decode))
        rt = _runtime_for_config(c)
        rt.reset()
        if not rt.hook_installed:
            model.register_forward_pre_hook(_capture_cache(rt), with_kwargs=True)
            rt.hook_installed = True
    if enable and model.config._attn_implementation != ATTN_IMPLEMENTATION:
        model.set_attn_implementation(ATTN_IMPLEMENTATION)
    return cfg


def calibrate_layer_budget(model, input_ids: torch.Tensor, power: float | None = None):
    """Per-layer budgets for this model from one calibration prompt (docs/spec.md section 12):
    one prefill of input_ids ([batch, tokens], no padding; a few thousand tokens of the kind of
    text the model will serve) under the configured knobs with a uniform budget records each
    sparse layer's walk entropy (sketchwalk.calibration); the model is then configured with
    layer_keep_scale proportional to entropy ** power (default
    calibration.DEFAULT_ENTROPY_POWER) at the same average, and that config is returned. Save
    it (dataclasses.asdict) to skip the calibration next time. Needs the sketch + walk scorer in
    every sparse layer, and a prompt long enough for the selection to drop blocks."""
    pkg = _package()
    calibration = pkg.calibration
    power = calibration.DEFAULT_ENTROPY_POWER if power is None else power
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ValueError(
            "input_ids must be a [batch, tokens] tensor of token ids, got "
            f"{getattr(input_ids, 'shape', type(input_ids).__name__)}"
        )
    cfg = get_config(model)
    sparse_decode = getattr(model.config, SPARSE_DECODE_ATTR, True)
    num_layers = text_config(model).num_hidden_layers
    configure(model, dataclasses.replace(cfg, layer_keep_scale=()), sparse_decode=sparse_decode)
    try:
        with torch.no_grad(), calibration.record_walk_entropy() as entropy:
            model(input_ids=input_ids, use_cache=False)
    finally:
        configure(model, cfg, sparse_decode=sparse_decode)
        reset(model)
    if not entropy.per_layer():
        raise ValueError(
            f"calibrate_layer_budget: a prompt of {input_ids.shape[1]} tokens left no layer a "
            "block to drop (or no layer ran the sketch + walk); give a longer prompt"
        )
    budget = calibration.with_walk_entropy_budget(cfg, num_layers, entropy, power)
    configure(model, budget, sparse_decode=sparse_decode)
    return budget


def text_config(model):
    """The config of the model's text decoder (the model's own for a text-only model)."""
    mc = model.config
    return getattr(mc, "get_text_config", lambda: mc)()


def _check_model_supported(model) -> None:
    """Refuse, when configured rather than mid-forward, a model the kernels cannot serve."""
    text = text_config(model)
    heads = getattr(text, "num_attention_heads", None)
    head_dim = getattr(text, "head_dim", None) or (
        text.hidden_size // heads if heads and getattr(text, "hidden_size", None) else None
    )
    supported = _package().limits.ATTENTION_HEAD_DIMS  # the attention kernels' (include/)
    if head_dim is not None and head_dim not in supported:
        raise ValueError(
            f"sketchwalk: this model has head_dim {head_dim}; the sparse attention kernels are "
            f"built "
            f"for head_dim in {supported}. Keep attn_implementation='sdpa' for it."
        )


def get_config(model):
    """The SketchWalkConfig the model will use (defaults when none was configured)."""
    pkg = _package()
    raw = getattr(model.config, CONFIG_ATTR, None)
    return pkg.SketchWalkConfig(**raw) if raw else pkg.SketchWalkConfig()


def reset(model) -> None:
    """Forget the current sequence (the next forward must be a prefill)."""
    for c in _attention_configs(model):
        _runtime_for_config(c).reset()


def last_density(model, phase: str = "prefill") -> dict[int, float]:
    """Kept fraction of the causal area per layer for the latest sequence: `phase="prefill"`
    for its prefill, `"decode"` for the mean over its decode steps so far. Layers the
    package ran dense report 1.0 when the package records them, else are absent."""
    rt = _runtime_for_config(_attention_configs(model)[0])
    if phase == "prefill":
        density_of = _package().state.density_of
        return {
            k: sum(float(density_of(r)) for r in records) / len(records)
            for k, records in rt.prefill_density.items()
        }
    if phase == "decode":
        return {k: float(log.mean()) for k, log in rt.decode_density.items() if log.steps}
    raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
