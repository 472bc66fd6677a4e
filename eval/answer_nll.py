"""RULER's answers scored by likelihood instead of generation: a cheap, low-variance stand-in
for a RULER ablation where a GPU is not at hand (issue 21).

For each RULER sample, the chat prompt eval/decode_quality.py sends followed by the reference
answer (" " + the references joined by ", "), in one forward pass; per method, the mean negative
log-likelihood of the answer's tokens and the share of them that are the model's argmax (teacher
forced). The answer's rows fall in the prefill's dense last query blocks (dense_last_q_blocks),
so what a method changes is what the prompt's sparse rows left in the cache: the prefill's
damage, which is where RULER's losses are (a dense decode changes nothing there: bench/RESULTS.md).
Methods are eval/decode_quality.py's (the per-phase spans, --add-method's per-band oracles), and
default_dense_needles: the defaults with the query blocks holding the answer's tokens dense.
Paired over samples against dense and the default.

    python -m eval.answer_nll --model qwen2.5-coder-0.5b --task niah_multivalue --length 8192 \\
        --samples 0-9 --methods dense,default,default_dense_early,default_dense_middle,\\
default_dense_late --out eval/results/answer_nll_qwen2.5-coder-0.5b_8k_cpu

Writes <out>.json and <out>.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from pathlib import Path

import torch

from bench.python.commit import git_commit
from eval import decode_quality as dq
from eval import quality_sweep as eq
from eval.needle_rows import add_ruler_sample_arguments, parse_samples, ruler_task_samples
from examples import assets
from sketchwalk.integrations import hf


def answer_text(outputs: list[str]) -> str:
    """The reference answer as the model would write it after RULER's answer prefix."""
    return " " + ", ".join(outputs)


def answer_scores(model, ids: torch.Tensor, num_answer: int) -> tuple[float, float]:
    """(mean NLL in nats, argmax accuracy) of the last num_answer tokens of ids [1, T], each
    predicted from the tokens before it."""
    logits = model(input_ids=ids, use_cache=False, logits_to_keep=num_answer + 1).logits
    pred = logits[0, :-1].float()  # predicts the last num_answer tokens
    target = ids[0, -num_answer:]
    nll = torch.nn.functional.cross_entropy(pred, target, reduction="mean")
    acc = (pred.argmax(-1) == target).float().mean()
    return float(nll), float(acc)


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and its standard error over the pairs."""
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    if len(d) < 2:
        return mean, float("nan")
    var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return mean, math.sqrt(var / len(d))


def run(args) -> dict:
    model, tok = assets.load_model(args.model, attn_implementation="sdpa", device=args.device)
    model.eval()
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    extra = {m.name: m for m in map(dq.parse_extra_method, args.add_method)}
    methods = []
    for name in wanted + [n for n in extra if n not in wanted]:
        method = extra.get(name) or dq.METHODS.get(name)
        if method is None:
            raise SystemExit(f"unknown method {name!r}; known: {sorted(dq.METHODS)}")
        methods.append((method, dq.build_config(method)))
    samples = ruler_task_samples(args, tok)
    records = {m.name: dict(knobs=m.knobs, nll=[], acc=[], density=[]) for m, _ in methods}
    picked = parse_samples(args.samples)
    done: set[str] = set()
    old_commit = None
    if args.append:  # keep the file's methods (same samples), run only the new ones
        old = json.loads(Path(args.out + ".json").read_text())
        if old["samples"] != picked or old["task"] != args.task or old["model"] != args.model:
            raise SystemExit(f"--append: {args.out}.json holds other samples, task or model")
        done = set(old["methods"])
        old_commit = old["commit"]
        records = {**old["methods"], **{k: v for k, v in records.items() if k not in done}}
    start = time.perf_counter()
    for i in picked:
        sample = samples[i]
        prompt = eq.chat_prompt(tok, sample["input"])
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        a_ids = tok(prompt + answer_text(sample["outputs"]), add_special_tokens=False).input_ids
        if a_ids[: len(p_ids)] != p_ids:  # the answer must not merge with the prompt's tail
            raise ValueError(f"sample {i}: the answer's tokens change the prompt's tokens")
        ids = torch.tensor([a_ids], device=args.device)
        num_answer = len(a_ids) - len(p_ids)
        for method, cfg in methods:
            if method.name in done:
                continue
            dq.use_method(model, method, cfg)
            with contextlib.ExitStack() as span, torch.no_grad():
                needles = None
                if method.dense_needle_rows:
                    needles = [dq.found_needle_blocks(tok, prompt, sample["outputs"])]
                dq.enter_dense_rows(span, method, cfg, needles)
                nll, acc = answer_scores(model, ids, num_answer)
            rec = records[method.name]
            rec["nll"].append(nll)
            rec["acc"].append(acc)
            if cfg is not None:
                per_layer = hf.last_density(model, "prefill")
                rec["density"].append(dq.sparse_layer_mean(per_layer, cfg))
            print(
                f"sample {i} ({ids.shape[1]} tokens, {num_answer} answer) {method.name}: "
                f"nll {nll:.4f} acc {acc:.3f}",
                flush=True,
            )
    return dict(
        model=args.model,
        task=args.task,
        length=args.length,
        seed=args.seed,
        samples=picked,
        device=dq.device_name(args.device),
        torch=torch.__version__,
        # Appended rows keep the file's commit beside this run's.
        commit=", ".join(dict.fromkeys(filter(None, [old_commit, git_commit()]))),
        seconds=time.perf_counter() - start,
        methods=records,
    )


def merge(results: list[dict], rename: dict[str, str]) -> dict:
    """One result from runs of the same model, task and length on disjoint samples: the methods
    every run has (after rename: old name -> new, for a run made under another name), their
    lists concatenated in the runs' order; the provenance of each run kept."""
    first = results[0]
    for r in results[1:]:
        if (r["model"], r["task"], r["length"], r["seed"]) != (
            first["model"],
            first["task"],
            first["length"],
            first["seed"],
        ):
            raise SystemExit("--merge: the runs differ in model, task, length or seed")
    samples = [i for r in results for i in r["samples"]]
    if len(set(samples)) != len(samples):
        raise SystemExit("--merge: the runs share samples")
    named = [{rename.get(k, k): v for k, v in r["methods"].items()} for r in results]
    common = [m for m in named[0] if all(m in n for n in named[1:])]
    methods = {
        m: {
            "knobs": named[0][m]["knobs"],
            **{f: [x for n in named for x in n[m][f]] for f in ("nll", "acc", "density")},
        }
        for m in common
    }
    runs = [{k: r[k] for k in ("samples", "commit", "device", "torch")} for r in results]
    return {
        **{k: first[k] for k in ("model", "task", "length", "seed", "device", "torch")},
        "samples": samples,
        "commit": ", ".join(dict.fromkeys(r["commit"] for r in results)),
        "seconds": sum(r["seconds"] for r in results),
        "methods": methods,
        "runs": runs,
        "renamed": rename,
    }


def markdown(result: dict) -> str:
    ms = result["methods"]
    lines = [
        f"# RULER answers by likelihood: {result['model']}, {result['task']} at {result['length']}",
        "",
        f"{result['device']}, torch {result['torch']}, commit {result['commit']}; samples "
        f"{result['samples']} (seed {result['seed']}). NLL: mean negative log-likelihood of the "
        "reference answer's tokens (nats), teacher forced after the prompt; acc: the share of "
        "them that are the argmax. Differences paired over samples, +- one standard error. "
        "Density: the prefill's kept share of the causal area, mean over the sparse layers.",
        "",
        *(
            [
                "Merged from runs: "
                + "; ".join(f"samples {r['samples']} at {r['commit']}" for r in result["runs"])
                + (
                    " (methods renamed: "
                    + ", ".join(f"{a} -> {b}" for a, b in result["renamed"].items())
                    + ")"
                    if result.get("renamed")
                    else ""
                )
                + ".",
                "",
            ]
            if result.get("runs")
            else []
        ),
        "| method | prefill density | NLL | acc | NLL vs dense | NLL vs default |",
        "|---|---|---|---|---|---|",
    ]

    def vs(name, base):
        if base not in ms or name == base:
            return ""
        mean, se = paired(ms[name]["nll"], ms[base]["nll"])
        return f"{mean:+.4f} +- {se:.4f}"

    for name, rec in ms.items():
        dens = rec["density"]
        d = f"{100 * sum(dens) / len(dens):.1f}%" if dens else "100%"
        nll = sum(rec["nll"]) / len(rec["nll"])
        acc = sum(rec["acc"]) / len(rec["acc"])
        lines.append(
            f"| {name} | {d} | {nll:.4f} | {100 * acc:.1f}% | {vs(name, 'dense')} | "
            f"{vs(name, 'default')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.answer_nll", description=__doc__.splitlines()[0]
    )
    add_ruler_sample_arguments(parser, model="qwen2.5-coder-0.5b", samples="0-9")
    parser.add_argument("--methods", default="dense,default")
    parser.add_argument("--add-method", action="append", default=[], help="as decode_quality's")
    parser.add_argument(
        "--append", action="store_true", help="add methods to --out's file (same samples)"
    )
    parser.add_argument(
        "--merge", nargs="+", help="no run: merge these result files (disjoint samples) into --out"
    )
    parser.add_argument(
        "--rename", default="", help="with --merge: OLD=NEW[,OLD=NEW...] method names"
    )
    args = parser.parse_args()
    if args.merge:
        rename = dict(item.split("=", 1) for item in args.rename.split(",") if item)
        result = merge([json.loads(Path(f).read_text()) for f in args.merge], rename)
    else:
        result = run(args)
    eq.write_json_and_markdown(args.out, result, markdown(result))


if __name__ == "__main__":
    main()
