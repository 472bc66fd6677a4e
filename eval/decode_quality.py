"""Decode-selection quality on a real model against dense attention, in one command.

For each method (dense SDPA; Sketch&Walk with sparse prefill only; the default config with
sparse prefill and decode; the paper's decode rule; the default at ~10% decode density; and
issue 11's set at ~20% and ~10%: paper20/10, p20/10, narrow20/10, narrow20_nowalk,
narrow20_kv_group, oracle20/10, oracle_narrow20), this runs

- needles: the demo's needle in a ~6K-token haystack (examples/demo.py), at --needles
  depths evenly spread over 0.04..0.96, scored as in the demo (the number is in the answer);
- RULER tasks (NVIDIA's generators, eval/quality_sweep.py; the six niah tasks by default,
  `--tasks all` for RULER's 13, `--tasks niah` for its 8 niah ones) at each of --lengths,
  --samples per task, greedy decoding, RULER's metric (string-match-all; string-match-part
  for qa),

and records the density achieved (hf.last_density, mean over the sparse layers, prefill and
decode separately, and per layer). The oracle methods rank blocks by their exact attention mass
(eval/quality_sweep.py). The samples of one task and length run as one left-padded batch
(CUDA). Generation stops per row at an end-of-turn/EOS token or as soon as every reference
string (qa: any) is in the output (which cannot change the score), up to RULER's generation
length of the task (128 tokens niah, 30 vt, 120 cwe, 50 fwe, 32 qa).
A markdown table is printed at the end and written, with JSON, to --out.

    # from the repository root:
    python -m eval.decode_quality --gguf /tmp/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --lengths 4096,8192 --samples 10 --methods dense,sparse_prefill,default,paper,keys4_10
    # CPU smoke test:
    python -m eval.decode_quality --gguf <file> --lengths 1024 --samples 1 \\
        --needles 2 --needle-tokens 1024 --methods dense,sparse_prefill,default

A method whose SketchWalkConfig cannot be built with this version of the package (e.g. a
decode scorer it does not know) is skipped with a note; a method that fails while running
is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import random
import sys
import time
import traceback
from pathlib import Path

# Shared CPUs: libgomp's default spin-waiting made the CPU kernels 5 to 10x slower here
# whenever another job held a core; passive waiting costs little when the cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

import sketchwalk
from bench.python.commit import git_commit
from eval import phase_span
from eval import quality_sweep as eq
from eval.layer_bands import (
    add_band_arguments,
    band_budget_methods,
    layer_band_methods,
    picked_bands,
    signal_budget_methods,
)
from eval.ruler_report import weighted
from examples import assets, demo
from sketchwalk.integrations import hf

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_TASKS = (
    "niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,niah_multivalue,niah_multiquery"
)
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>")


# --------------------------------------------------------------------------------------
# Methods


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    knobs: dict | None  # SketchWalkConfig keyword arguments; None = dense SDPA
    sparse_decode: bool = True
    # Rank blocks by their exact attention mass (eval/quality_sweep.py's oracle, registered as
    # the package's prefill and decode scorer) instead of the sketch: the same knobs and
    # select_blocks rule, only the ranking differs; padding, chunks and densities are the
    # package's (sketchwalk.integrations.hf).
    oracle: bool = False
    # A prefill ranking of eval/quality_sweep.py's SCORERS (its name and keyword arguments),
    # registered as the package's prefill scorer; the decode steps keep the config's scorer.
    scorer: str = ""
    scorer_args: dict = dataclasses.field(default_factory=dict)
    # A span of eval/phase_span.py's EQUAL_AREA_SPANS whose prefill query rows stay dense (the
    # per-phase ablation): which rows' sparsity costs.
    dense_q_span: str = ""
    # Keep the prefill query blocks that hold the sample's answers (its needles, found in the
    # prompt by eval/needle_rows.needle_blocks) dense: do the needles' own rows carry the loss?
    # For the niah tasks, whose answers stand verbatim in the prompt (values not found are
    # skipped); the needle-depth test is left as the base method runs it.
    dense_needle_rows: bool = False


def enter_dense_rows(stack: contextlib.ExitStack, method: Method, cfg, needles=None) -> None:
    """Enter on stack the method's dense prefill query rows, if it has any: its span of the
    prompt, and (given needles[seq], each batch row's needle blocks) its needle rows."""
    if method.dense_q_span:
        stack.enter_context(
            phase_span.dense_query_span(*phase_span.EQUAL_AREA_SPANS[method.dense_q_span])
        )
    if method.dense_needle_rows and needles is not None:
        stack.enter_context(phase_span.dense_query_rows(lambda n, seq: needles[seq]))


# The ~20% and ~10% knobs: the paper's split and the narrow one (eval/quality_sweep.py).
P20, P10, NARROW20, NARROW10 = eq.P20, eq.P10, eq.NARROW20, eq.NARROW10
# The ~20% prefill knobs with the default decode split (~20% decode density).
P20_DEC20 = {k: v for k, v in P20.items() if not k.startswith("decode_")}
# Dense rows by query spread (docs/spec.md section 13): the share of query blocks, and the
# kblocks_frac that brings the defaults' density back with them (35% on Qwen-0.5B at 8K).
SPREAD_FRAC, SPREAD_EQ_KBLOCKS = 3 / 32, 0.236
# The package's sampled-row scorer at 2 rows (docs/spec.md section 11).
SR2 = eq.SR2

METHODS = {
    "dense": Method("dense", None),
    "sparse_prefill": Method("sparse_prefill", {}, sparse_decode=False),
    "default": Method("default", {}),
    # The paper preset (its knobs, one split for both phases, the decode walk), and the authors'
    # knobs at kblocks 0.05 with keys4 decode (~10% decode density; the decode issue's rows).
    "paper": Method("paper", {**eq.PAPER, "decode_scorer": "walk"}),
    "keys4_10": Method("keys4_10", {**eq.PAPER, "kblocks_frac": 0.05}),
    # ~20% prefill density (the knobs of the paper's 20% setting), keys4 or dense decode.
    "p20": Method("p20", P20),
    "p20_prefill": Method("p20_prefill", P20, sparse_decode=False),
    # The default knobs with one prefill selection per KV group (docs/spec.md section 8).
    "kv_group": Method("kv_group", {"prefill_selection": "kv_group"}),
    # Issue 11, at ~20% and ~10%: the authors' rule (prefill and decode walk); ours at the
    # paper's split (keys4 decode); the narrow split, also without the walk (degree 0) and per
    # KV group; the oracle ranking at the paper's and the narrow split.
    "paper20": Method("paper20", {**P20, "decode_scorer": "walk"}),
    "paper10": Method("paper10", {**P10, "decode_scorer": "walk"}),
    "p10": Method("p10", P10),
    "narrow20": Method("narrow20", NARROW20),
    "narrow10": Method("narrow10", NARROW10),
    "narrow20_nowalk": Method("narrow20_nowalk", {**NARROW20, "degree": 0}),
    "narrow20_kv_group": Method("narrow20_kv_group", {**NARROW20, "prefill_selection": "kv_group"}),
    # The ~20% prefill rules with the default decode split (decode_* = the authors' 0.125 / 0.05 /
    # 0.025: ~20% decode density, a ~20% total budget) instead of the prefill's (~10-13%).
    "p20_dec20": Method("p20_dec20", P20_DEC20),
    "narrow20_dec20": Method(
        "narrow20_dec20", {k: v for k, v in NARROW20.items() if not k.startswith("decode_")}
    ),
    "oracle20": Method("oracle20", P20, oracle=True),
    "oracle10": Method("oracle10", P10, oracle=True),
    "oracle_narrow20": Method("oracle_narrow20", NARROW20, oracle=True),
    # Issue 21: prefill rankings at ~20% in both phases (p20_dec20's knobs, keys4 decode): the
    # exact block mass (the prefill oracle alone) and the exact softmax of 8 or 4 sampled query
    # rows per block (the cheap candidate).
    "exact20_dec20": Method("exact20_dec20", P20_DEC20, scorer="exact_mass"),
    "rows8_20": Method("rows8_20", P20_DEC20, scorer="sampled_rows", scorer_args={"rows": 8}),
    "rows4_20": Method("rows4_20", P20_DEC20, scorer="sampled_rows", scorer_args={"rows": 4}),
    "rows8_default": Method("rows8_default", {}, scorer="sampled_rows", scorer_args={"rows": 8}),
    # 4 rows matched the oracle at ~20% on Qwen-1.5B at 8K (bench/RESULTS.md) but cost 16% of
    # the layer's attention in 16-bit math: fewer rows, and 4 rows at the default budget.
    "rows2_20": Method("rows2_20", P20_DEC20, scorer="sampled_rows", scorer_args={"rows": 2}),
    "rows1_20": Method("rows1_20", P20_DEC20, scorer="sampled_rows", scorer_args={"rows": 1}),
    "rows4_default": Method("rows4_default", {}, scorer="sampled_rows", scorer_args={"rows": 4}),
    # The package's built-in sampled-row scorer (docs/spec.md section 11, its CUDA kernel): the
    # same ranking as rows*_ above, as users run it.
    "sr4_default": Method("sr4_default", {"prefill_scorer": "sampled_rows"}),
    "sr2_default": Method("sr2_default", SR2),
    "sr1_default": Method(
        "sr1_default", {"prefill_scorer": "sampled_rows", "prefill_score_rows": 1}
    ),
    "sr4_20": Method("sr4_20", {**P20_DEC20, "prefill_scorer": "sampled_rows"}),
    "sr2_20": Method("sr2_20", {**P20_DEC20, **SR2}),
    # One selection per KV group from the groups' own sampled rows (prefill_selection "kv_group",
    # docs/spec.md section 8), not their mean.
    "sr2_kvg_default": Method("sr2_kvg_default", {**SR2, "prefill_selection": "kv_group"}),
    "sr2_kvg_20": Method("sr2_kvg_20", {**P20_DEC20, **SR2, "prefill_selection": "kv_group"}),
    # The defaults with the walk's products from bfloat16 halves (config.walk_matmul): the same
    # selections but for candidates within ~1e-4 of a row's threshold.
    "walk_bf16x3": Method("walk_bf16x3", {"walk_matmul": "bf16x3"}),
    # Issue 21's per-phase ablation: the defaults with one third of the prompt's causal area
    # (its early, middle or late query rows) kept dense, equal cost each (eval/phase_span.py).
    **{
        f"default_dense_{span}": Method(f"default_dense_{span}", {}, dense_q_span=span)
        for span in phase_span.EQUAL_AREA_SPANS
    },
    # ... and the needles' own query blocks dense (a few blocks per sample: eval/answer_nll.py
    # found them to carry the multivalue loss by answer likelihood).
    "default_dense_needles": Method("default_dense_needles", {}, dense_needle_rows=True),
    # ... and, without knowing the needles, the package's dense rows by query spread
    # (docs/spec.md section 13): 3/32 of each layer's query blocks (12 at 8K), on top of the
    # defaults (+~5 points of density) and at the defaults' density (kblocks_frac 0.29 -> 0.236).
    # (Both add the rows' blocks to the density, as before dense_spread_in_budget existed.)
    "default_spread": Method(
        "default_spread", {"dense_spread_q_frac": SPREAD_FRAC, "dense_spread_in_budget": False}
    ),
    "spread_eq": Method(
        "spread_eq",
        {
            "dense_spread_q_frac": SPREAD_FRAC,
            "kblocks_frac": SPREAD_EQ_KBLOCKS,
            "dense_spread_in_budget": False,
        },
    ),
    # ... and in the defaults' own budget: the other rows of each sequence pay for the spread
    # rows (dense_spread_in_budget, the default), at the default kblocks_frac.
    "spread_budget": Method("spread_budget", {"dense_spread_q_frac": SPREAD_FRAC}),
    # ... and without them, whatever the package's default (the baseline of spread_budget).
    "default_nospread": Method("default_nospread", {"dense_spread_q_frac": 0.0}),
    # The defaults with kblocks_frac raised to default_spread's density: the same budget spread
    # over every row.
    "default_kb345": Method("default_kb345", {"kblocks_frac": 0.345}),
    # The exact block mass at the default budget: how much of the defaults' loss is the ranking.
    "exact_default": Method("exact_default", {}, scorer="exact_mass"),
    # The same rankings at ~10% (p10's knobs, keys4 decode), beside p10 and oracle10.
    "exact10": Method("exact10", P10, scorer="exact_mass"),
    "rows4_10": Method("rows4_10", P10, scorer="sampled_rows", scorer_args={"rows": 4}),
    # Issue 24: SOCKET's soft-collision decode scorer (soft_lsh.py) in place of keys4, at the
    # defaults and at ~20% (the same decode knobs as keys4's rows: equal decode density).
    "socket": Method("socket", {"decode_scorer": "socket"}),
    "socket20": Method("socket20", {**P20_DEC20, "decode_scorer": "socket"}),
}


def parse_extra_method(spec: str) -> Method:
    """NAME:KEY=VAL[,KEY=VAL...][:dense_decode] (values parsed as JSON, else strings), or
    NAME={JSON} for knobs whose values hold commas (e.g. prefill_scorer_layers: [23, 24]), or
    NAME={"knobs": {...}, "oracle": true, "sparse_decode": false, "dense_q_span": "early"} for the
    other fields of Method."""
    name, sep, raw = spec.partition("=")
    if sep and raw.lstrip().startswith("{") and ":" not in name:
        try:
            fields = json.loads(raw)
        except json.JSONDecodeError as err:
            raise SystemExit(f"--add-method {spec!r}: {err}") from None
        if not isinstance(fields, dict):
            raise SystemExit(f"--add-method {spec!r}: expected NAME=<a JSON object>")
        if "knobs" not in fields:
            fields = {"knobs": fields}
        unknown = set(fields) - {
            "knobs",
            "sparse_decode",
            "oracle",
            "scorer",
            "scorer_args",
            "dense_q_span",
            "dense_needle_rows",
        }
        if unknown:
            raise SystemExit(f"--add-method {spec!r}: unknown fields {sorted(unknown)}")
        return Method(name.strip(), **fields)
    parts = spec.split(":")
    knobs = {}
    for item in filter(None, (parts[1] if len(parts) > 1 else "").split(",")):
        key, _, raw = item.partition("=")
        try:
            knobs[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            knobs[key.strip()] = raw.strip()
    return Method(
        parts[0], knobs, sparse_decode=not (len(parts) > 2 and parts[2] == "dense_decode")
    )


def found_needle_blocks(tok, prompt: str, values: list[str]) -> list[int]:
    """The query blocks of prompt's tokens that hold any of values (those found in it)."""
    from eval.needle_rows import needle_blocks

    found = [v for v in values if v in prompt]
    block = sketchwalk.SketchWalkConfig().block_size
    return sorted({b for bl in needle_blocks(tok, prompt, found, block) for b in bl})


def build_config(method: Method):
    """The method's SketchWalkConfig, or None for dense; raises if this package rejects it. An
    oracle method's names the exact-mass ranking registered as the package's scorer."""
    if method.knobs is None:
        return None
    if method.oracle:
        return eq.method_config(eq.Method(method.name, "oracle", method.knobs, "decode"))
    if method.scorer:
        name = eq.register_method_scorer(
            eq.Method(
                method.name,
                "scores",
                method.knobs,
                "decode",
                scorer=method.scorer,
                scorer_args=method.scorer_args,
            )
        )
        return sketchwalk.SketchWalkConfig(**{**method.knobs, "prefill_scorer": name})
    return sketchwalk.SketchWalkConfig(**method.knobs)


def use_method(model, method: Method, cfg) -> None:
    if cfg is None:
        model.set_attn_implementation("sdpa")
    else:
        hf.configure(model, cfg, sparse_decode=method.sparse_decode)


def layer_densities(model, method: Method, cfg) -> tuple[dict[int, float], dict[int, float]]:
    """(prefill, decode) density per layer of the latest batch (decode: mean over its steps)."""
    if cfg is None:
        every = {i: 1.0 for i in range(model.config.num_hidden_layers)}
        return every, dict(every)
    dense = {i: 1.0 for i in range(model.config.num_hidden_layers) if cfg.is_dense_layer(i)}
    decode = hf.last_density(model, "decode")
    return {**dense, **hf.last_density(model, "prefill")}, ({**dense, **decode} if decode else {})


def sparse_layer_mean(per_layer: dict[int, float], cfg) -> float | None:
    vals = [v for k, v in per_layer.items() if not cfg.is_dense_layer(k)]
    return sum(vals) / len(vals) if vals else None


def batch_densities(per_layer: tuple[dict, dict], cfg) -> tuple[float | None, float | None]:
    """(prefill, decode) density of a batch from layer_densities, mean over the sparse layers."""
    if cfg is None:
        return 1.0, 1.0
    return tuple(sparse_layer_mean(d, cfg) for d in per_layer)


class LayerDensity:
    """Row-weighted mean density per layer over batches, prefill and decode."""

    def __init__(self):
        self.sums = {"prefill": {}, "decode": {}}
        self.rows = {"prefill": {}, "decode": {}}

    def add(self, rows: int, per_layer: tuple[dict, dict]) -> None:
        for phase, values in zip(("prefill", "decode"), per_layer):
            for layer, value in values.items():
                self.sums[phase][layer] = self.sums[phase].get(layer, 0.0) + rows * value
                self.rows[phase][layer] = self.rows[phase].get(layer, 0) + rows

    def means(self) -> dict[str, list[float | None] | int]:
        """Per-layer means of each phase, and the rows behind them ("rows": their weight when
        eval/ruler_report.py merges the results of several processes)."""
        out = {}
        for phase, sums in self.sums.items():
            out[phase] = [
                sums[i] / self.rows[phase][i] if i in sums else None
                for i in range(1 + max(sums, default=-1))
            ]
        out["rows"] = max(self.rows["prefill"].values(), default=0)
        return out


# --------------------------------------------------------------------------------------
# Batched greedy generation with early stopping


class _AllFound:
    """Stops a row once every reference string is in its new text (case-insensitive, as
    RULER's string-match-all), or any one with need_all=False (string-match-part): more
    tokens cannot change its score."""

    def __init__(self, tok, prompt_len: int, refs: list[list[str]], need_all: bool = True):
        self.tok, self.prompt_len = tok, prompt_len
        self.refs = [[r.lower() for r in rs] for rs in refs]
        self.found = all if need_all else any

    def __call__(self, input_ids, scores, **kwargs):
        done = []
        for row, refs in enumerate(self.refs):
            text = self.tok.decode(
                input_ids[row, self.prompt_len :], skip_special_tokens=True
            ).lower()
            done.append(self.found(r in text for r in refs))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def stop_token_ids(tok, model) -> list[int]:
    ids = []
    vocab = tok.get_vocab()
    special = set(tok.all_special_ids) | set(tok.added_tokens_decoder)
    for t in STOP_TOKENS:  # end-of-turn markers, where they are special tokens of this model
        if t in vocab and vocab[t] in special:
            ids.append(vocab[t])
    for extra in (tok.eos_token_id, model.generation_config.eos_token_id):
        for i in extra if isinstance(extra, (list, tuple)) else [extra]:
            if i is not None:
                ids.append(int(i))
    return list(dict.fromkeys(ids))


def generate_batch(
    model,
    tok,
    prompts: list[str],
    refs: list[list[str]],
    max_new_tokens: int,
    stop_ids: list[int],
    need_all: bool = True,
) -> list[dict]:
    """Greedy answers for prompts run as one left-padded batch."""
    from transformers import StoppingCriteriaList

    encoded = [tok(p, add_special_tokens=False).input_ids for p in prompts]
    length = max(len(e) for e in encoded)
    pad = stop_ids[0]
    ids = torch.full((len(encoded), length), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, length - len(e) :] = torch.tensor(e)
        mask[row, length - len(e) :] = 1
    ids, mask = ids.to(model.device), mask.to(model.device)
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            eos_token_id=stop_ids,
            stopping_criteria=StoppingCriteriaList([_AllFound(tok, length, refs, need_all)]),
        )
    results = []
    stops = set(stop_ids)
    for row, e in enumerate(encoded):
        new = out[row, length:].tolist()
        n = next((i + 1 for i, t in enumerate(new) if t in stops), len(new))
        results.append(
            dict(
                pred=tok.decode(new[:n], skip_special_tokens=True).strip(),
                new_tokens=n,
                prompt_tokens=len(e),
            )
        )
    return results


def task_new_tokens(task: str, args) -> int:
    """--max-new-tokens, else RULER's generation length of the task."""
    return args.max_new_tokens or eq.ruler_new_tokens(task)


def out_of_gpu_memory(err: BaseException) -> bool:
    """torch's OutOfMemoryError, or another runtime error from running out of GPU memory: a
    kernel launch's (sketchwalk ops: "CUDA launch failed: out of memory"), torch's
    AcceleratorError, cuBLAS's handle allocation. Fourteen processes on one H100 met all four
    (2026-12-07); only the first was retried then."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text
    )


def halves_on_oom(run_part, part: list, on_split=None) -> list[tuple[list, object]]:
    """[(part, run_part(part))]; where the GPU runs out of memory (out_of_gpu_memory), the same
    for each half of the part in turn (down to one sample, whose failure is raised). Concurrent
    processes share one GPU (bench/gpu_eval.sh): a batch that fits alone can fail beside them,
    and the halves give the same greedy answers up to the left padding's batch composition.
    on_split(len(part)) is called before each split."""
    try:
        return [(part, run_part(part))]
    except RuntimeError as err:  # torch.OutOfMemoryError is one
        if not out_of_gpu_memory(err) or len(part) <= 1:
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if on_split is not None:
        on_split(len(part))
    mid = len(part) // 2
    return halves_on_oom(run_part, part[:mid], on_split) + halves_on_oom(
        run_part, part[mid:], on_split
    )


def chunks(items: list, size: int) -> list[list]:
    size = size or len(items) or 1
    return [items[i : i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------
# Driver


def load(args):
    device = args.device
    dtype = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[
        args.dtype
    ]
    if args.gguf:
        gguf = Path(args.gguf)
        if not gguf.is_absolute() and args.model_dir:
            gguf = Path(args.model_dir) / gguf
        name = args.name or assets.model_name_for_gguf(gguf)
        model, tok = assets.load_gguf(gguf, attn_implementation="sdpa", dtype=dtype, device=device)
        source = str(gguf)
    else:
        name = args.name or args.model
        model, tok = assets.load_model(
            args.model, attn_implementation="sdpa", dtype=dtype, device=device
        )
        source = str(assets.ensure_model(args.model))
    return name, source, model, tok


def tokenizer_dir(tok, name: str) -> Path:
    """A saved HF tokenizer directory (RULER's generators load one by path)."""
    path = assets.asset_root() / "tokenizers" / name
    if not (path / "tokenizer_config.json").exists():
        path.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(str(path))
    return path


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def run(args) -> dict:
    from tqdm.auto import tqdm

    torch.manual_seed(0)
    t_load = time.perf_counter()
    name, source, model, tok = load(args)
    load_s = time.perf_counter() - t_load
    stop_ids = stop_token_ids(tok, model)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    tasks = eq.ruler_tasks(args.tasks)
    unknown = [t for t in tasks if t not in eq.RULER_TASKS]
    if unknown:
        raise SystemExit(f"unknown RULER tasks {unknown}; known: {sorted(eq.RULER_TASKS)}")

    # Methods: skip those whose config this package cannot build (with a note).
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods, skipped = [], {}
    extra = {m.name: m for m in map(parse_extra_method, args.add_method)}
    for m_name in wanted + [n for n in extra if n not in wanted]:
        method = extra.get(m_name) or METHODS.get(m_name)
        if method is None:
            raise SystemExit(
                f"unknown method {m_name!r}; known: {sorted(METHODS)} "
                "(or define one with --add-method)"
            )
        try:
            methods.append((method, build_config(method)))
        except (TypeError, ValueError) as err:
            skipped[m_name] = f"{type(err).__name__}: {err}"
            print(
                f"note: skipping method {m_name!r}: its config does not build here "
                f"({skipped[m_name]})",
                flush=True,
            )

    if args.layer_bands or args.band_budget or args.signal_budget:  # per-layer methods
        base = extra.get(args.band_base) or METHODS.get(args.band_base)
        if base is None or base.knobs is None:
            raise SystemExit(f"--band-base {args.band_base!r}: not a Sketch&Walk method")
        num_layers = model.config.num_hidden_layers
        per_layer = band_budget_methods(base, num_layers, args.band_budget)
        per_layer += signal_budget_methods(base, num_layers, args.signal_budget)
        if args.layer_bands:
            bands = layer_band_methods(base, num_layers, args.layer_bands)
            per_layer = picked_bands(bands, args.band_index) + per_layer
        for method in per_layer:
            methods.append((method, build_config(method)))

    # Data: RULER samples (cached under <assets>/ruler) and the demo's needle prompts.
    t_data = time.perf_counter()
    tok_dir = tokenizer_dir(tok, name)
    samples = {
        (task, L): eq.ruler_samples(task, args.samples, L, tok_dir, args.seed)[: args.samples]
        for L in lengths
        for task in tasks
    }
    rng = random.Random(args.needle_seed)  # the demo's key and value for its seed
    key = rng.choice(["lucky-falcon", "quiet-harbor", "amber-violin", "brisk-meadow"])
    value = str(rng.randint(1_000_000, 9_999_999))
    depths = (
        [0.04 + 0.92 * i / (args.needles - 1) for i in range(args.needles)]
        if args.needles > 1
        else [0.5] * args.needles
    )
    needle_prompts = [demo.build_prompt(tok, args.needle_tokens, d, key, value) for d in depths]
    data_s = time.perf_counter() - t_data

    batch = (
        args.batch_size if args.batch_size >= 0 else (0 if args.device.startswith("cuda") else 1)
    )
    result = dict(
        model=name,
        source=source,
        device=args.device,
        device_name=device_name(args.device),
        dtype=str(model.dtype).replace("torch.", ""),
        torch=torch.__version__,
        transformers=__import__("transformers").__version__,
        sketchwalk=sketchwalk.__version__,
        commit=git_commit(),
        host=platform.node(),
        lengths=lengths,
        tasks=tasks,
        samples_per_task=args.samples,
        ruler_seed=args.seed,
        max_new_tokens={t: task_new_tokens(t, args) for t in tasks},
        batch_size=batch,
        needles=dict(
            count=len(depths),
            depths=depths,
            tokens=args.needle_tokens,
            key=key,
            value=value,
            max_new_tokens=args.needle_new_tokens,
        ),
        stop_token_ids=stop_ids,
        load_seconds=load_s,
        data_seconds=data_s,
        skipped_methods=skipped,
        methods=[],
    )
    total = len(methods) * (len(depths) + sum(len(s) for s in samples.values()))
    bar = tqdm(
        total=total,
        desc=f"eval {name}",
        unit="sample",
        dynamic_ncols=True,
        mininterval=0.1 if sys.stderr.isatty() else 10.0,
    )
    for method, cfg in methods:
        rec = dict(
            name=method.name,
            knobs=method.knobs,
            sparse_decode=method.sparse_decode,
            oracle=method.oracle,
            dense_q_span=method.dense_q_span,
            dense_needle_rows=method.dense_needle_rows,
            config=dataclasses.asdict(cfg) if cfg is not None else None,
            ruler={},
            ruler_mean={},
            density={},
            answers={},
            error=None,
            seconds=0.0,
        )
        result["methods"].append(rec)
        start = time.perf_counter()
        span = contextlib.ExitStack()  # the method's dense query span, if any, until it is done
        try:
            enter_dense_rows(span, method, cfg)  # the span, if any
            use_method(model, method, cfg)
            # Needles.
            bar.set_postfix_str(f"{method.name} | needles")
            found, answers, dens = 0, [], []
            rec["oom_splits"] = []  # batch sizes halved after running out of GPU memory

            def needles_part(part):
                outs = generate_batch(
                    model,
                    tok,
                    [p for _, p in part],
                    [[value]] * len(part),
                    args.needle_new_tokens,
                    stop_ids,
                )
                return outs, layer_densities(model, method, cfg)

            for whole in chunks(list(zip(depths, needle_prompts)), batch):
                for part, (outs, layers) in halves_on_oom(
                    needles_part, whole, rec["oom_splits"].append
                ):
                    dens.append((len(part), *batch_densities(layers, cfg)))
                    for (depth, _), o in zip(part, outs):
                        o["depth"] = depth
                        o["found"] = value in o["pred"]
                        found += o["found"]
                        answers.append(o)
                    bar.update(len(part))
            rec["needles_found"] = found
            rec["answers"]["needles"] = answers
            rec["density"]["needles"] = weighted(dens)
            write_outputs(result, args)
            # RULER.
            per_layer = {L: LayerDensity() for L in lengths}
            for (task, L), items in samples.items():
                bar.set_postfix_str(f"{method.name} | {task} @ {L}")
                scores, answers, dens = [], [], []
                need_all = eq.RULER_METRICS[eq.RULER_TASKS[task][0]] is eq.string_match_all

                def ruler_part(part, task=task, need_all=need_all):
                    prompts = [eq.chat_prompt(tok, it["input"]) for it in part]
                    with contextlib.ExitStack() as rows:
                        if method.dense_needle_rows:  # row b of the batch: its own needles
                            needles = [
                                found_needle_blocks(tok, p, it["outputs"])
                                for p, it in zip(prompts, part)
                            ]
                            rows.enter_context(
                                phase_span.dense_query_rows(lambda n, seq: needles[seq])
                            )
                        outs = generate_batch(
                            model,
                            tok,
                            prompts,
                            [it["outputs"] for it in part],
                            task_new_tokens(task, args),
                            stop_ids,
                            need_all,
                        )
                    return outs, layer_densities(model, method, cfg)

                for whole in chunks(items, batch):
                    for part, (outs, layers) in halves_on_oom(
                        ruler_part, whole, rec["oom_splits"].append
                    ):
                        dens.append((len(part), *batch_densities(layers, cfg)))
                        per_layer[L].add(len(part), layers)
                        for it, o in zip(part, outs):
                            o["refs"] = it["outputs"]
                            o["score"] = eq.ruler_score(task, o["pred"], it["outputs"])
                            scores.append(o["score"])
                            answers.append(o)
                        bar.update(len(part))
                rec["ruler"][f"{task}@{L}"] = 100.0 * eq.mean(scores)
                rec["answers"][f"{task}@{L}"] = answers
                per_len = rec["density"].setdefault(str(L), [])
                per_len.extend(dens)
                rec["density_batches"] = {
                    n: list(v) for n, v in rec["density"].items() if n != "needles"
                }
                rec["density_per_layer"] = {str(n): d.means() for n, d in per_layer.items()}
                rec["seconds"] = time.perf_counter() - start
                write_outputs(result, args)  # partial results survive a timeout
            for L in lengths:
                rec["ruler_mean"][str(L)] = eq.mean(rec["ruler"][f"{t}@{L}"] for t in tasks)
                rec["density"][str(L)] = weighted(rec["density"][str(L)])
        except Exception as err:  # keep the other methods' results
            rec["error"] = f"{type(err).__name__}: {err}"
            print(f"\nmethod {method.name!r} failed:\n{traceback.format_exc()}", flush=True)
        finally:
            span.close()
        rec["seconds"] = time.perf_counter() - start
        write_outputs(result, args)
    bar.close()
    return result


# --------------------------------------------------------------------------------------
# Output


def output_stem(result: dict, args) -> Path:
    out_dir = Path(args.out) if args.out else RESULTS
    lens = "_".join(f"{L // 1024}k" if L % 1024 == 0 else str(L) for L in result["lengths"])
    return out_dir / f"decode_quality_{result['model']}_{lens}"


def write_outputs(result: dict, args) -> None:
    stem = output_stem(result, args)
    stem.parent.mkdir(parents=True, exist_ok=True)
    eq.with_ext(stem, ".json").write_text(json.dumps(result, indent=1) + "\n")
    eq.with_ext(stem, ".md").write_text(markdown(result) + "\n")


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _new_tokens_text(max_new_tokens) -> str:
    """RULER's generation lengths of a result, grouped ('128 (niah_*), 30 (vt)'); an int from
    results written before they were per task."""
    if not isinstance(max_new_tokens, dict):
        return str(max_new_tokens)
    by_n: dict[int, list[str]] = {}
    for t, n in max_new_tokens.items():
        by_n.setdefault(n, []).append(t)
    if len(by_n) == 1:
        return str(next(iter(by_n)))
    return ", ".join(f"{n} ({', '.join(ts)})" for n, ts in by_n.items())


def markdown(result: dict) -> str:
    ms = result["methods"]
    nd = result["needles"]
    lines = [
        f"# Decode-selection quality vs dense: {result['model']}",
        "",
        f"{result['device_name']} ({result['dtype']}), torch {result['torch']}, transformers "
        f"{result['transformers']}, sketchwalk {result['sketchwalk']}, commit {result['commit']}. "
        f"RULER: {result['samples_per_task']} samples per task (seed {result['ruler_seed']}), "
        f"greedy, RULER's metric (string-match-all; string-match-part for qa), up to "
        f"{_new_tokens_text(result['max_new_tokens'])} new tokens (stopped at EOS or once the "
        f"references are in the output). Needles: the demo's needle at {nd['count']} "
        f"depths of a ~{nd['tokens']}-token haystack, up to {nd['max_new_tokens']} new tokens. "
        "Density: kept fraction of the causal area, mean over the sparse layers "
        "(hf.last_density; decode = mean over decode steps).",
        "",
        "| | " + " | ".join(m["name"] for m in ms) + " |",
        "|---|" + "---|" * len(ms),
    ]

    def row(label, fn):
        cells = []
        for m in ms:
            try:
                cells.append(fn(m))
            except (KeyError, TypeError):
                cells.append("")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for L in result["lengths"]:
        for t in result["tasks"]:
            row(f"{t} @ {L}", lambda m, k=f"{t}@{L}": f"{m['ruler'][k]:.0f}")
        row(f"**RULER mean @ {L}**", lambda m, L=L: f"**{m['ruler_mean'][str(L)]:.1f}**")
    row(
        f"**needles found (of {nd['count']})**", lambda m: f"**{m['needles_found']}/{nd['count']}**"
    )
    for L in result["lengths"]:
        row(f"prefill density @ {L}", lambda m, L=L: _pct(m["density"][str(L)]["prefill"]))
        row(f"decode density @ {L}", lambda m, L=L: _pct(m["density"][str(L)]["decode"]))
    row(
        f"prefill density, needles (~{nd['tokens']})",
        lambda m: _pct(m["density"]["needles"]["prefill"]),
    )
    row(
        f"decode density, needles (~{nd['tokens']})",
        lambda m: _pct(m["density"]["needles"]["decode"]),
    )
    row(
        "decode",
        lambda m: (
            "dense"
            if m["config"] is None or not m["sparse_decode"]
            else "oracle"
            if m.get("oracle")
            else m["config"].get("decode_scorer", "walk (no decode_scorer knob)")
        ),
    )
    row("time (s)", lambda m: f"{m['seconds']:.0f}")
    lines += ["", "Methods (knobs on top of SketchWalkConfig defaults):"]
    for m in ms:
        knobs = "dense SDPA" if m["knobs"] is None else (m["knobs"] or "defaults")
        extra = ("" if m["sparse_decode"] else ", dense decode steps") + (
            ", blocks ranked by their exact attention mass (oracle)" if m.get("oracle") else ""
        )
        err = f" **FAILED: {m['error']}**" if m.get("error") else ""
        splits = m.get("oom_splits")
        if splits:
            extra += f"; {len(splits)} halvings of a batch after running out of GPU memory"
        lines.append(f"- {m['name']}: {knobs}{extra}{err}")
    for name, why in result.get("skipped_methods", {}).items():
        lines.append(f"- {name}: skipped, config does not build here ({why})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.decode_quality", description=__doc__.splitlines()[0]
    )
    src = parser.add_argument_group("model (one of)")
    src.add_argument("--gguf", default="", help="GGUF file (absolute, or relative to --model-dir)")
    src.add_argument("--model-dir", default="", help="folder holding --gguf")
    src.add_argument(
        "--model",
        default="smollm2-135m",
        choices=sorted(assets.MODELS),
        help="without --gguf: a model converted by examples/assets.py",
    )
    parser.add_argument("--name", default="", help="model label (default: from the GGUF name)")
    parser.add_argument("--lengths", default="4096,8192", help="RULER lengths, comma-separated")
    parser.add_argument(
        "--tasks",
        default=DEFAULT_TASKS,
        help=f"comma-separated, from {list(eq.RULER_TASKS)}; or 'all' (the 13) "
        "or 'niah' (the 8 niah_*), 'half1' / 'half2' (the 13 split 6 + 7)",
    )
    parser.add_argument("--samples", type=int, default=10, help="RULER samples per task and length")
    parser.add_argument("--needles", type=int, default=12, help="needle depths (0 = none)")
    parser.add_argument("--needle-tokens", type=int, default=6000, help="needle prompt length")
    parser.add_argument("--needle-new-tokens", type=int, default=16)
    parser.add_argument("--needle-seed", type=int, default=7, help="the demo's seed: key and value")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=0,
        help="generation cap for every task; 0: RULER's length of each task",
    )
    parser.add_argument(
        "--methods",
        default="dense,sparse_prefill,default,paper,keys4_10",
        help=f"comma-separated, from {sorted(METHODS)}",
    )
    parser.add_argument(
        "--add-method",
        action="append",
        default=[],
        metavar="NAME:KEY=VAL[,KEY=VAL...][:dense_decode] | NAME={JSON}",
        help="an extra method with its own knobs (repeatable); NAME={JSON} for knobs holding "
        'commas, or {"knobs": {...}, "oracle": true} (parse_extra_method)',
    )
    add_band_arguments(parser, "default")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=-1,
        help="rows per generate call; 0 = all samples of a task and length; "
        "default 0 on CUDA, 1 on CPU",
    )
    parser.add_argument("--seed", type=int, default=42, help="RULER generator seed")
    parser.add_argument(
        "--assets",
        default="",
        help="asset root (sets $SKETCHWALK_ASSETS): RULER cache, tokenizer dirs",
    )
    parser.add_argument("--out", default="", help="output folder (default eval/results)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bf16", "fp16", "fp32"],
        help="auto: bf16 on CUDA, fp32 on CPU",
    )
    args = parser.parse_args()
    if args.assets:
        os.environ["SKETCHWALK_ASSETS"] = str(Path(args.assets).resolve())
    result = run(args)
    print()
    print(markdown(result))
    print(f"\nwritten: {eq.with_ext(output_stem(result, args), '.md')} (+ .json)")


if __name__ == "__main__":
    main()
