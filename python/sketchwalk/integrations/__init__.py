"""Framework integrations. Each submodule imports its framework lazily and is optional.

`register_all()` is what `import sketchwalk` calls: it registers every integration whose
framework is installed and skips the others silently.
"""

from __future__ import annotations

import importlib.util


def register_all() -> list[str]:
    """Register the available integrations; returns the names registered."""
    registered = []
    if importlib.util.find_spec("transformers") is not None:
        from . import hf

        hf.register()
        registered.append("hf")
    return registered


__all__ = ["register_all"]
