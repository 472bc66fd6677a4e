"""Tolerances, derived rather than guessed.

Rule for continuous outputs of the attention ops (FlashAttention's rule):

    max|kernel - ref64| <= FACTOR * max|torch_same_dtype - ref64| + NOISE_FLOOR[dtype]

where ref64 is the float64 reference (tests/reference.py) on the same (dtype-rounded)
inputs and torch_same_dtype is torch's own SDPA run in the input dtype under the same
mask. FACTOR = 2 as in FA's tests. The noise floor covers the case where torch happens
to be (nearly) exact.

Float32 selection-op outputs (sketch, scores, walk, decode-state updates) get fixed
(atol, rtol) from ATOL_RTOL[torch.float32]: their only error is float32 rounding of a
short computation. Log-sum-exp (float32) uses LSE_ATOL[input dtype].
"""

from __future__ import annotations

import torch

FACTOR = 2.0

# dtype -> (atol, rtol) for direct comparisons with the float64 reference.
ATOL_RTOL = {
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
    torch.float64: (1e-12, 1e-12),
}

# Noise floor added to FACTOR * err(torch_same_dtype) for attention outputs.
NOISE_FLOOR = {
    torch.float32: 2e-5,
    torch.float16: 1e-3,
    torch.bfloat16: 8e-3,
}

# Log-sum-exp is float32; its error comes from the kernel's float32 math on inputs of the
# given dtype (the reference uses the same rounded inputs), so it is small for all dtypes.
LSE_ATOL = {
    torch.float32: 1e-4,
    torch.float16: 2e-3,
    torch.bfloat16: 2e-3,
}


def assert_close64(actual, expected64, dtype=torch.float32, scale_atol=1.0, msg=""):
    """Fixed-tolerance comparison from ATOL_RTOL[dtype]; the message holds the worst diff."""
    atol, rtol = ATOL_RTOL[dtype]
    torch.testing.assert_close(
        actual.to(torch.float64).cpu(),
        expected64.to(torch.float64).cpu(),
        atol=atol * scale_atol,
        rtol=rtol,
        equal_nan=True,
        msg=lambda m: f"{msg}\n{m}",
    )


def max_abs_err(a, b):
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    if a.numel() == 0:
        return 0.0
    return (a - b).abs().max().item()


def assert_within_torch_error(actual, expected64, baseline, dtype, msg=""):
    """FA's rule: err(actual) <= FACTOR * err(baseline) + NOISE_FLOOR[dtype]."""
    assert torch.isfinite(actual).all(), f"{msg}: non-finite values in kernel output"
    err = max_abs_err(actual, expected64)
    base = max_abs_err(baseline, expected64)
    bound = FACTOR * base + NOISE_FLOOR[dtype]
    assert err <= bound, (
        f"{msg}: max|kernel-ref64|={err:.3e} > {FACTOR}*{base:.3e} + "
        f"{NOISE_FLOOR[dtype]:.1e} = {bound:.3e} ({dtype})"
    )


def assert_lse_close(actual, expected64, dtype, msg=""):
    """lse float32 vs float64: -inf exactly where the reference has -inf, else within LSE_ATOL."""
    a = actual.to(torch.float64).cpu()
    e = expected64.to(torch.float64).cpu()
    ninf_e = torch.isneginf(e)
    ninf_a = torch.isneginf(a)
    assert torch.equal(ninf_a, ninf_e), (
        f"{msg}: -inf lse pattern differs at {torch.nonzero(ninf_a ^ ninf_e)[:5].tolist()}"
    )
    fin = ~ninf_e
    torch.testing.assert_close(
        a[fin], e[fin], atol=LSE_ATOL[dtype], rtol=1e-5, msg=lambda m: f"{msg} (lse)\n{m}"
    )
