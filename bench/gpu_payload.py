"""Builds .gpu_payload/, what bench/gpu_assets.sh carries to the GPU machine for a quality
evaluation (that machine has no network; each call carries at most 64 MiB with the repo).

    python -m bench.gpu_payload --models qwen2.5-coder-1.5b \\
        --ruler-lengths 8192,16384,32768 --ruler-samples 20

writes, under .gpu_payload/ (git-ignored):
    wheels/      the evaluation's packages the GPU machine lacks (eval/README.md), pinned;
                 MANIFEST.tsv (one row per model: folder, name, GGUF file, chunk count, sha256)
                 and parts.sha256 (sha256 of every chunk)
    assets/      assets.tar.xz: RULER samples pre-generated here for each model's tokenizer, and
                 the tokenizer folders (eval/decode_quality.py reads them with --assets)
    <short>/partNN/partNN   each model's GGUF in chunks of --chunk-mib MiB

Then one `run` per folder, each carrying that folder, in consecutive calls (the machine stays
warm ~30 s): `bash bench/gpu_assets.sh stage wheels assets`, `... stage qwen15/part00`, ...,
`bash bench/gpu_assets.sh assemble`. `--plan` prints those calls.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from examples import assets

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = ROOT / ".gpu_payload"
# Folder names on the wire (short: they travel in every command line).
SHORT = {"smollm2-135m": "smol", "qwen2.5-coder-0.5b": "qwen05", "qwen2.5-coder-1.5b": "qwen15"}
# Pure-Python packages of the evaluation that the GPU machine's image lacks (eval/README.md):
# the GGUF reader and RULER with its generators.
EVAL_WHEELS = (
    "gguf==0.19.0",
    "nvidia-long-context-eval==26.3",
    "nltk==3.10.4",
    "wonderwords==3.0.1",
    "tenacity==9.2.1",
    "defusedxml==0.7.1",
)
# `python -m sketchwalk serve`'s server (pyproject's `serve` extra), for the GPU machine's Python
# 3.12, with their dependencies; accelerate without its own (torch, numpy, ... are there). They go
# to a site of their own (gpu_assets.sh: /tmp/serve_site) so they shadow nothing of the eval's.
SERVE_WHEELS = ("fastapi==0.142.2", "uvicorn==0.54.0", "openai==2.54.0", "requests", "psutil")
SERVE_NO_DEPS = ("accelerate==1.16.0",)
GPU_PYTHON = ("--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:")
GPU_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
# Room left for the repository itself (~7 MiB tracked, and growing) in a 64 MiB call.
DEFAULT_CHUNK_MIB = 50


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def download_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        + ["-d", str(dest), *EVAL_WHEELS],
        check=True,
    )


def download_serve_wheels(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [a for p in GPU_PLATFORMS for a in ("--platform", p)]
    base = [sys.executable, "-m", "pip", "download", "-q", *GPU_PYTHON, *platforms, "-d", str(dest)]
    subprocess.run(base + list(SERVE_WHEELS), check=True)
    subprocess.run(base + ["--no-deps", *SERVE_NO_DEPS], check=True)


def split_model(name: str, chunk_bytes: int) -> tuple[str, str, str, int, str]:
    """The model's GGUF cut into PAYLOAD/<short>/partNN/partNN; its MANIFEST row."""
    gguf = assets.ensure_gguf(assets.MODELS[name])
    short = SHORT[name]
    folder = PAYLOAD / short
    shutil.rmtree(folder, ignore_errors=True)
    count = 0
    with open(gguf, "rb") as src:
        while chunk := src.read(chunk_bytes):
            part = folder / f"part{count:02d}"
            part.mkdir(parents=True)
            (part / f"part{count:02d}").write_bytes(chunk)
            count += 1
    return short, name, gguf.name, count, sha256(gguf)


def _without_raw_ruler(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name.endswith("/validation.jsonl") else info


def ruler_assets(names: list[str], lengths: list[int], tasks: str, samples: int, seed: int):
    """RULER samples and tokenizer folders of each model under a scratch asset root, packed
    into PAYLOAD/assets/assets.tar.xz (text: about 4x smaller packed)."""
    from transformers import AutoTokenizer

    from eval import quality_sweep as eq
    from eval.decode_quality import tokenizer_dir

    ggufs = {name: assets.ensure_gguf(assets.MODELS[name]) for name in names}  # the usual root
    root = PAYLOAD / "assets_src"
    os.environ["SKETCHWALK_ASSETS"] = str(root)
    for name, gguf in ggufs.items():
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok_dir = tokenizer_dir(tok, name)
        for length in lengths:
            for task in eq.ruler_tasks(tasks):
                eq.ruler_samples(task, samples, length, tok_dir, seed)
                print(f"  RULER {name} {task} @ {length}: {samples} samples", flush=True)
    out = PAYLOAD / "assets"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tarfile.open(out / "assets.tar.xz", "w:xz", preset=3) as tar:
        for sub in ("tokenizers", "ruler"):
            # The generator's raw output is read only until marked.jsonl exists.
            tar.add(root / sub, arcname=f"assets/{sub}", filter=_without_raw_ruler)
    return out / "assets.tar.xz"


def plan(rows: list[tuple]) -> str:
    lines = [
        "run calls, in order (each within ~30 s of the last):",
        "  carry [.gpu_payload/wheels, .gpu_payload/assets]: "
        "bash bench/gpu_assets.sh stage wheels assets",
    ]
    for short, _, _, count, _ in rows:
        for i in range(count):
            lines.append(
                f"  carry [.gpu_payload/{short}/part{i:02d}]: "
                f"bash bench/gpu_assets.sh stage {short}/part{i:02d}"
            )
    lines.append("  then: bash bench/gpu_assets.sh assemble (in the evaluation's own call)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_payload", description=__doc__)
    parser.add_argument(
        "--models",
        default="qwen2.5-coder-1.5b",
        help=f"comma-separated, from {sorted(assets.MODELS)}",
    )
    parser.add_argument("--ruler-lengths", default="8192,16384,32768")
    parser.add_argument("--ruler-tasks", default="all")
    parser.add_argument("--ruler-samples", type=int, default=20)
    parser.add_argument("--ruler-seed", type=int, default=42)
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_MIB)
    parser.add_argument("--plan", action="store_true", help="print the calls and stop")
    parser.add_argument(
        "--serve-wheels",
        action="store_true",
        help="only (re)build serve_wheels/ (the server of python -m sketchwalk serve) and stop",
    )
    args = parser.parse_args()
    if args.serve_wheels:
        download_serve_wheels(PAYLOAD / "serve_wheels")
        size = sum(p.stat().st_size for p in (PAYLOAD / "serve_wheels").iterdir())
        print(f"serve_wheels: {size / 2**20:.1f} MiB; carry it with wheels and assets (first call)")
        return
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in assets.MODELS]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; known: {sorted(assets.MODELS)}")

    rows = [split_model(n, args.chunk_mib << 20) for n in names]
    if args.plan:
        print(plan(rows))
        return
    wheels = PAYLOAD / "wheels"
    download_wheels(wheels)
    (wheels / "MANIFEST.tsv").write_text(
        "# folder\tname\tfile\tparts\tsha256\n"
        + "".join("\t".join(map(str, r)) + "\n" for r in rows)
    )
    sums = []
    for short, *_ in rows:
        for part in sorted((PAYLOAD / short).glob("part??/part??")):
            sums.append(f"{sha256(part)}  {part.relative_to(PAYLOAD)}\n")
    (wheels / "parts.sha256").write_text("".join(sums))
    lengths = [int(x) for x in args.ruler_lengths.split(",") if x.strip()]
    packed = ruler_assets(names, lengths, args.ruler_tasks, args.ruler_samples, args.ruler_seed)
    total = sum(p.stat().st_size for p in wheels.iterdir()) + packed.stat().st_size
    print(f"wheels + assets: {total / 2**20:.1f} MiB (one call)")
    print(plan(rows))


if __name__ == "__main__":
    main()
