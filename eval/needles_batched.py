"""Needles in a left-padded batch: the ragged path of the transformers integration on a real model.

Builds `--prompts` needle-in-a-haystack prompts (examples/demo.py's RULER-style prompt) of
different lengths and depths, and generates every answer in ONE left-padded batch, with dense
attention (SDPA) and with Sketch&Walk at the defaults: its prefill runs as one ragged step per
layer (StepPlan + sketchwalk_attention_varlen), its decode steps batched. Reports each row's
answer, whether it holds the needle, the prefill density per row, and the totals.

    python -m eval.needles_batched --prompts 6 --min-tokens 1500 --max-tokens 3500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

import sketchwalk
from examples import assets
from examples.demo import build_prompt
from sketchwalk.integrations import hf


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.needles_batched", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="smollm2-135m", choices=sorted(assets.MODELS))
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--min-tokens", type=int, default=1500)
    parser.add_argument("--max-tokens", type=int, default=3500)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", default="")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    model, tok = assets.load_model(args.model, attn_implementation="sdpa", device=args.device)
    tok.padding_side = "left"
    keys = [
        "lucky-falcon",
        "quiet-harbor",
        "amber-violin",
        "brisk-meadow",
        "silver-canyon",
        "gentle-river",
        "crimson-lantern",
        "hollow-pine",
    ]
    rows = []
    for i in range(args.prompts):
        n = args.min_tokens + (args.max_tokens - args.min_tokens) * i // max(1, args.prompts - 1)
        key, value = keys[i % len(keys)], str(rng.randint(1_000_000, 9_999_999))
        depth = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9])
        rows.append(
            dict(
                tokens=n,
                depth=depth,
                key=key,
                value=value,
                prompt=build_prompt(tok, n, depth, key, value),
            )
        )
    batch = tok(
        [r["prompt"] for r in rows], return_tensors="pt", padding=True, add_special_tokens=False
    ).to(args.device)
    lengths = batch.attention_mask.sum(-1).tolist()
    print(
        f"{len(rows)} prompts, {min(lengths)}-{max(lengths)} tokens, one left-padded batch "
        f"of {batch.input_ids.shape[1]} on {args.device}",
        flush=True,
    )

    results = {}
    for label in ("dense (sdpa)", "sketchwalk"):
        if label == "sketchwalk":
            hf.configure(model, sketchwalk.SketchWalkConfig())
        else:
            model.set_attn_implementation("sdpa")
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.eos_token_id,
            )
        seconds = time.perf_counter() - start
        answers = tok.batch_decode(out[:, batch.input_ids.shape[1] :], skip_special_tokens=True)
        found = [r["value"] in a for r, a in zip(rows, answers)]
        densities = hf.last_density(model) if label == "sketchwalk" else {}
        results[label] = dict(
            answers=[a.strip() for a in answers],
            found=found,
            seconds=seconds,
            prefill_density=densities,
        )
        print(f"{label}: {sum(found)}/{len(rows)} needles found in {seconds:.1f} s", flush=True)
        for r, a, f in zip(rows, answers, found):
            print(
                f"  {r['tokens']:>6} tokens, depth {r['depth']:.0%}: {'found' if f else 'MISSED'}"
                f"  ({a.strip()[:60]!r}, needle {r['value']})"
            )
        if densities:
            mean = sum(densities.values()) / len(densities)
            print(f"  prefill density, mean over sparse layers: {mean:.3f}")
    agree = sum(
        a == b for a, b in zip(results["dense (sdpa)"]["answers"], results["sketchwalk"]["answers"])
    )
    print(f"identical answers: {agree}/{len(rows)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(
                    model=args.model,
                    device=args.device,
                    lengths=lengths,
                    rows=[{k: v for k, v in r.items() if k != "prompt"} for r in rows],
                    results=results,
                ),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
