"""Merges the RULER results of several eval/decode_quality.py processes (one per method group
and length, bench/gpu_eval.sh) into one table per model, with the density achieved per length
and per layer, and plots quality against density (RULER, and perplexity from
eval/quality_sweep.py's JSON when given).

    python -m eval.ruler_report --ruler 'out/*/decode_quality_*.json' \\
        --ppl out/ppl/perplexity_smollm2-135m_8k.json --out eval/results/quality_smollm2-135m_h200

Writes <out>.json (the merged records), <out>.md and <out>.png.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import statistics
from pathlib import Path


def merge(files: list[Path]) -> dict:
    """One record per method: RULER scores, densities (per length, per layer) and answers of
    every file; the run facts of the first file, the commits of all."""
    merged: dict | None = None
    by_name: dict[str, dict] = {}
    for path in files:
        run = json.loads(path.read_text())
        if merged is None:
            merged = {
                k: v
                for k, v in run.items()
                if k
                not in (
                    "methods",
                    "lengths",
                    "tasks",
                    "commit",
                    "commits",
                    "note",
                    "load_seconds",
                    "data_seconds",
                )
            }
            merged.update(lengths=[], tasks=[], commits=[], methods=[])
        elif run["model"] != merged["model"]:
            raise SystemExit(f"{path}: model {run['model']}, expected {merged['model']}")
        for key in ("lengths", "tasks"):
            merged[key] += [x for x in run[key] if x not in merged[key]]
        # A process's file has "commit"; an earlier merge of this module, "commits" (it merges
        # again: its densities are per-length means, weighted by the answers it holds).
        for commit in run.get("commits", [run.get("commit")]):
            if commit not in merged["commits"]:
                merged["commits"].append(commit)
        for rec in run["methods"]:
            into = by_name.get(rec["name"])
            if into is None:
                into = by_name[rec["name"]] = dict(
                    name=rec["name"],
                    knobs=rec["knobs"],
                    sparse_decode=rec["sparse_decode"],
                    oracle=rec.get("oracle", False),
                    config=rec["config"],
                    ruler={},
                    density={},
                    density_per_layer={},
                    answers={},
                    errors=[],
                    seconds=0.0,
                    _batches={},
                    _layers={},
                )
                merged["methods"].append(into)
            into["ruler"].update(rec["ruler"])
            into["answers"].update({k: v for k, v in rec["answers"].items() if k != "needles"})
            for length in map(str, run["lengths"]):
                into["_batches"].setdefault(length, []).extend(_density_batches(rec, length))
                layers = rec.get("density_per_layer", {}).get(length)
                if layers:
                    into["_layers"].setdefault(length, []).append(layers)
            if rec.get("error"):
                into["errors"].append(rec["error"])
            into["seconds"] += rec["seconds"]
    if merged is None:
        raise SystemExit("no result files")
    merged["lengths"].sort()
    for rec in merged["methods"]:
        for length, batches in rec.pop("_batches").items():
            rec["density"][length] = weighted(batches)
        for length, parts in rec.pop("_layers").items():
            rec["density_per_layer"][length] = _weighted_layers(parts)
        rec["ruler_mean"] = {}
        for length in merged["lengths"]:
            scores = [rec["ruler"].get(f"{t}@{length}") for t in merged["tasks"]]
            if all(s is not None for s in scores):  # only complete lengths get a mean
                rec["ruler_mean"][str(length)] = sum(scores) / len(scores)
    return merged


def _density_batches(rec: dict, length: str) -> list[tuple[int, float | None, float | None]]:
    """(rows, prefill, decode) per generate call of one length: the stored batches, else (older
    or finished files) the length's weighted means, weighted by the samples answered."""
    if length in rec.get("density_batches", {}):
        return [tuple(b) for b in rec["density_batches"][length]]
    dens = rec["density"].get(length)
    if isinstance(dens, list):
        return [tuple(b) for b in dens]
    if isinstance(dens, dict):
        rows = sum(len(v) for k, v in rec["answers"].items() if k.endswith(f"@{length}"))
        return [(rows, dens.get("prefill"), dens.get("decode"))]
    return []


def weighted(entries) -> dict:
    """[(rows, prefill, decode), ...] -> dict(prefill=, decode=) weighted by rows (None entries
    skipped; None where no rows). eval/decode_quality.py uses it per length as well."""
    out = {}
    for i, key in ((1, "prefill"), (2, "decode")):
        pairs = [(e[0], e[i]) for e in entries if e[i] is not None]
        rows = sum(n for n, _ in pairs)
        out[key] = sum(n * v for n, v in pairs) / rows if rows else None
    return out


def _weighted_layers(parts: list[dict]) -> dict:
    """Per-layer means of several processes, weighted by their rows."""
    out = {"rows": sum(p.get("rows", 1) for p in parts)}
    for phase in ("prefill", "decode"):
        n = max(len(p[phase]) for p in parts)
        layers = []
        for i in range(n):
            pairs = [
                (p.get("rows", 1), p[phase][i])
                for p in parts
                if i < len(p[phase]) and p[phase][i] is not None
            ]
            rows = sum(r for r, _ in pairs)
            layers.append(sum(r * v for r, v in pairs) / rows if rows else None)
        out[phase] = layers
    return out


def paired(
    result: dict, a: str, b: str, length: int | None = None
) -> tuple[float, float, int] | None:
    """Mean of method a's score minus method b's over the samples both answered (same task,
    length and sample index: the generators are seeded), in points, with its standard error
    over samples, and the count; None without common samples. `length`: that length only."""
    ms = {m["name"]: m for m in result["methods"]}
    unknown = [name for name in (a, b) if name not in ms]
    if unknown:
        raise SystemExit(f"--pairs: no method {unknown} in the results; have {sorted(ms)}")
    diffs = []
    for key, rows in ms[a]["answers"].items():
        if length is not None and not key.endswith(f"@{length}"):
            continue
        other = ms[b]["answers"].get(key, [])
        diffs += [100 * (x["score"] - y["score"]) for x, y in zip(rows, other)]
    if not diffs:
        return None
    n = len(diffs)
    se = statistics.stdev(diffs) / n**0.5 if n > 1 else 0.0
    return statistics.fmean(diffs), se, n


def split_pair(spec: str, names: set[str]) -> tuple[str, str]:
    """'A-B' as (A, B), split at the '-' that leaves two method names of the results (a name
    may hold '-' itself, e.g. exact_l2-8); else at the first '-' (paired() then names what is
    missing)."""
    cuts = [i for i, ch in enumerate(spec) if ch == "-"]
    for i in cuts:
        if spec[:i] in names and spec[i + 1 :] in names:
            return spec[:i], spec[i + 1 :]
    a, _, b = spec.partition("-")
    return a, b


def pairs_markdown(result: dict, pairs: list[tuple[str, str]]) -> str:
    lines = [
        "Paired differences (same samples; points, ± standard error over samples):",
        "",
        "| a - b | length | mean | samples |",
        "|---|---|---|---|",
    ]
    for a, b in pairs:
        for length in [None, *result.get("lengths", [])]:
            got = paired(result, a, b, length)
            if got is None and length is not None:
                continue
            cell = (
                "no common samples" if got is None else f"{got[0]:+.1f} ± {got[1]:.1f} | {got[2]}"
            )
            lines.append(f"| {a} - {b} | {length or 'all'} | {cell} |")
    return "\n".join(lines)


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def markdown(result: dict, ppl: dict | None) -> str:
    ms, lengths, tasks = result["methods"], result["lengths"], result["tasks"]
    dense = next((m for m in ms if m["config"] is None), None)
    samples = result["samples_per_task"]
    lines = [
        f"# RULER ({len(tasks)} tasks, {samples} samples each) vs dense: {result['model']}",
        "",
        f"{result['device_name']} ({result['dtype']}), torch {result['torch']}, transformers "
        f"{result['transformers']}, commit(s) {', '.join(result['commits'])}. Greedy, RULER's "
        "metric (string-match-all; string-match-part for qa), RULER's generation lengths, "
        "prefill and decode sparse (keys4 decode; the paper's methods the walk decode). Density: "
        "kept fraction of the causal area, mean over the sparse layers (decode: over the steps)."
        + (f" {result['note']}" if result.get("note") else ""),
        "",
        "| method | "
        + " | ".join(f"RULER @ {L} (vs dense) | prefill / decode density @ {L}" for L in lengths)
        + " | (task, length) pairs run: vs dense on them |",
        "|---|" + "---|---|" * len(lengths) + "---|",
    ]
    for m in ms:
        cells = []
        for L in lengths:
            mean = m["ruler_mean"].get(str(L))
            ref = dense["ruler_mean"].get(str(L)) if dense else None
            vs_dense = mean is not None and ref is not None and m is not dense
            delta = f" ({mean - ref:+.1f})" if vs_dense else ""
            cells.append("" if mean is None else f"{mean:.1f}{delta}")
            d = m["density"].get(str(L), {})
            cells.append(f"{_pct(d.get('prefill'))} / {_pct(d.get('decode'))}" if d else "")
        # A process that failed and was rerun leaves an error but no gap: name only the gaps.
        gaps = m["errors"] and len(m["ruler_mean"]) < len(lengths)
        err = " (FAILED: " + "; ".join(m["errors"]) + ")" if gaps else ""
        pairs = [k for k in m["ruler"] if dense and k in dense["ruler"]]
        if pairs and m is not dense:
            delta = sum(m["ruler"][k] - dense["ruler"][k] for k in pairs) / len(pairs)
            cells.append(f"{len(pairs)}: {delta:+.1f}")
        else:
            cells.append(str(len(m["ruler"])))
        lines.append(f"| {m['name']}{err} | " + " | ".join(cells) + " |")
    # Per task, mean over the lengths every method completed.
    over = ", ".join(map(str, lengths))
    lines += [
        "",
        f"Per task (score out of 100, mean over {over} where run):",
        "",
        "| task | " + " | ".join(m["name"] for m in ms) + " |",
        "|---|" + "---|" * len(ms),
    ]
    for t in tasks:
        cells = []
        for m in ms:
            vals = [m["ruler"][f"{t}@{L}"] for L in lengths if f"{t}@{L}" in m["ruler"]]
            cells.append(f"{sum(vals) / len(vals):.0f}" if vals else "")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    lines += ["", "Methods (knobs on top of SketchWalkConfig defaults):"]
    for m in ms:
        what = "dense SDPA" if m["knobs"] is None else (m["knobs"] or "defaults")
        lines.append(
            f"- {m['name']}: {what}"
            + (", oracle ranking (exact block mass)" if m["oracle"] else "")
        )
    # Density per layer at the longest length, prefill.
    L = str(lengths[-1])
    per_layer = [
        (m["name"], m["density_per_layer"].get(L, {}).get("prefill") or [])
        for m in ms
        if m["config"] is not None
    ]
    if any(p for _, p in per_layer):
        n = max(len(p) for _, p in per_layer)
        lines += [
            "",
            f"Prefill density per layer @ {L} (%, layer 0 first):",
            "",
            "| method | " + " | ".join(str(i) for i in range(n)) + " |",
            "|---|" + "---|" * n,
        ]
        for name, p in per_layer:
            lines.append(
                f"| {name} | " + " | ".join("" if v is None else f"{100 * v:.0f}" for v in p) + " |"
            )
    if ppl:
        lines += ["", ppl_markdown(ppl)]
    return "\n".join(lines)


def ppl_markdown(ppl: dict) -> str:
    ms = ppl["methods"]
    dense = next(m for m in ms if m["kind"] == "dense")
    windows = len(dense.get("window_perplexity", []))
    lines = [
        f"Perplexity, second half of {windows} windows of {ppl['ppl_length']} tokens of "
        f"Paul Graham essays ({ppl['device']}, commit {ppl['commit']}):",
        "",
        "| method | prefill density (sparse layers) | perplexity | vs dense |",
        "|---|---|---|---|",
    ]
    for m in ms:
        vs = "" if m is dense else f"{100 * (m['perplexity'] / dense['perplexity'] - 1):+.2f}%"
        lines.append(
            f"| {m['name']} | {_pct(m['density_sparse_layers'])} | {m['perplexity']:.3f} | {vs} |"
        )
    return "\n".join(lines)


# The second panel's task set: RULER's hard half, where most of issue 21's ablations ran alone.
# eval/quality_sweep.py's "half2" (this module does not import it: it needs no torch);
# tests/test_eval_report.py checks the two agree.
HARD_HALF = (
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "fwe",
    "qa_1",
    "qa_2",
)


def task_mean(m: dict, tasks, length) -> float | None:
    """Method m's mean score over tasks at length, None unless it ran all of them."""
    scores = [m["ruler"].get(f"{t}@{length}") for t in tasks]
    return None if any(s is None for s in scores) else sum(scores) / len(scores)


def _quality_panel(ax, result: dict, dense: dict, tasks, styles: dict, title: str) -> None:
    """RULER mean over tasks minus dense's on the same tasks, against the prefill density: one
    point per length, one line per method (styles: name -> (color, marker))."""
    for m in result["methods"]:
        if m is dense:
            continue
        xs, ys, tags = [], [], []
        for L in result["lengths"]:
            mean, ref = task_mean(m, tasks, L), task_mean(dense, tasks, L)
            d = m["density"].get(str(L), {})
            if mean is not None and ref is not None and d.get("prefill") is not None:
                xs.append(100 * d["prefill"])
                ys.append(mean - ref)
                tags.append(f"{L // 1024}K" if L % 1024 == 0 else str(L))
        if xs:
            color, marker = styles[m["name"]]
            ax.plot(xs, ys, marker=marker, color=color, linestyle=":", label=m["name"])
            for x, y, tag in zip(xs, ys, tags):  # which length each point is
                ax.annotate(tag, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.axhline(-1, color="grey", linewidth=0.6, linestyle="--")  # the target
    ax.set_xlabel("prefill density, sparse layers (%)")
    ax.set_ylabel("RULER mean minus dense's (points)")
    ax.set_title(title, fontsize=9)
    if any(not line.get_label().startswith("_") for line in ax.get_lines()):
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))


def plot(result: dict, ppl: dict | None, path: Path) -> None:
    """All tasks (lengths where a method ran every task), the hard half when some method ran
    it alone, and perplexity when given: one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dense = next((m for m in result["methods"] if m["config"] is None), None)
    hard = [t for t in HARD_HALF if t in result["tasks"]]
    with_hard = (
        dense is not None
        and len(hard) == len(HARD_HALF)
        and any(
            task_mean(m, hard, L) is not None and str(L) not in m["ruler_mean"]
            for m in result["methods"]
            for L in result["lengths"]
        )
    )
    panels = 1 + with_hard + bool(ppl)
    fig, axes = plt.subplots(1, panels, figsize=(8 * panels, 4.6), squeeze=False)
    # One (color, marker) per method, the same in every panel: 10 colors, the marker moved on by
    # one more every 10 methods, so no two of the first 120 look alike.
    markers, colors = "osD^v<>pPX*h", plt.get_cmap("tab10").colors
    styles = {
        m["name"]: (colors[i % 10], markers[(i + i // 10) % len(markers)])
        for i, m in enumerate(result["methods"])
    }
    lengths = ", ".join(str(L) for L in result["lengths"])
    if dense is not None:
        _quality_panel(
            axes[0][0],
            result,
            dense,
            result["tasks"],
            styles,
            f"{result['model']}: RULER ({len(result['tasks'])} tasks), one point per length "
            f"({lengths}), prefill and decode sparse",
        )
    if with_hard:
        _quality_panel(
            axes[0][1],
            result,
            dense,
            hard,
            styles,
            f"{result['model']}: RULER's hard half ({len(hard)} tasks), one point per length",
        )
    if ppl:
        ax = axes[0][panels - 1]
        base = next(m for m in ppl["methods"] if m["kind"] == "dense")["perplexity"]
        for m in ppl["methods"]:
            if m["kind"] == "dense":
                continue
            ax.scatter(
                100 * m["density_sparse_layers"],
                100 * (m["perplexity"] / base - 1),
                marker={"oracle": "*", "scores": "D"}.get(m["kind"], "o"),
                s=30,
            )
            ax.annotate(
                m["name"][:34],
                (100 * m["density_sparse_layers"], 100 * (m["perplexity"] / base - 1)),
                fontsize=6,
            )
        ax.set_xlabel("prefill density, sparse layers (%)")
        ax.set_ylabel("perplexity vs dense (%)")
        ax.set_title(f"perplexity at {ppl['ppl_length']} tokens", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.ruler_report", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--ruler",
        action="append",
        required=True,
        help="decode_quality JSON files (globs; repeatable)",
    )
    parser.add_argument("--ppl", default="", help="a quality_sweep JSON with perplexity")
    parser.add_argument("--out", required=True, help="output stem (.json, .md, .png added)")
    parser.add_argument("--note", default="", help="a sentence added under the table's header")
    parser.add_argument(
        "--pairs", default="", help="A-B,C-D: paired differences between methods added to the .md"
    )
    args = parser.parse_args()
    # Natural order (group 2 before group 10): the methods appear as the runs listed them.
    files = sorted(
        {Path(f) for pattern in args.ruler for f in glob.glob(pattern)},
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))],
    )
    result = merge(files)
    if args.note:
        result["note"] = args.note
    ppl = json.loads(Path(args.ppl).read_text()) if args.ppl else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / (out.name + ".json")).write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result, ppl)
    names = {m["name"] for m in result["methods"]}
    pairs = [split_pair(p, names) for p in args.pairs.split(",") if p]
    if pairs:
        text += "\n\n" + pairs_markdown(result, pairs)
    (out.parent / (out.name + ".md")).write_text(text + "\n")
    plot(result, ppl, out.parent / (out.name + ".png"))
    print(text)


if __name__ == "__main__":
    main()
