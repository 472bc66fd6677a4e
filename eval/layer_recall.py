"""Per layer, how much of the exact attention mass the package's prefill selection keeps, and a
calibration-free signal beside it (issue 21: where the points go, and whether the selection's
own numbers say so without a calibration set).

For each sparse layer of one prefill of real text this records:
- recall: per query block, the share of its exact causal attention mass (summed over the query
  heads, eval/quality_sweep.exact_block_mass) that lies in the key blocks the selection kept;
  the mean over the rows the selection thinned (rows that keep every causal block are left out);
- entropy: per query block, the entropy of the walk's scores (the selection's own input) over
  the causal key blocks, normalized by log(blocks); near 1 a flat ranking, near 0 a peaked one
  (sketchwalk.calibration.causal_walk_entropy, what the library's calibration records);
- density: the kept share of the layer's causal area, as the package counts it.

    python -m eval.layer_recall --model qwen2.5-coder-1.5b --ppl-length 8192 --ppl-windows 1 \\
        --out eval/results/layer_recall_qwen2.5-coder-1.5b_8k_cpu

Writes <out>.json and <out>.md. Plain PyTorch around the package's own prefill (CPU or GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from unittest import mock

import torch

import sketchwalk
from bench.python.commit import git_commit
from eval import quality_sweep as eq
from examples import assets
from sketchwalk import attention, calibration
from sketchwalk.integrations import hf


def block_recall(
    mass: torch.Tensor, block_index: torch.Tensor, num_selected: torch.Tensor
) -> torch.Tensor:
    """[Nq] share of each query block's mass (mass [Nq, Nk], rows summing to 1) in its kept key
    blocks (block_index [Nq, width], -1 padded; num_selected [Nq])."""
    width = block_index.shape[-1]
    kept = torch.arange(width, device=block_index.device)[None, :] < num_selected[:, None].long()
    cols = block_index.long().clamp_min(0)
    return (mass.gather(1, cols) * kept).sum(-1)


class LayerRecall:
    """Collects recall, entropy and density per layer over the prefills run inside `watch()`."""

    def __init__(self, block_size: int = 64):
        self.block_size = block_size
        self.rows: dict[int, dict[str, list[float]]] = {}
        self._layer = None

    @contextlib.contextmanager
    def watch(self):
        """attention._prefill and attention._select_prefill wrapped (batch 1, one selection per
        layer), restored on exit."""
        prefill, select = attention._prefill, attention._select_prefill

        def watched_prefill(q, k, v, layer_idx, state):
            self._layer = (layer_idx, q, k)
            try:
                return prefill(q, k, v, layer_idx, state)
            finally:
                self._layer = None

        def watched_select(
            walk, num_tokens, num_kv_heads, cfg, num_keys=None, layer_idx=None, q=None
        ):
            block_index, num_selected = select(
                walk, num_tokens, num_kv_heads, cfg, num_keys, layer_idx=layer_idx, q=q
            )
            if self._layer is not None:
                self._record(walk, block_index, num_selected, cfg)
            return block_index, num_selected

        with (
            mock.patch.object(attention, "_prefill", watched_prefill),
            mock.patch.object(attention, "_select_prefill", watched_select),
        ):
            yield self

    def _record(self, walk, block_index, num_selected, cfg) -> None:
        layer_idx, q, k = self._layer
        if q.shape[0] != 1 or cfg.prefill_selection != "layer" or q.shape[2] != k.shape[2]:
            raise NotImplementedError("layer_recall: batch 1, prefill_selection 'layer', no cache")
        mass = eq.exact_block_mass(q, k, self.block_size)[0]
        self._record_mass(layer_idx, mass, walk, block_index[0, 0], num_selected[0, 0])

    def _record_mass(self, layer_idx: int, mass, walk, index, count) -> None:
        """One layer's record from its exact block mass [Nq, Nk] and its selection (index
        [Nq, width], count [Nq]): subclasses add what they read from the same mass."""
        recall = block_recall(mass, index, count).cpu()
        thinned = (count.cpu() < torch.arange(1, count.numel() + 1)).float()
        nq = count.numel()
        area = nq * (nq + 1) / 2
        rec = self.rows.setdefault(layer_idx, {"recall": [], "entropy": [], "density": []})
        if thinned.sum() > 0:
            rec["recall"].append(float((recall * thinned).sum() / thinned.sum()))
            total, rows = calibration.causal_walk_entropy(walk[:1], count[None])
            rec["entropy"].append(total / rows)
        rec["density"].append(float(count.sum()) / area)

    def table(self) -> dict[int, dict[str, float]]:
        """Per layer: the means over the recorded prefills."""

        def mean(xs):
            return sum(xs) / len(xs) if xs else None

        return {layer: {k: mean(v) for k, v in d.items()} for layer, d in sorted(self.rows.items())}


def markdown(result: dict) -> str:
    lines = [
        f"# Per-layer recall of the exact attention mass: {result['model']}, "
        f"{result['ppl_length']} tokens",
        "",
        f"{result['device']}, torch {result['torch']}, commit {result['commit']}; knobs "
        f"{result['knobs'] or 'the defaults'}; {result['windows']} window(s) of real text. Recall: "
        "share of each thinned query block's exact mass (summed over query heads) in its kept "
        "key blocks; entropy: of the walk's scores over the causal blocks, normalized to [0, 1].",
        "",
        "| layer | density | recall | entropy |",
        "|---|---|---|---|",
    ]
    for layer, row in result["layers"].items():
        cells = [
            f"{100 * row[k]:.1f}%" if row[k] is not None else "" for k in ("density", "recall")
        ]
        ent = "" if row["entropy"] is None else f"{row['entropy']:.3f}"
        lines.append(f"| {layer} | {cells[0]} | {cells[1]} | {ent} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eval.layer_recall", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", default="smollm2-135m", choices=sorted(assets.MODELS))
    parser.add_argument("--ppl-length", type=int, default=8192)
    parser.add_argument("--ppl-windows", type=int, default=1)
    parser.add_argument("--knobs", default="{}", help="SketchWalkConfig keyword arguments (JSON)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", required=True, help="output stem (.json and .md added)")
    args = parser.parse_args()
    knobs = json.loads(args.knobs)
    cfg = sketchwalk.SketchWalkConfig(**knobs)
    model, tok = assets.load_model(args.model, attn_implementation="sdpa", device=args.device)
    hf.configure(model, cfg)
    windows = eq.ppl_windows(tok, args.ppl_length, args.ppl_windows)
    recorder = LayerRecall(cfg.block_size)
    with torch.no_grad(), recorder.watch():
        for ids in windows:
            model(ids[None].to(args.device), use_cache=False)
    result = dict(
        model=args.model,
        ppl_length=args.ppl_length,
        windows=len(windows),
        knobs=knobs,
        device=args.device,
        torch=torch.__version__,
        commit=git_commit(),
        layers=recorder.table(),
    )
    eq.write_json_and_markdown(args.out, result, markdown(result))


if __name__ == "__main__":
    main()
