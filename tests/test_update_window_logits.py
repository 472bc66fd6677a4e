"""update_window_logits_ (the decode walk's cached window logits) against the reference, on
NaN-poisoned buffers, and with window_block_scores over decode steps against the spec's scores."""

import pytest
import torch

import reference as R
from conftest import device_params, poison, strided_copy
from tolerances import assert_close64
from utils import (
    B,  # the one block-size constant
    ops,
)


def _touched(shape, num_blocks, slot, device):
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    if slot < 0:
        mask[..., :num_blocks] = True
    else:
        mask[:, :, slot, :num_blocks] = True
        mask[..., num_blocks - 1] = True
    return mask


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize(
    "num_blocks,window,hq,hkv,m,slot",
    [
        (1, 1, 1, 1, 32, 0),
        (63, 32, 4, 1, 128, 5),
        (65, 32, 6, 2, 100, 31),  # sketch_dim not a multiple of 32
        (130, 5, 2, 2, 1, 4),  # sketch_dim 1
        (700, 33, 8, 8, 256, 32),  # W > 32: two slot chunks in the column pass
        (64, 7, 2, 1, 30, 6),  # sketch_dim % 4 != 0: the scalar path on CUDA
        (97, 32, 4, 2, 200, 0),  # 16-byte path with a partial second chunk
        (65, 32, 4, 1, 128, -1),  # seeding: every row
        (2, 40, 3, 1, 64, -1),
    ],
)
@pytest.mark.parametrize("strided", [False, True])
def test_update_window_logits(device, num_blocks, window, hq, hkv, m, slot, strided):
    cap = num_blocks + 5
    logits = torch.randn(2, hq, window, cap, device=device)
    touched = _touched(logits.shape, num_blocks, slot, device)
    logits[touched] = float("nan")  # must be written
    poison(logits[..., num_blocks:])  # past the live blocks: never written
    qw = torch.randn(2, hq, window, m, device=device)
    kb = torch.randn(2, hkv, cap, m, device=device)
    poison(kb[:, :, num_blocks:])  # never read
    if strided:
        qw, kb = strided_copy(qw), strided_copy(kb)
    c = 0.11
    before = logits.clone()
    expected = R.update_window_logits(before, qw, kb, num_blocks, slot, c)
    ops().update_window_logits_(logits, qw, kb, num_blocks, slot, c)
    assert torch.isfinite(logits[touched]).all(), "an entry to refresh was not written"
    assert_close64(logits[touched], expected[touched], scale_atol=10)
    assert torch.equal(logits[~touched].isnan(), before[~touched].isnan())
    assert torch.equal(logits[~touched].nan_to_num(), before[~touched].nan_to_num()), (
        "entries outside the new row and the last column changed"
    )


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("window", [8, 32])
def test_window_logits_track_spec_scores_over_steps(device, window):
    # Seed after a prefill, then per step push the new query and refresh one row and one
    # column: r from the cache equals docs/spec.md's step 1 recomputed from scratch, across block
    # boundaries (tokens 128 and 192) and with the ring buffer wrapping.
    hq, hkv, d, m, c = 4, 2, 64, 64, 0.09
    tokens, steps = 120, 80
    signs, coords = ops().sketch_transform(d, m, seed=0, device=device)
    q = torch.randn(1, hq, tokens + steps, d, device=device) * 2
    k = torch.randn(1, hkv, tokens + steps, d, device=device) * 2
    cap = R.ceil_div(tokens + steps, B)
    kb = torch.zeros(1, hkv, cap, m, device=device)
    kb[:, :, : R.ceil_div(tokens, B)] = ops().hadamard_sketch(k[:, :, :tokens], signs, coords, B)
    win = ops().hadamard_sketch(q[:, :, tokens - window : tokens], signs, coords, 1).contiguous()
    logits = poison(torch.empty(1, hq, window, cap, device=device))
    ops().update_window_logits_(logits, win, kb, R.ceil_div(tokens, B), -1, c)
    pushes = window
    for t in range(tokens, tokens + steps):
        n = R.ceil_div(t + 1, B)
        ops().update_block_sketch_(
            kb, ops().hadamard_sketch(k[:, :, t : t + 1], signs, coords, 1), t, B
        )
        ops().push_query_window_(
            win, ops().hadamard_sketch(q[:, :, t : t + 1], signs, coords, 1), pushes
        )
        ops().update_window_logits_(logits, win, kb, n, pushes % window, c)
        pushes += 1
        r = ops().window_block_scores(logits, window, n)
        qs = R.hadamard_sketch(q[:, :, t + 1 - window : t + 1], signs, coords, 1)
        ks = R.hadamard_sketch(k[:, :, : t + 1], signs, coords, B)
        expected = R.score_blocks(qs, ks, c).mean(dim=1)
        assert_close64(r, expected, scale_atol=10, msg=f"token {t}")


# select_decode_blocks_: the whole selection half of a decode step (CUDA: the fused launch
# sequence of csrc/cuda/select_decode_blocks.cpp; CPU: the composition of
# csrc/composite/select_decode_blocks.cpp).
