"""torch.compile(fullgraph=True) over sketchwalk_attention matches eager (prefill + decode)."""

import pytest
import torch

from conftest import device_params


def run_model(sw, fn, layers, tokens, cfg):
    state = sw.SketchWalkState(cfg)
    outs = []
    for li, (q, k, v) in enumerate(layers):
        outs.append(fn(q[:, :, :tokens], k[:, :, :tokens], v[:, :, :tokens], li, state))
    for li, (q, k, v) in enumerate(layers):
        outs.append(fn(q[:, :, tokens : tokens + 1], k, v, li, state))
    return outs


@pytest.mark.parametrize("device", device_params())
def test_compile_fullgraph_matches_eager(device):
    sw = pytest.importorskip("sketchwalk")
    torch._dynamo.reset()
    cfg = sw.SketchWalkConfig()
    tokens = 400
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    layers = []
    for _ in range(3):
        layers.append(
            tuple(torch.randn(1, h, tokens + 1, 64, device=device).to(dtype) for h in (4, 2, 2))
        )
    eager = run_model(sw, sw.sketchwalk_attention, layers, tokens, cfg)
    compiled_fn = torch.compile(sw.sketchwalk_attention, fullgraph=True)
    compiled = run_model(sw, compiled_fn, layers, tokens, cfg)
    for i, (e, c) in enumerate(zip(eager, compiled)):
        tol = 1e-5 if dtype == torch.float32 else 1e-2
        torch.testing.assert_close(c, e, atol=tol, rtol=tol, msg=lambda m: f"call {i}: {m}")
