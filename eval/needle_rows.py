"""Where the selection loses a RULER needle task, row by row (issue 21: the per-phase question
asked of the rows that matter). On niah_multivalue the defaults lose most of their points, and
the exact ranking in layers 9-15 alone brings them back (bench/RESULTS.md): which query rows of
those layers does the sketch + walk rank badly?

For one prefill of a RULER sample (the chat prompt eval/decode_quality.py sends), per sparse
layer, the share of the exact causal attention mass (summed over the query heads,
eval/quality_sweep.exact_block_mass) that the package's selection keeps, averaged over three
kinds of thinned query block:
- needle: a block holding a token of one of the sample's answers (a needle's value);
- after: the blocks after the first needle, needles aside (the haystack that may look back at it);
- before: the haystack before the first needle;
and, for the needle blocks after the first needle, the exact mass they put on the earlier
needles' key blocks and the share of that mass the selection keeps.

    python -m eval.needle_rows --model qwen2.5-coder-1.5b --task niah_multivalue \\
        --length 8192 --samples 0,1,2 --out eval/results/needle_rows_qwen2.5-coder-1.5b_8k_cpu

Writes <out>.json and <out>.md. Plain PyTorch around the package's own prefill (CPU or GPU).
"""

from __future__ import annotations

import argparse
import json

import torch

import sketchwalk
from bench.python.commit import git_commit
from eval import decode_quality as dq
from eval import quality_sweep as eq
from eval.layer_recall import LayerRecall, block_recall
from examples import assets
from sketchwalk.integrations import hf

KINDS = ("needle", "after", "before")


def add_ruler_sample_arguments(parser, model: str, samples: str) -> None:
    """The arguments of a CPU reading of RULER samples (this module, eval/answer_nll.py): the
    model, the task and its cached sample set, the samples to read, the device, the output."""
    parser.add_argument("--model", default=model, choices=sorted(assets.MODELS))
    parser.add_argument("--task", default="niah_multivalue")
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--num-samples", type=int, default=20, help="the RULER cache's size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples", default=samples, help="indices, e.g. 0-9 or 0,2,5")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="output stem (.json and .md added)")


def ruler_task_samples(args, tok) -> list[dict]:
    """The task's cached RULER samples (eval/quality_sweep.ruler_samples) for args' model."""
    return eq.ruler_samples(
        args.task, args.num_samples, args.length, dq.tokenizer_dir(tok, args.model), args.seed
    )


def parse_samples(spec: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]."""
    out = []
    for part in spec.split(","):
        lo, sep, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
    return out


def needle_blocks(tok, prompt: str, values: list[str], block_size: int) -> list[list[int]]:
    """Per answer value, the query blocks holding its tokens in the tokenized prompt (the last
    occurrence before the question: RULER places each needle once, and the question names no
    value)."""
    enc = tok(prompt, return_offsets_mapping=True, add_special_tokens=False)
    offsets = enc["offset_mapping"]
    out = []
    for value in values:
        start = prompt.rfind(value)
        if start < 0:
            raise ValueError(f"needle value {value!r} is not in the prompt")
        stop = start + len(value)
        tokens = [i for i, (a, b) in enumerate(offsets) if a < stop and b > start]
        out.append(sorted({i // block_size for i in tokens}))
    return out


class NeedleRecall(LayerRecall):
    """LayerRecall's hooks and records, and per layer from the same exact mass the recall of each
    kind of query block and what the needle blocks keep of their mass on the earlier needles.
    `needles` (per answer value, its query blocks) may be set again between prefills."""

    def __init__(self, needles: list[list[int]], block_size: int = 64):
        super().__init__(block_size)
        self.needles = needles
        self.kinds: dict[int, dict[str, list[float]]] = {}

    def _record_mass(self, layer_idx: int, mass, walk, index, count) -> None:
        super()._record_mass(layer_idx, mass, walk, index, count)
        mass, index, count = mass.cpu(), index.cpu(), count.cpu()
        recall = block_recall(mass, index, count)
        nq = count.numel()
        thinned = count < torch.arange(1, nq + 1)
        needle = sorted({b for blocks in self.needles for b in blocks})
        first = min(needle)
        rows = {
            "needle": [b for b in needle if thinned[b]],
            "after": [b for b in range(first, nq) if thinned[b] and b not in needle],
            "before": [b for b in range(first) if thinned[b]],
        }
        rec = self.kinds.setdefault(layer_idx, {})
        for kind, bs in rows.items():
            rec.setdefault(kind, []).extend(float(recall[b]) for b in bs)
        # The later needles' blocks: their exact mass on the earlier needles' key blocks, and
        # the share of it the selection keeps.
        nk = mass.shape[1]
        valid = torch.arange(index.shape[-1])[None, :] < count[:, None]
        cols = torch.where(valid, index.long(), nk)  # padding to a spare column, dropped
        kept = torch.zeros(nq, nk + 1, dtype=torch.bool).scatter_(1, cols, True)[:, :nk]
        for j, blocks in enumerate(self.needles[1:], start=1):
            earlier = sorted({b for bl in self.needles[:j] for b in bl} - set(blocks))
            for b in blocks:
                if not thinned[b] or not earlier:
                    continue
                on = mass[b, earlier]
                rec.setdefault("mass_on_earlier", []).append(float(on.sum()))
                rec.setdefault("kept_of_earlier", []).append(
                    float((on * kept[b, earlier]).sum() / on.sum().clamp_min(1e-30))
                )

    def kind_table(self) -> dict[int, dict[str, float | None]]:
        def mean(xs):
            return sum(xs) / len(xs) if xs else None

        return {
            layer: {k: mean(v) for k, v in d.items()} for layer, d in sorted(self.kinds.items())
        }


def run(args) -> dict:
    knobs = json.loads(args.knobs)
    model, tok = assets.load_model(args.model, attn_implementation="sdpa", device=args.device)
    model.eval()
    if args.method:  # one of eval/decode_quality.py's (e.g. exact_default: the oracle ranking)
        method = dq.METHODS[args.method]
        if method.knobs is None or method.dense_q_span:
            raise SystemExit(f"--method {args.method!r}: not a plain Sketch&Walk selection")
        knobs = method.knobs
        cfg = dq.build_config(method)
    else:
        cfg = sketchwalk.SketchWalkConfig(**knobs)
    hf.configure(model, cfg)
    samples = ruler_task_samples(args, tok)
    watch = NeedleRecall([], cfg.block_size)  # the records of every sample, pooled
    used = []
    for i in parse_samples(args.samples):
        sample = samples[i]
        prompt = eq.chat_prompt(tok, sample["input"])
        watch.needles = needle_blocks(tok, prompt, sample["outputs"], cfg.block_size)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.to(args.device)
        with watch.watch(), torch.no_grad():
            model(input_ids=ids, use_cache=False)
        used.append(dict(index=i, tokens=ids.shape[1], needle_blocks=watch.needles))
        print(f"sample {i}: {ids.shape[1]} tokens, needle blocks {watch.needles}", flush=True)
    kinds, density = watch.kind_table(), watch.table()
    return dict(
        model=args.model,
        task=args.task,
        length=args.length,
        method=args.method or None,
        knobs=knobs,
        samples=used,
        device=args.device,
        torch=torch.__version__,
        commit=git_commit(),
        layers={
            layer: kinds.get(layer, {})
            | {"density": row["density"], "needle_rows": len(watch.kinds[layer].get("needle", []))}
            for layer, row in density.items()
        },
    )


def markdown(result: dict) -> str:
    lines = [
        f"# Recall of the exact attention mass by kind of query row: {result['model']}, RULER "
        f"{result['task']} at {result['length']}",
        "",
        f"{result['device']}, torch {result['torch']}, commit {result['commit']}; "
        f"{'method ' + result['method'] + ', ' if result.get('method') else ''}knobs "
        f"{result['knobs'] or 'the defaults'}; samples {[s['index'] for s in result['samples']]}. "
        "Recall: the share of a thinned query block's exact mass (summed over query heads) in "
        "its kept key blocks, mean over the blocks of each kind (needle: holding an answer's "
        "tokens; after / before: the haystack after / before the first needle). Earlier "
        "needles: the later needles' blocks' exact mass on the earlier needles' key blocks, "
        "and the share of it kept.",
        "",
        "| layer | density | recall, needle rows | after | before | mass on earlier needles | "
        "kept of it |",
        "|---|---|---|---|---|---|---|",
    ]

    def pct(x):
        return "" if x is None else f"{100 * x:.1f}%"

    for layer, row in result["layers"].items():
        cells = [pct(row.get(k)) for k in ("density", *KINDS, "mass_on_earlier", "kept_of_earlier")]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.needle_rows", description=__doc__.splitlines()[0]
    )
    add_ruler_sample_arguments(parser, model="qwen2.5-coder-1.5b", samples="0")
    parser.add_argument("--knobs", default="{}", help="SketchWalkConfig keyword arguments (JSON)")
    parser.add_argument(
        "--method", default="", help="an eval/decode_quality.py method instead of --knobs"
    )
    args = parser.parse_args()
    result = run(args)
    eq.write_json_and_markdown(args.out, result, markdown(result))


if __name__ == "__main__":
    main()
