"""walk_blocks against the float64 reference."""

import pytest
import torch

import reference as R
from conftest import device_params, strided_copy
from tolerances import assert_close64
from utils import ops


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("n,rows", [(1, 1), (16, 16), (16, 1), (40, 40)])
@pytest.mark.parametrize("degree", [0, 1, 3])
@pytest.mark.parametrize("with_init", [False, True])
def test_walk_blocks_matches_reference(device, n, rows, degree, with_init):
    t = torch.rand(2, n, n, device=device)
    t = t / t.sum(-1, keepdim=True)
    base = torch.rand(2, rows, n, device=device)
    base = base / base.sum(-1, keepdim=True)
    init = torch.rand(2, rows, n, device=device) if with_init else None
    got = ops().walk_blocks(base, t, init, degree, 0.25)
    exp = R.walk_blocks(base, t, init, degree, 0.25)
    assert got.shape == (2, rows, n) and got.dtype == torch.float32
    assert_close64(got, exp, scale_atol=10)
    if init is not None:
        assert not torch.equal(init, got) or degree == 0


@pytest.mark.parametrize("device", device_params())
def test_walk_blocks_damping_and_strides(device):
    t = strided_copy(torch.rand(1, 20, 20, device=device))
    base = strided_copy(torch.rand(1, 20, 20, device=device))
    init = torch.rand(1, 20, 20, device=device)
    for damping in [0.0, 0.6, 1.0]:
        got = ops().walk_blocks(base, t, init, 2, damping)
        assert_close64(
            got, R.walk_blocks(base, t, init, 2, damping), scale_atol=10, msg=f"damping={damping}"
        )
