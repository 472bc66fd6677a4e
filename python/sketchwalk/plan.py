"""A step's layout as data (StepPlan), and where knobs become op arguments (SelectionArgs).

SketchWalkConfig holds fractions; the selection ops take token counts and fractions resolved for
one phase (prefill, or a decode step of the keys4 or walk scorer). SelectionArgs is the one
place that resolves them, so the layer (attention.py), the benchmarks and the evaluation pass the
same arguments for the same phase (two benchmarks once timed their decode rows with the prefill
knobs: issue 20). It holds plain numbers: built per phase and length (StepPlan: once per step),
and per layer only where config.layer_keep_scale changes the keep fraction (at_layer).
"""

from __future__ import annotations

import dataclasses
import itertools

import torch

from .config import SketchWalkConfig


@dataclasses.dataclass(frozen=True)
class SelectionArgs:
    """The selection arguments of one phase at one key count (docs/spec.md sections 4, 6, 7).

    Fractions are the phase's (decode_* knobs in a decode step); token counts follow from them
    and ``num_keys`` as max(1, floor(frac * num_keys))."""

    keep_frac: float
    """Fraction of the candidate blocks kept by the quantile rule (kblocks_frac)."""
    window_frac: float
    sink_frac: float
    window_tokens: int
    """w: the local window, in tokens."""
    exclude_sink_tokens: int
    """Sink tokens removed from the candidate set."""
    attend_sink_tokens: int
    """Leading tokens every query attends: w in a prefill (the authors' rule, section 4),
    max(w, sink) in a decode step (section 6)."""
    dense_last_q_blocks: int
    """Trailing query blocks of a prefill that keep every causal block (0 in decode)."""

    @classmethod
    def prefill(
        cls, cfg: SketchWalkConfig, num_keys: int, layer_idx: int | None = None
    ) -> "SelectionArgs":
        """A prefill (or chunk) over num_keys keys: the prefill knobs, with layer layer_idx's keep
        fraction (cfg.layer_keep_frac) when given."""
        w = cfg.window_tokens(num_keys)
        return cls(
            cfg.layer_keep_frac(cfg.kblocks_frac, layer_idx),
            cfg.window_frac,
            cfg.sink_frac,
            w,
            cfg.sink_tokens(num_keys),
            w,
            cfg.dense_last_q_blocks,
        )

    @classmethod
    def decode(
        cls, cfg: SketchWalkConfig, num_keys: int = 1, layer_idx: int | None = None
    ) -> "SelectionArgs":
        """A decode step over num_keys keys: the decode knobs (decode_* else the prefill's), with
        layer layer_idx's keep fraction (cfg.layer_keep_frac) when given. The keys4 ops take the
        fractions and read lengths on the device, so num_keys matters only for the token counts
        of the walk scorer."""
        keep, window, sink = cfg.decode_fracs()
        w, s = cfg.decode_window_tokens(num_keys), cfg.decode_sink_tokens(num_keys)
        return cls(cfg.layer_keep_frac(keep, layer_idx), window, sink, w, s, max(w, s), 0)

    def at_layer(self, cfg: SketchWalkConfig, layer_idx: int) -> "SelectionArgs":
        """These arguments (made with layer_idx None, e.g. once per step by StepPlan) in layer
        layer_idx: the keep fraction scaled by cfg.layer_keep_scale, the rest unchanged."""
        keep = cfg.layer_keep_frac(self.keep_frac, layer_idx)
        return self if keep == self.keep_frac else dataclasses.replace(self, keep_frac=keep)

    def select_blocks_args(self, num_queries: int, num_keys: int, block_size: int) -> tuple:
        """ops.select_blocks's arguments after the scores: (num_queries, num_keys, block_size,
        keep_frac, window_tokens, exclude_sink_tokens, attend_sink_tokens, dense_last_q_blocks)."""
        return (
            num_queries,
            num_keys,
            block_size,
            self.keep_frac,
            self.window_tokens,
            self.exclude_sink_tokens,
            self.attend_sink_tokens,
            self.dense_last_q_blocks,
        )

    def keys4_fracs(self) -> tuple[float, float, float]:
        """ops.select_blocks_keys4's (keep_frac, window_frac, sink_frac)."""
        return self.keep_frac, self.window_frac, self.sink_frac


PHASES = ("prefill", "chunk", "decode")


@dataclasses.dataclass(frozen=True)
class SequenceStep:
    """One sequence of a step: its new queries and its keys after the step (cache included;
    the queries end at the last key)."""

    num_queries: int
    num_keys: int

    @property
    def phase(self) -> str:
        """ "prefill" (the whole prompt at once), "decode" (one new token on a cache) or "chunk"
        (several new tokens on a cache: chunked prefill, or a prompt continuing a cache)."""
        if self.num_queries == self.num_keys:
            return "prefill"
        return "decode" if self.num_queries == 1 else "chunk"


class StepPlan:
    """A step's layout as data: built once per forward (or engine step), read by every layer.

    Holds the sequences of the step (host lengths, known to the caller without a sync), their
    packed token offsets on the device (``cu_seqlens_q``, ``cu_seqlens_k``: int32 [num_seqs + 1],
    the flash-attn varlen convention) and key counts (``seq_lens_k``: int32 [num_seqs]), each
    sequence's phase, and the selection arguments of each phase (SelectionArgs: the only place
    knobs become op arguments). Layers never infer the phase from tensor shapes.

    ``query_lens`` / ``key_lens``: host ints per sequence (1 <= queries <= keys). The device
    copies are made once here, through pinned memory without a host synchronization.
    """

    def __init__(
        self,
        config: SketchWalkConfig,
        query_lens,
        key_lens,
        device: torch.device | str = "cpu",
        page_table: torch.Tensor | None = None,
        track_density: bool = True,
    ) -> None:
        query_lens, key_lens = [int(x) for x in query_lens], [int(x) for x in key_lens]
        if len(query_lens) != len(key_lens) or not query_lens:
            raise ValueError(
                f"StepPlan: query_lens and key_lens must name the same sequences (at "
                f"least one), got {len(query_lens)} and {len(key_lens)}"
            )
        for b, (tq, tk) in enumerate(zip(query_lens, key_lens)):
            if not 1 <= tq <= tk:
                raise ValueError(
                    f"StepPlan: sequence {b} has {tq} queries over {tk} keys; need "
                    "1 <= queries <= keys (queries end at the last key; a sequence "
                    "with no new token is not part of the step)"
                )
        self.config = config
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:  # "cuda": the current one,
            self.device = torch.device("cuda", torch.cuda.current_device())  # as tensors name it
        self.sequences = tuple(SequenceStep(tq, tk) for tq, tk in zip(query_lens, key_lens))
        self.max_seqlen_q = max(query_lens)
        self.max_seqlen_k = max(key_lens)
        self.total_q = sum(query_lens)
        self.total_k = sum(key_lens)
        b = config.block_size
        self.num_q_blocks = -(-self.max_seqlen_q // b)
        self.num_kv_blocks = -(-self.max_seqlen_k // b)
        lens = torch.tensor(
            [0, *itertools.accumulate(query_lens), 0, *itertools.accumulate(key_lens), *key_lens],
            dtype=torch.int32,
        )
        n = len(query_lens)
        lens = _to_device(lens, self.device)
        self.cu_seqlens_q = lens[: n + 1]
        self.cu_seqlens_k = lens[n + 1 : 2 * n + 2]
        self.seq_lens_k = lens[2 * n + 2 :]
        self.q_offsets = (0, *itertools.accumulate(query_lens))  # host copies of the cu_seqlens
        self.k_offsets = (0, *itertools.accumulate(key_lens))
        self.prefill_args = tuple(SelectionArgs.prefill(config, tk) for tk in key_lens)
        self.decode_args = SelectionArgs.decode(config)
        self._dense_index: tuple[torch.Tensor, torch.Tensor] | None = None
        if page_table is not None:
            pages_needed = -(-self.max_seqlen_k // config.block_size)
            if (
                page_table.dtype != torch.int32
                or page_table.dim() != 2
                or page_table.shape[0] != n
                or page_table.shape[1] < pages_needed
                or page_table.device != self.device
            ):
                raise ValueError(
                    f"StepPlan: page_table must be int32 [num_seqs={n}, max_pages >= "
                    f"{pages_needed}] on {self.device}, got {page_table.dtype} "
                    f"{tuple(page_table.shape)} on {page_table.device}"
                )
        self.page_table = page_table
        """int32 [num_seqs, max_pages] or None: where the keys live (block j of sequence b in page
        page_table[b, j] of the caller's pools), or packed rows (cu_seqlens_k)."""
        # Per-forward, per-sequence states of the prefill / chunk sequences of a paged step (the
        # walk carried from layer to layer, and the density), made on first use (paged.py).
        self.forward_states: dict[int, object] = {}
        self.track_density = track_density  # prefill / chunk densities (SketchWalkState's flag)
        self._decode: tuple | None = None
        self._decode_last_keys: torch.Tensor | None = None
        self.decode_ids: torch.Tensor | None = None
        self._selection: tuple | None = None
        # The walk carried between consecutive sparse layers of a ragged step's batched selection
        # (ragged.select_varlen_blocks): (layer_idx, W [rows, N, N]) or None.
        self.carried_walk: tuple[int, torch.Tensor] | None = None
        # Made now, not on first use: a step captured in a CUDA graph must not copy host data.
        self.decode_rows()
        self.dense_index()
        self.selection_args()

    @property
    def num_seqs(self) -> int:
        return len(self.sequences)

    def phases(self) -> tuple[str, ...]:
        return tuple(s.phase for s in self.sequences)

    def dense_index(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every causal block of every sequence as a block index [num_seqs, 1, num_q_blocks,
        num_kv_blocks] (block_index.h), for the dense layers of a ragged step (one varlen call
        computes exact causal attention). Made once, with the plan."""
        if self._dense_index is None:
            b = self.config.block_size
            index = torch.arange(self.num_kv_blocks, dtype=torch.int32, device=self.device)
            index = index.expand(self.num_seqs, 1, self.num_q_blocks, -1).contiguous()
            rows = torch.arange(self.num_q_blocks, dtype=torch.int64)
            counts = []
            for s in self.sequences:  # host lengths: the count of row i is causal_limit(i) + 1
                last_q = torch.clamp(rows * b + b - 1, max=max(s.num_queries - 1, 0))
                count = (s.num_keys - s.num_queries + last_q) // b + 1
                counts.append(torch.where(rows * b < s.num_queries, count, 0))
            count = _to_device(torch.stack(counts).to(torch.int32)[:, None], self.device)
            self._dense_index = (index, count)
        return self._dense_index

    def decode_rows(
        self,
    ) -> tuple[list[int], torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The decode sequences of the step, batched: (their indices, their query rows in the
        packed q (device int64), their key counts (int32), their page-table rows), or
        ([], None, None, None). Made once, with the plan."""
        if self._decode is None:
            rows = [b for b, s in enumerate(self.sequences) if s.phase == "decode"]
            if not rows:
                self._decode = ([], None, None, None)
            else:
                idx = _to_device(torch.tensor(rows, dtype=torch.int64), self.device)
                q_rows = _to_device(
                    torch.tensor([self.q_offsets[b] for b in rows], dtype=torch.int64), self.device
                )
                lens = self.seq_lens_k.index_select(0, idx)
                table = None if self.page_table is None else self.page_table.index_select(0, idx)
                self._decode = (rows, q_rows, lens, table)
                self.decode_ids = idx  # the decode sequences' indices on the device (int64)
        return self._decode

    def check_device(self, op: str, q: torch.Tensor) -> None:
        """Raises when the step's tensors are not on the device the plan's index tensors are."""
        if q.device != self.device:
            raise ValueError(
                f"{op}: argument 'plan' was made for {self.device}, argument 'q' is on "
                f"{q.device}: make it with StepPlan(..., device=q.device)"
            )

    def decode_last_keys(self) -> torch.Tensor:
        """The packed row of each decode sequence's new (last) key, in decode_rows() order
        (device int64). Made once, with the plan."""
        if self._decode_last_keys is None:
            rows = self.decode_rows()[0]
            last = [self.k_offsets[b + 1] - 1 for b in rows]
            self._decode_last_keys = _to_device(torch.tensor(last, dtype=torch.int64), self.device)
        return self._decode_last_keys

    def selection_args(
        self,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """The batched selection's per-sequence arguments on the device (ragged.py):
        (num_kv_blocks int32 [num_seqs]; seq_args int32 [num_seqs, 5], ops.select_blocks_varlen's
        (num_queries, num_keys, window_tokens, exclude_sink_tokens, attend_sink_tokens) from each
        sequence's prefill SelectionArgs; walked bool [num_seqs], True for a prefill, or None when
        every sequence is one; selected int32 [num_seqs], 1 for a prefill or chunk, or None when
        none decodes; prefill_q_blocks int32 [num_seqs], a prefill's query blocks and 0 for a
        chunk or decode, ops.query_spread_rows' seq_q_blocks). Made once, with the plan."""
        if self._selection is None:
            b = self.config.block_size
            args = [
                [
                    s.num_queries,
                    s.num_keys,
                    a.window_tokens,
                    a.exclude_sink_tokens,
                    a.attend_sink_tokens,
                ]
                for s, a in zip(self.sequences, self.prefill_args)
            ]
            phases = self.phases()
            host = torch.tensor(
                [
                    [-(-s.num_keys // b), *a, -(-s.num_queries // b) if s.phase == "prefill" else 0]
                    for s, a in zip(self.sequences, args)
                ],
                dtype=torch.int32,
            )
            dev = _to_device(host, self.device)
            walked = None
            if "chunk" in phases:
                walked = _to_device(torch.tensor([p == "prefill" for p in phases]), self.device)
            selected = None
            if "decode" in phases:
                selected = _to_device(
                    torch.tensor([p != "decode" for p in phases], dtype=torch.int32), self.device
                )
            self._selection = (
                dev[:, 0].contiguous(),
                dev[:, 1:6].contiguous(),
                walked,
                selected,
                dev[:, 6].contiguous(),
            )
        return self._selection

    def empty_index(self, heads: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A block index of the step with no block selected: [num_seqs, heads, num_q_blocks,
        width] of -1 and num_selected [num_seqs, heads, num_q_blocks] of 0 (block_index.h)."""
        shape = (self.num_seqs, heads, self.num_q_blocks)
        index = torch.full((*shape, width), -1, dtype=torch.int32, device=self.device)
        return index, torch.zeros(shape, dtype=torch.int32, device=self.device)

    def pad_index(self, rows: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence selections (block_index [1, G, Nq_b, W_b], num_selected [1, G, Nq_b]), or
        None for a sequence with none (a decode step), as one index [num_seqs, G, num_q_blocks,
        max W_b] (block_index.h): padded with -1, num_selected 0 where a sequence has no row."""
        live = [r for r in rows if r is not None]
        index, count = self.empty_index(live[0][0].shape[1], max(r[0].shape[3] for r in live))
        for b, r in enumerate(rows):
            if r is not None:
                index[b, :, : r[0].shape[2], : r[0].shape[3]] = r[0][0]
                count[b, :, : r[1].shape[2]] = r[1][0]
        return index, count


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small host tensor on `device` without a host synchronization (pinned, non-blocking)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
