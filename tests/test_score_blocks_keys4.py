"""score_blocks_keys4 (docs/spec.md section 7) against the float64 reference: block masses
per kv group from the 4-bit keys, rows past seq_lens ignored."""

import pytest
import torch

import reference as R
from conftest import device_params
from keys4_utils import empty_cache
from utils import (
    GQA,
    SEQ_LENS,
    B,  # the one block-size constant
    ops,
)


def random_cache(batch, hkv, capacity, head_dim, device, dtype=torch.bfloat16):
    k = torch.randn(batch, hkv, capacity, head_dim, device=device).to(dtype)
    codes, scales = empty_cache(batch, hkv, capacity, head_dim, device)
    ops().quantize_keys4_(codes, scales, k)
    return k, codes, scales


def check_mass(mass, q, codes, scales, seq_lens, softmax_scale=None):
    lens = None if seq_lens is None else seq_lens.tolist()
    ref = R.score_blocks_keys4(
        q.cpu(), R.unpack_keys4(codes.cpu()), scales.cpu(), lens, softmax_scale
    )
    assert mass.shape == ref.shape and mass.dtype == torch.float32
    got = mass.cpu().double()
    # fp32 accumulation and exp2 on the GPU against float64: masses lie in [0, group].
    group = q.shape[1] // codes.shape[1]
    err = (got - ref).abs().max().item()
    assert err <= 2e-5 * group + 1e-4 * ref.abs().max().item(), f"max abs err {err}"
    cap = codes.shape[2]
    for b in range(q.shape[0]):
        n = R.ceil_div(cap if lens is None else lens[b], B)
        assert (got[b, :, n:] == 0).all(), "mass past the sequence must be 0"
        assert torch.allclose(
            got[b, :, :n].sum(-1), torch.full_like(got[b, :, 0], group), rtol=1e-4
        ), "each head's softmax sums to 1"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("capacity", SEQ_LENS + [3000])
@pytest.mark.parametrize("hq,hkv", GQA + [(16, 1), (6, 2)])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_score_blocks_keys4_matches_reference(device, capacity, hq, hkv, head_dim, dtype):
    _, codes, scales = random_cache(2, hkv, capacity, head_dim, device)
    q = (torch.randn(2, hq, 1, head_dim, device=device) * 2).to(dtype)
    lens = torch.tensor([capacity, max(1, capacity - 61)], dtype=torch.int32, device=device)
    check_mass(ops().score_blocks_keys4(q, codes, scales, lens), q, codes, scales, lens)
    check_mass(ops().score_blocks_keys4(q, codes, scales, None, 0.3), q, codes, scales, None, 0.3)


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_keys4_ignores_rows_past_length(device):
    # Garbage past seq_lens (all-NaN scales, extreme codes) must not change the mass.
    _, codes, scales = random_cache(1, 2, 500, 64, device)
    q = torch.randn(1, 4, 1, 64, device=device, dtype=torch.bfloat16)
    lens = torch.tensor([301], dtype=torch.int32, device=device)
    want = ops().score_blocks_keys4(q, codes, scales, lens)
    codes[:, :, 301:] = 0xFF
    scales[:, :, 301:] = float("nan")
    got = ops().score_blocks_keys4(q, codes, scales, lens)
    assert torch.equal(got, want)


@pytest.mark.parametrize("device", device_params())
def test_score_blocks_keys4_finds_a_planted_key(device):
    # One key equal to a multiple of the query in block 11 of 40 takes most of the mass.
    _, codes, scales = random_cache(1, 1, 40 * B, 128, device)
    q = torch.randn(1, 4, 1, 128, device=device)
    needle = torch.zeros(1, 1, 1, 128, device=device)
    needle[..., :] = q[:, :1] * 8
    lens = torch.tensor([40 * B], dtype=torch.int32, device=device)
    k_new = needle.to(torch.bfloat16)
    ops().quantize_keys4_(
        codes, scales, k_new, torch.tensor([11 * B + 5], dtype=torch.int32, device=device)
    )
    mass = ops().score_blocks_keys4(q.to(torch.bfloat16), codes, scales, lens)
    assert int(mass[0, 0].argmax()) == 11
