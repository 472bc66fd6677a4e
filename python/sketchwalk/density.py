"""The density actually achieved (the kept fraction of what dense attention would compute),
for prefill and decode, as 0-dim float64 tensors on the index's device (no host sync).
Shared by the layer (attention.py) and the state (state.py), so neither imports the other."""

from __future__ import annotations

import functools

import torch


def _last_block_keys(num_keys, block_size: int):
    """Keys in the last (possibly partial) block of num_keys keys: an int, or an integer tensor
    of lengths elementwise."""
    return num_keys - ((num_keys + block_size - 1) // block_size - 1) * block_size


def decode_density_per_row(num_selected: torch.Tensor, seq_lens: torch.Tensor,
                           block_size: int) -> torch.Tensor:
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


@functools.lru_cache(maxsize=32)
def _visible_area(num_queries: int, num_keys: int, block_size: int, device_str: str) -> torch.Tensor:
    """[Nq, Nk] float64: causal (query, key) pairs inside each block pair (closed form)."""
    device = torch.device(device_str)
    nq, nk = -(-num_queries // block_size), -(-num_keys // block_size)
    i = torch.arange(nq, device=device, dtype=torch.float64)[:, None]
    j = torch.arange(nk, device=device, dtype=torch.float64)[None, :]
    offset = num_keys - num_queries
    p0 = i * block_size + offset
    p1 = torch.clamp((i + 1) * block_size, max=num_queries) - 1 + offset
    k0 = j * block_size
    length = torch.clamp((j + 1) * block_size, max=num_keys) - k0

    def partial_sum(x):  # sum_{y=1..x} clamp(y, 0, length), 0 for x <= 0
        x = torch.clamp(x, min=0)
        inside = torch.minimum(x, length)
        return inside * (inside + 1) / 2 + (x - inside) * length

    return partial_sum(p1 - k0 + 1) - partial_sum(p0 - k0)


def prefill_density(block_index: torch.Tensor, num_selected: torch.Tensor, num_queries: int,
                    block_size: int, num_keys: int | None = None) -> torch.Tensor:
    """Kept fraction of the causal area (0-dim float64 tensor), averaged over index heads and batch."""
    num_keys = num_queries if num_keys is None else num_keys
    area = _visible_area(num_queries, num_keys, block_size, str(block_index.device))
    nk = area.shape[1]
    slots = torch.arange(block_index.shape[-1], device=block_index.device)
    used = slots < num_selected.unsqueeze(-1)
    mask = torch.zeros((*block_index.shape[:3], nk + 1), dtype=torch.float64, device=block_index.device)
    idx = torch.where(used, block_index.long(), nk)  # padding goes to a spare column
    mask.scatter_(-1, idx, 1.0)
    kept = (mask[..., :nk] * area).sum(dim=(-1, -2))
    return (kept / area.sum()).mean()
