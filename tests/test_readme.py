"""The README's Python snippets run verbatim, in order, in one namespace (the later ones reuse the
first one's device, dtype and config, as the README says); about a minute on 2 CPU cores. The
transformers snippet runs where the demo's model is already on disk (examples/assets.py; it is
not downloaded for a test)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _snippets():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _model_on_disk() -> bool:
    from examples import assets

    return (assets.asset_root() / "smollm2-135m" / "config.json").is_file()


def test_readme_snippets_run_verbatim(sw, monkeypatch):
    snippets = _snippets()
    assert len(snippets) >= 4, "the README's Python examples moved: update this test"
    monkeypatch.chdir(ROOT)  # the transformers snippet imports examples/ from the repository root
    namespace: dict = {}
    ran = 0
    for code in snippets:
        if "AutoModelForCausalLM" in code:
            pytest.importorskip("transformers")
            if not _model_on_disk():
                continue
        exec(compile(code, "README.md", "exec"), namespace)
        ran += 1
    assert ran >= 3
