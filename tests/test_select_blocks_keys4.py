"""select_blocks_keys4 (docs/spec.md section 7) against the float64 reference: sink, window
and quantile rule per kv group, ties, NaN and edge lengths."""

import pytest
import torch

import reference as R
from conftest import device_params
from utils import (
    B,  # the one block-size constant
    ops,
)


def check_select(mass, seq_lens, keep_frac, window_frac, sink_frac):
    idx, cnt = ops().select_blocks_keys4(mass, seq_lens, keep_frac, window_frac, sink_frac)
    lens = None if seq_lens is None else seq_lens.tolist()
    _, ref_idx, ref_cnt = R.select_blocks_keys4(mass.cpu(), lens, keep_frac, window_frac, sink_frac)
    assert idx.shape == ref_idx.shape and idx.dtype == torch.int32
    assert torch.equal(cnt.cpu(), ref_cnt), (
        f"counts {cnt.flatten().tolist()} vs {ref_cnt.flatten().tolist()}"
    )
    assert torch.equal(idx.cpu(), ref_idx)
    return idx, cnt


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("width", [1, 2, 5, 63, 64, 65, 300, 2048])
@pytest.mark.parametrize("keep_frac", [0.0, 0.05, 0.125, 0.5, 1.0])
def test_select_blocks_keys4_matches_reference(device, width, keep_frac):
    mass = torch.rand(3, 4, width, device=device)  # distinct float32 values
    lens = torch.tensor(
        [width * B, max(1, width * B - 100), max(1, (width * B) // 3)],
        dtype=torch.int32,
        device=device,
    )
    check_select(mass, lens, keep_frac, 0.05, 0.025)
    check_select(mass, None, keep_frac, 0.2, 0.0)


@pytest.mark.parametrize("device", device_params())
def test_select_blocks_keys4_ties_nan_and_edges(device):
    width = 200
    mass = torch.full((4, 2, width), 0.25, device=device)  # all tied: strict > keeps no candidate
    lens = torch.tensor([width * B, 1, 65, 64 * 37 + 1], dtype=torch.int32, device=device)
    idx, cnt = check_select(mass, lens, 0.1, 0.05, 0.025)
    n, sb, wb = R.keys4_budget(width * B, 0.05, 0.025)
    assert int(cnt[0, 0]) == sb + wb
    mass[2, 1, 0] = float("nan")  # a NaN in the sink: the rule still applies to the candidates
    mass[3, 0, 10] = float("nan")  # a NaN candidate: only sink and window
    mass[3, 1] = torch.rand(width, device=device)
    check_select(mass, lens, 0.1, 0.05, 0.025)
    check_select(mass, lens, 0.3, 1.0, 1.0)  # window and sink cover everything
