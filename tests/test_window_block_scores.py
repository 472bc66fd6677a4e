"""window_block_scores (the decode walk's block scores from the cached window logits) against
the reference."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from tolerances import assert_close64
from utils import ops


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize(
    "num_blocks,window,window_fill,hq",
    [
        (1, 1, 1, 1),
        (63, 32, 32, 4),
        (65, 32, 7, 6),
        (130, 40, 40, 3),
        (1000, 32, 1, 32),
        (2049, 32, 32, 32),
    ],
)
@pytest.mark.parametrize("aligned", [False, True])
def test_window_block_scores(device, num_blocks, window, window_fill, hq, aligned):
    cap = R.ceil_div(num_blocks + 3, 16) * 16 if aligned else num_blocks + 3  # CUDA: float4 rows
    logits = torch.randn(2, hq, window, cap, device=device) * 3
    poison(logits[..., num_blocks:])  # never read
    poison(logits[:, :, window_fill:])
    expected = R.window_block_scores(logits, window_fill, num_blocks)
    r = ops().window_block_scores(logits, window_fill, num_blocks)
    assert r.shape == (2, num_blocks) and r.dtype == torch.float32 and r.device == logits.device
    assert_close64(r, expected, scale_atol=10)
    torch.testing.assert_close(
        r.double().sum(-1), torch.ones(2, dtype=torch.float64, device=device), atol=1e-5, rtol=0
    )
