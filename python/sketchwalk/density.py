"""The density actually achieved (the kept fraction of what dense attention would compute),
for prefill and decode, as 0-dim float64 tensors on the index's device (no host sync).
Shared by the layer (attention.py) and the state (state.py), so neither imports the other."""

from __future__ import annotations

import torch


def _last_block_keys(num_keys, block_size: int):
    """Keys in the last (possibly partial) block of num_keys keys: an int, or an integer tensor
    of lengths elementwise."""
    return num_keys - ((num_keys + block_size - 1) // block_size - 1) * block_size


def decode_density_per_row(
    num_selected: torch.Tensor, seq_lens: torch.Tensor, block_size: int
) -> torch.Tensor:
    """decode_density with a length per batch row on the device (fixed-capacity caches):
    num_selected [batch, index_heads, 1], seq_lens int32 [batch]."""
    lens = seq_lens.long()
    last = _last_block_keys(lens, block_size).double()
    kept = (num_selected.double() - 1) * block_size + last.view(-1, 1, 1)
    return (kept / lens.double().view(-1, 1, 1)).mean()


def decode_density(num_selected: torch.Tensor, num_keys: int, block_size: int) -> torch.Tensor:
    """Kept fraction of the keys of a decode step (0-dim float64), averaged over batch and heads.

    The query's own (last, possibly partial) block is always kept (window), so the kept keys
    are (num_selected - 1) full blocks plus the last block's keys."""
    last = _last_block_keys(num_keys, block_size)
    return ((num_selected.double() - 1) * block_size + last).mean() / num_keys


def _causal_pairs(
    j: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, num_keys: int, block_size: int
) -> torch.Tensor:
    """int64: causal (query, key) pairs of key block j against the queries at positions
    [p0, p1] (elementwise, broadcast): sum over p of clamp(p - k0 + 1, 0, len_j)."""
    k0 = j * block_size
    length = torch.clamp(num_keys - k0, max=block_size)

    def partial_sum(x):  # sum_{y=1..x} clamp(y, 0, length), 0 for x <= 0
        x = torch.clamp(x, min=0)
        inside = torch.minimum(x, length)
        return inside * (inside + 1) // 2 + (x - inside) * length

    return partial_sum(p1 - k0 + 1) - partial_sum(p0 - k0)


def kept_block_tails(block_index: torch.Tensor, num_selected: torch.Tensor) -> torch.Tensor:
    """What prefill_density reads of an index: per row, its last and next-to-last kept block ids
    (int64 [..., rows, 2]; garbage where a row keeps fewer, which the count masks). A few small
    launches, and the index can be let go: the layer keeps this instead (O(rows), not O(rows x
    key blocks)) and computes the density only when it is read."""
    if block_index.shape[-1] == 0:
        return num_selected.new_zeros((*num_selected.shape, 2), dtype=torch.int64)
    back = torch.arange(1, 3, device=num_selected.device)  # slots count - 1 and count - 2
    slot = (num_selected.long().unsqueeze(-1) - back).clamp_(min=0)
    return block_index.gather(-1, slot).long()


def prefill_density(
    block_index: torch.Tensor,
    num_selected: torch.Tensor,
    num_queries: int,
    block_size: int,
    num_keys: int | None = None,
) -> torch.Tensor:
    """Kept fraction of the causal area (0-dim float64 tensor), averaged over index heads and batch.

    Reads the index as its contract has it (docs/ops.md): each row's used entries ascending,
    distinct and causal. Then every kept block is seen whole by all the row's queries except
    at most the row's last two (those reaching past its first query), so the count is exact
    integer arithmetic per row: memory O(batch x heads x rows), no [rows, key blocks] map (the
    dense float64 one this replaced took 2 GiB at 1M tokens, plus five temporaries its size)."""
    return prefill_density_from_tails(
        kept_block_tails(block_index, num_selected), num_selected, num_queries, block_size, num_keys
    )


def prefill_density_from_tails(
    tails: torch.Tensor,
    num_selected: torch.Tensor,
    num_queries: int,
    block_size: int,
    num_keys: int | None = None,
) -> torch.Tensor:
    """prefill_density from kept_block_tails(block_index, num_selected) (the index let go)."""
    num_keys = num_queries if num_keys is None else num_keys
    device = num_selected.device
    b = block_size
    nk = -(-num_keys // b)
    offset = num_keys - num_queries
    # Every causal pair: query t (position offset + t) sees offset + t + 1 keys.
    total = num_queries * (offset + 1) + num_queries * (num_queries - 1) // 2
    i = torch.arange(num_selected.shape[2], device=device, dtype=torch.int64)
    p0 = i * b + offset  # first query of row i
    p1 = torch.clamp((i + 1) * b, max=num_queries) - 1 + offset  # last query of row i
    rows = p1 - p0 + 1
    count = num_selected.long()
    # Each kept block as if whole for every query of the row: rows x its length (all b but
    # the last block's), then the exact pairs of the row's last two kept blocks.
    last = tails[..., 0]
    short = torch.where((count >= 1) & (last == nk - 1), b - (num_keys - (nk - 1) * b), 0)
    kept = rows * (b * count - short)
    for back in (1, 2):
        j = tails[..., back - 1]
        whole = rows * torch.clamp(num_keys - j * b, max=b)
        fix = _causal_pairs(j, p0, p1, num_keys, b) - whole
        kept = kept + torch.where(count >= back, fix, 0)
    # A tensor divisor: CUDA divides by a Python scalar as a multiply by its reciprocal.
    total = torch.full((), total, dtype=torch.float64, device=device)
    return (kept.sum(-1).double() / total).mean()


class DecodeDensityLog:
    """The mean density of one layer's decode steps with no work per step: each step's
    num_selected and key counts are kept as they are, and every ``fold_every`` steps (or when the
    mean is read) the kept steps' densities are computed together (about a dozen launches for
    all of them) and added to a sum on the device. decode_density_per_row's arithmetic."""

    def __init__(self, block_size: int, fold_every: int = 256) -> None:
        self.block_size = block_size
        self.fold_every = fold_every
        self.steps = 0
        self._pending: list[tuple[torch.Tensor, object]] = []
        self._total: torch.Tensor | float = 0.0

    def add(self, num_selected: torch.Tensor, lens) -> None:
        """One step: num_selected [batch, index_heads, 1]; lens the key count of every row (an
        int), of each row (host ints), or an int tensor [batch] on the device that is not
        changed afterwards (the caller clones one it updates in place)."""
        self._pending.append((num_selected, lens))
        self.steps += 1
        if len(self._pending) >= self.fold_every:
            self.fold()

    def add_value(self, density) -> None:
        """One step whose density is known (a float, or a 0-dim tensor): 1.0 for a dense step."""
        self.fold()
        self._total = self._total + density
        self.steps += 1

    def fold(self) -> None:
        """Compute the kept steps' densities, grouped by shape, and add them to the sum."""
        groups: dict[tuple, list] = {}
        for count, lens in self._pending:
            groups.setdefault((tuple(count.shape), isinstance(lens, torch.Tensor)), []).append(
                (count, lens)
            )
        self._pending = []
        for (shape, on_device), items in groups.items():
            counts = torch.stack([c for c, _ in items]).double()  # [steps, batch, heads, 1]
            if on_device:
                lens = torch.stack([n for _, n in items]).long()
            else:
                rows = [[n] * shape[0] if isinstance(n, int) else list(n) for _, n in items]
                lens = torch.tensor(rows, dtype=torch.int64)
                if counts.is_cuda:  # pinned and non-blocking: no host synchronization
                    lens = lens.pin_memory().to(counts.device, non_blocking=True)
            last = _last_block_keys(lens, self.block_size).double()
            kept = (counts - 1) * self.block_size + last[:, :, None, None]
            self._total = (
                self._total + (kept / lens.double()[:, :, None, None]).mean(dim=(1, 2, 3)).sum()
            )

    def mean(self):
        """The mean density over the steps so far (a 0-dim tensor, or a float), or None."""
        if self.steps == 0:
            return None
        self.fold()
        return self._total / self.steps
