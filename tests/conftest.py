"""Test configuration: seeding, markers (gpu, slow), device parametrization, NaN poisoning."""

from __future__ import annotations

import os
import random

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "slow: long-running; run with -m slow or RUN_SLOW=1")


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("RUN_SLOW", "0") == "1" or "slow" in (config.getoption("-m") or "")
    skip_gpu = pytest.mark.skip(reason="no CUDA device")
    skip_slow = pytest.mark.skip(reason="slow: set RUN_SLOW=1 or -m slow")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("device") == "cuda" and not HAS_CUDA:
            item.add_marker(skip_gpu)


def device_params():
    """['cpu', 'cuda'] with the cuda case marked gpu (skipped on CPU-only machines)."""
    return ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.fixture(autouse=True)
def _seed(request):
    """Every test starts from a seed derived from its node id: fresh but reproducible inputs."""
    seed = _stable_hash(request.node.nodeid)
    torch.manual_seed(seed)
    random.seed(seed)
    yield


def _stable_hash(s: str) -> int:
    h = 2166136261
    for ch in s.encode():
        h = ((h ^ ch) * 16777619) & 0x7FFFFFFF
    return h


@pytest.fixture(params=device_params())
def devices(request):
    return request.param


@pytest.fixture(scope="session")
def sw():
    """The sketchwalk package (skips the module's tests when it cannot be imported)."""
    return pytest.importorskip("sketchwalk")


def poison(t: torch.Tensor) -> torch.Tensor:
    """Fill a float tensor with NaN (ints with a sentinel) in place and return it."""
    if t.is_floating_point():
        t.fill_(float("nan"))
    else:
        t.fill_(-12345)
    return t


def poisoned_like(t: torch.Tensor) -> torch.Tensor:
    return poison(torch.empty_like(t))


def strided_copy(t: torch.Tensor, pad: int = 3) -> torch.Tensor:
    """Same values as t but a non-contiguous view (padding on dim -2 and on dim 1 when
    present), last dimension still contiguous. Padding holds NaN so reading it shows."""
    shape = list(t.shape)
    big_shape = list(shape)
    if len(shape) >= 2:
        big_shape[-2] += pad
    if len(shape) >= 3:
        big_shape[1] += 1
    big = torch.full(
        big_shape, float("nan") if t.is_floating_point() else -7, dtype=t.dtype, device=t.device
    )
    view = big[tuple(slice(0, s) for s in shape)]
    view.copy_(t)
    return view
