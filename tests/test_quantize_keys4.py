"""quantize_keys4_ (docs/spec.md section 7) against the float64 reference: the rows written,
byte for byte, and nothing else."""

import pytest
import torch

import reference as R
from conftest import device_params
from keys4_utils import POISON_CODE, empty_cache
from utils import SEQ_LENS, ops


def check_rows(codes, scales, k, rows_of_batch):
    """Rows rows_of_batch[b] of the cache hold k[b] encoded exactly as the reference; all
    other rows still hold the poison."""
    ref_codes, ref_scales = R.quantize_keys4(k.cpu())
    packed = R.pack_keys4(ref_codes).to(codes.device)
    written = torch.zeros(codes.shape[:3], dtype=torch.bool, device=codes.device)
    for b, rows in enumerate(rows_of_batch):
        assert torch.equal(codes[b, :, rows], packed[b]), f"codes of batch row {b}"
        got, want = scales[b, :, rows], ref_scales[b].to(scales.device)
        assert torch.equal(got, want), (
            f"scales of batch row {b}: max diff {(got - want).abs().max()}"
        )
        written[b, :, rows] = True
    assert (codes[~written] == POISON_CODE).all(), "a row outside the write was touched"
    assert torch.isnan(scales[~written]).all(), "a scale outside the write was touched"


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", SEQ_LENS)
@pytest.mark.parametrize("head_dim", [2, 64, 96, 128, 256])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_quantize_keys4_prefill_rows(device, tokens, head_dim, dtype):
    k = (torch.randn(2, 3, tokens, head_dim, device=device) * 3).to(dtype)
    codes, scales = empty_cache(2, 3, tokens + 7, head_dim, device)
    ops().quantize_keys4_(codes, scales, k)
    check_rows(codes, scales, k, [slice(0, tokens)] * 2)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("tokens", [1, 5])
def test_quantize_keys4_appends_at_seq_lens(device, tokens):
    lens = [tokens, 70, 129]
    k = torch.randn(3, 2, tokens, 128, device=device, dtype=torch.bfloat16)
    codes, scales = empty_cache(3, 2, 130, 128, device)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=device)
    ops().quantize_keys4_(codes, scales, k, seq_lens)
    check_rows(codes, scales, k, [slice(n - tokens, n) for n in lens])


@pytest.mark.parametrize("device", device_params())
def test_quantize_keys4_strided_input_and_special_values(device):
    # Ties at .5 round half to even, an all-zero row gets scale 0 and codes 0, a NaN value
    # code 0 (amax skips it), an inf value makes the scale inf; the input is a strided view.
    base = torch.randn(1, 2, 9, 64, device=device)
    base[0, 0, 0, :4] = torch.tensor([7.0, 3.5, -2.5, 0.5])
    base[0, 0, 0, 4:] = 0.25
    base[0, 0, 1] = 0.0
    base[0, 1, 2, 5] = float("nan")
    base[0, 1, 3, 7] = float("inf")
    big = torch.zeros(1, 3, 12, 64, device=device)
    k = big[:, :2, :9]
    k.copy_(base)
    codes, scales = empty_cache(1, 2, 9, 64, device)
    ops().quantize_keys4_(codes, scales, k)
    check_rows(codes, scales, k, [slice(0, 9)])
    unpacked = R.unpack_keys4(codes[0, 0, 0].cpu())
    assert unpacked[:4].tolist() == [7, 4, -2, 0]  # 3.5 -> 4, -2.5 -> -2, 0.5 -> 0 (half to even)
    assert scales[0, 0, 1] == 0 and (R.unpack_keys4(codes[0, 0, 1].cpu()) == 0).all()
