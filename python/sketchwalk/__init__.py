"""Sketch&Walk block-sparse attention for long-context LLM inference.

Importing this package loads the compiled extension, which registers the ops as
``torch.ops.sketchwalk.*`` (see docs/ops.md), and registers the Hugging Face
``attn_implementation="sketchwalk"`` once transformers is imported (before or after this
package; transformers itself is not imported here).
"""

from __future__ import annotations

import torch  # noqa: F401  (must be imported before the extension: it resolves libtorch)

from . import (  # noqa: F401  (limits: the kernels' sizes)
    _C,  # noqa: F401  (loads the library; registers torch.ops.sketchwalk.*)
    calibration,
    layer_budget,
    limits,
    ops,
    scorers,
    soft_lsh,
)
from ._build_info import VERSION as __version__
from .attention import sketchwalk_attention
from .config import SketchWalkConfig
from .paged import PagedKeys4Cache, sketchwalk_attention_paged
from .plan import StepPlan
from .ragged import sketchwalk_attention_varlen
from .state import SketchWalkState

soft_lsh.register()  # decode_scorer="socket" (soft_lsh.py)

__all__ = [
    "SketchWalkConfig",
    "SketchWalkState",
    "ops",
    "scorers",
    "sketchwalk_attention",
    "sketchwalk_attention_varlen",
    "sketchwalk_attention_paged",
    "PagedKeys4Cache",
    "StepPlan",
    "build_info",
    "__version__",
]


def build_info() -> dict:
    """What this build holds: versions it was built with and the GPU archs compiled in."""
    from . import _build_info as b

    return {
        "sketchwalk": b.VERSION,
        "built_with_torch": b.TORCH_VERSION,
        "built_with_torch_cuda": b.TORCH_CUDA_VERSION,
        "cuda_kernels": b.WITH_CUDA,
        "cuda_archs": list(b.CUDA_ARCHS),
        "nvcc": b.CUDA_COMPILER_VERSION or None,
        # "stable": loads under any torch >= runs_on_torch (docs/stable_abi.md); "torch-cpp":
        # binds to the C++ ABI of built_with_torch, and only that torch runs it.
        "abi": b.ABI,
        "runs_on_torch": f">= {b.MIN_TORCH}" if b.ABI == "stable" else f"== {b.MIN_TORCH}",
        "stable_abi_ops": list(b.STABLE_ABI_OPS),
        "running_torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
    }


def _register_integrations() -> None:
    """Register attn_implementation="sketchwalk" with transformers without importing it here
    (importing transformers takes seconds): now if it is already imported, else right after
    its import finishes (integrations/__init__.py)."""
    from .integrations import register_when_imported

    register_when_imported()


_register_integrations()
