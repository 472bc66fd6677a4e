"""Framework integrations. Each submodule imports its framework lazily and is optional.

`register_when_imported()` is what `import sketchwalk` calls: it registers the transformers
integration at once when transformers is already imported, else right after transformers'
own import finishes (a one-shot import hook), so `import sketchwalk` never pays for importing
transformers. `register_all()` registers every installed integration now.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def register_all() -> list[str]:
    """Register the available integrations; returns the names registered."""
    registered = []
    if importlib.util.find_spec("transformers") is not None:
        from . import hf

        hf.register()
        registered.append("hf")
    return registered


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of `transformers` so that the integration is
    registered when the module has finished executing, then removes itself."""

    def find_spec(self, name, path=None, target=None):
        if name != "transformers":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            from . import hf

            hf.register()

        spec.loader.exec_module = exec_and_register
        return spec


def register_when_imported() -> None:
    if "transformers" in sys.modules:
        from . import hf

        hf.register()
    elif not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


__all__ = ["register_all", "register_when_imported"]
