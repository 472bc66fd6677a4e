"""examples/assets.py: a model folder converted from a GGUF names its model class, which
`transformers serve` needs to load it (bench/gpu_serve_http.sh failed without it)."""

import json

import pytest

pytest.importorskip("transformers")


def test_a_folder_converted_without_architectures_gets_its_model_class(tmp_path):
    from examples import assets

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 64}))
    assets._name_architecture(tmp_path, assets.MODELS["qwen2.5-coder-1.5b"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["hidden_size"] == 64
    # A folder that names it already is left as it is.
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["X"]})
    )
    assets._name_architecture(tmp_path, assets.MODELS["smollm2-135m"])
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["X"]
