"""The 4-bit key cache of the keys4 tests (layout in include/sketchwalk/keys4.h), empty:
codes 0 (a byte no written row holds) and NaN scales, so a write outside its rows shows."""

import torch

from conftest import poison

POISON_CODE = 0  # nibble 0 never occurs in a written row (codes are stored as code + 8)


def empty_cache(batch, hkv, capacity, head_dim, device):
    codes = torch.full(
        (batch, hkv, capacity, head_dim // 2), POISON_CODE, dtype=torch.uint8, device=device
    )
    scales = poison(torch.empty(batch, hkv, capacity, device=device))
    return codes, scales
