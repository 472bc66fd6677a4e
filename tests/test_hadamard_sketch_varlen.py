"""hadamard_sketch_varlen (packed sequences, cu_seqlens) against the float64 reference, and bitwise
against hadamard_sketch of each sequence alone."""

import pytest
import torch

import reference as R
from conftest import device_params
from tolerances import assert_close64
from utils import assert_raises_naming, cu_seqlens, ops, reuse_poisoned, sketch_params

# Odd lengths on purpose: 1 token, one short of a block, one past it, several blocks.
RAGGED_LENS = [(1,), (63, 65, 1), (130, 7, 64, 200)]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("lens", RAGGED_LENS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_hadamard_sketch_varlen_matches_reference(device, lens, dtype):
    heads, d, b = 3, 64, 64
    x = torch.randn(sum(lens), heads, d, device=device).to(dtype)
    cu = cu_seqlens(lens, device)
    max_blocks = max(R.ceil_div(n, b) for n in lens) + 1  # one spare block: must be zeros
    for m in (64, 17):
        signs, coords = sketch_params(d, m, device, seed=m)
        reuse_poisoned(len(lens) * heads * max_blocks * m * 4, device)
        got = ops().hadamard_sketch_varlen(x, signs, coords, b, cu, max_blocks)
        exp = R.hadamard_sketch_varlen(x, signs, coords, b, cu.cpu(), max_blocks)
        assert got.shape == (len(lens), heads, max_blocks, m) and got.dtype == torch.float32
        assert_close64(got, exp, scale_atol=10, msg=f"m={m}")
        for s, n in enumerate(lens):  # exactly zero past each sequence's blocks
            assert torch.all(got[s, :, R.ceil_div(n, b) :] == 0)


@pytest.mark.parametrize("device", device_params())
def test_hadamard_sketch_varlen_equals_per_sequence_sketch(device):
    # The same kernel over each sequence's rows: bitwise equal to hadamard_sketch of that
    # sequence alone (same arithmetic, same order).
    lens = (100, 64, 3)
    x = torch.randn(sum(lens), 2, 128, device=device, dtype=torch.float16)
    signs, coords = sketch_params(128, 128, device)
    got = ops().hadamard_sketch_varlen(x, signs, coords, 64, cu_seqlens(lens, device), 2)
    t0 = 0
    for s, n in enumerate(lens):
        alone = ops().hadamard_sketch(x[t0 : t0 + n].transpose(0, 1)[None], signs, coords, 64)[0]
        assert torch.equal(got[s, :, : alone.shape[1]], alone)
        t0 += n


def test_hadamard_sketch_varlen_errors_name_the_argument():
    d = 64
    signs, coords = sketch_params(d, d, "cpu")
    x = torch.randn(10, 2, d)
    cu = cu_seqlens((4, 6), "cpu")
    sketch = ops().hadamard_sketch_varlen
    assert_raises_naming(lambda: sketch(x[None], signs, coords, 64, cu, 1), "x")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, cu.long(), 1), "cu_seqlens")
    assert_raises_naming(
        lambda: sketch(x, signs, coords, 64, cu_seqlens((4, 5), "cpu"), 1), "cu_seqlens"
    )
    assert_raises_naming(
        lambda: sketch(x, signs, coords, 64, cu_seqlens((6, 4), "cpu").flip(0), 1), "cu_seqlens"
    )
    assert_raises_naming(lambda: sketch(x, signs, coords, 4, cu, 1), "max_blocks")
    assert_raises_naming(lambda: sketch(x, signs, coords, 64, cu, -1), "max_blocks")
