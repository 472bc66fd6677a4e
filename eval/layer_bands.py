"""The per-layer ablation of issue 21: a method's sparse layers cut into contiguous bands, each
band alone sparse or alone dense (SketchWalkConfig.dense_layer_ids). Works on the method records
of eval/decode_quality.py (RULER) and eval/quality_sweep.py (perplexity): any dataclass with a
`name` and a `knobs` dict of SketchWalkConfig keyword arguments."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import sketchwalk


def add_band_arguments(parser, base_default: str) -> None:
    """The per-layer options both sweeps take: --layer-bands, --band-index, --band-budget and the
    method they start from, --band-base (default base_default)."""
    parser.add_argument(
        "--layer-bands",
        type=int,
        default=0,
        help="also run the per-layer ablation: the sparse layers of --band-base cut into this "
        "many bands, each band alone sparse (_only<a>-<b>) and alone dense (_skip<a>-<b>)",
    )
    parser.add_argument(
        "--band-index",
        default="",
        help="with --layer-bands: only these bands (comma-separated, from 0), each as its "
        "only/skip pair, or '2only' / '2skip' for one of them; default every band",
    )
    parser.add_argument(
        "--band-budget",
        default="",
        help="per-layer budgets at --band-base's average: ';'-separated band weights, e.g. "
        "'1,1,1,2;1,0.5,1,2' (band_budget_methods)",
    )
    parser.add_argument(
        "--signal-budget",
        default="",
        help="per-layer budgets from a measured signal at --band-base's average: ';'-separated "
        "FILE:KEY:POWER, FILE an eval/layer_recall.py JSON, KEY one of its per-layer values "
        "(entropy), or miss (1 - recall), e.g. 'eval/results/layer_recall_x.json:miss:1' "
        "(signal_budget_methods)",
    )
    parser.add_argument(
        "--band-base",
        default=base_default,
        help="the method --layer-bands and --band-budget start from",
    )


def layer_band_methods(base, num_layers: int, bands: int) -> list:
    """The per-layer ablation of issue 21: the sparse layers of `base` (those past its
    dense_layers) cut into `bands` contiguous bands; per band, "only<a>-<b>" keeps layers a..b
    sparse and every other layer dense, "skip<a>-<b>" keeps them dense and the rest sparse
    (SketchWalkConfig.dense_layer_ids)."""
    knobs = base.knobs or {}
    cut = sketchwalk.layer_budget.sparse_layer_bands(
        sketchwalk.SketchWalkConfig(**knobs), num_layers, bands
    )
    sparse = [i for band in cut for i in band]
    out = []
    for band in cut:
        rest = [i for i in sparse if i not in band]
        tag = f"{band[0]}-{band[-1]}"
        for name, dense_ids in ((f"only{tag}", rest), (f"skip{tag}", band)):
            out.append(
                dataclasses.replace(
                    base, name=f"{base.name}_{name}", knobs={**knobs, "dense_layer_ids": dense_ids}
                )
            )
    return out


def picked_bands(bands: list, index_spec: str) -> list:
    """The methods of layer_band_methods' bands named by `index_spec`: "1,3" bands 1 and 3
    (from 0) as their (only, skip) pairs, "2only" / "2skip" one of band 2's pair, "" every
    band; so that one process per band (or per method) runs them side by side."""
    pairs = len(bands) // 2
    out = []
    for item in (x.strip() for x in index_spec.split(",") if x.strip()):
        number = item.removesuffix("only").removesuffix("skip")
        if not number.isdigit() or not 0 <= int(number) < pairs:
            raise SystemExit(
                f"--band-index {index_spec!r}: {item!r} is not a band 0..{pairs - 1} "
                "(optionally followed by 'only' or 'skip')"
            )
        pair = bands[2 * int(number) : 2 * int(number) + 2]  # band b: 2b only, 2b + 1 skip
        out += pair if number == item else [pair[item.endswith("skip")]]
    return out if index_spec.strip() else list(bands)


def band_budget_methods(base, num_layers: int, spec: str) -> list:
    """Per-layer budgets at `base`'s average (issue 21 step 3): for each ';'-separated weight
    list "w0,w1,..." of `spec`, `base` with layer_keep_scale from those band weights
    (sketchwalk.layer_budget.keep_scale_by_band: mean 1 over the sparse layers), named
    "<base>_budget<w0>-<w1>-...". "" gives none."""
    knobs = base.knobs or {}
    cfg = sketchwalk.SketchWalkConfig(**knobs)
    out = []
    for item in (x.strip() for x in spec.split(";") if x.strip()):
        try:
            weights = tuple(float(w) for w in item.split(","))
            scale = sketchwalk.layer_budget.keep_scale_by_band(cfg, num_layers, weights)
        except ValueError as err:
            raise SystemExit(f"--band-budget {item!r}: {err}") from None
        tag = "-".join(w.strip() for w in item.split(","))
        out.append(_with_scale(base, f"budget{tag}", scale))
    return out


def signal_budget_methods(base, num_layers: int, spec: str) -> list:
    """Per-layer budgets from a measured per-layer signal at `base`'s average: for each
    ';'-separated FILE:KEY:POWER of `spec`, `base` with layer_keep_scale =
    sketchwalk.layer_budget.keep_scale_from_signal(layers[i][KEY] of the eval/layer_recall.py
    JSON FILE, POWER), named "<base>_<KEY>^<POWER>"; KEY "miss" is 1 - recall (the share of
    the exact attention mass the layer's selection drops: a signal that needs one dense pass).
    "" gives none."""
    knobs = base.knobs or {}
    cfg = sketchwalk.SketchWalkConfig(**knobs)
    out = []
    for item in (x.strip() for x in spec.split(";") if x.strip()):
        path, key, power = (item.rsplit(":", 2) + ["", ""])[:3]
        try:
            layers = json.loads(Path(path).read_text())["layers"]
            signal = {
                int(i): 1.0 - float(rec["recall"]) if key == "miss" else float(rec[key])
                for i, rec in layers.items()
                if key in rec or (key == "miss" and "recall" in rec)
            }
            scale = sketchwalk.layer_budget.keep_scale_from_signal(
                cfg, num_layers, signal, float(power)
            )
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise SystemExit(f"--signal-budget {item!r}: {type(err).__name__}: {err}") from None
        out.append(_with_scale(base, f"{key}^{power}", scale))
    return out


def _with_scale(base, suffix: str, scale: tuple[float, ...]):
    """`base` named "<base>_<suffix>" with layer_keep_scale = scale (6 decimals, for JSON)."""
    knobs = {**(base.knobs or {}), "layer_keep_scale": [round(x, 6) for x in scale]}
    return dataclasses.replace(base, name=f"{base.name}_{suffix}", knobs=knobs)
