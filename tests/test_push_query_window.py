"""push_query_window_ (the decode walk's ring buffer of recent query sketches) against the
reference, on a NaN-poisoned slot."""

import pytest
import torch

import reference as R
from conftest import device_params, poison
from utils import ops


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("position", [0, 5, 31, 32, 1000])
def test_push_query_window(device, position):
    w, m = 32, 16
    win = torch.randn(2, 4, w, m, device=device)
    poison(win[:, :, position % w])
    qs = torch.randn(2, 4, 1, m, device=device)
    expected = R.push_query_window(win, qs, position)
    ops().push_query_window_(win, qs, position)
    assert torch.equal(win.double().nan_to_num(), expected.nan_to_num())
    assert torch.equal(win.isnan(), expected.isnan())
