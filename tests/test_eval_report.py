"""Issue 11's GPU evaluation plumbing, on CPU without a model: the method table of
eval/decode_quality.py (every config builds; the oracle methods share the knobs of the rule they
rank for), its per-layer density accumulator, and eval/ruler_report.py's merge of the results of
several processes (one per method and length)."""

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
dq = pytest.importorskip("eval.decode_quality")
report = pytest.importorskip("eval.ruler_report")


def test_issue11_methods_build_and_pair_up():
    for name in (
        "paper20",
        "paper10",
        "p20",
        "p10",
        "narrow20",
        "narrow10",
        "narrow20_nowalk",
        "narrow20_kv_group",
        "oracle20",
        "oracle10",
        "oracle_narrow20",
    ):
        method = dq.METHODS[name]
        cfg = dq.build_config(method)
        assert method.oracle == name.startswith("oracle")
        assert cfg.block_size == 64
    cfg = dq.build_config(dq.METHODS["paper20"])
    assert (cfg.decode_scorer, cfg.kblocks_frac, cfg.window_frac) == ("walk", 0.06, 0.02)
    assert dq.METHODS["oracle20"].knobs == dq.METHODS["p20"].knobs == dq.eq.P20
    assert dq.METHODS["oracle10"].knobs == dq.METHODS["p10"].knobs == dq.eq.P10
    assert dq.METHODS["oracle_narrow20"].knobs == dq.METHODS["narrow20"].knobs == dq.eq.NARROW20
    assert dq.build_config(dq.METHODS["narrow20_nowalk"]).degree == 0
    for name in ("p20", "narrow20"):  # one split for both phases, and the default decode split
        assert (
            dq.build_config(dq.METHODS[name]).decode_fracs()[0]
            == dq.METHODS[name].knobs["kblocks_frac"]
        )
        cfg = dq.build_config(dq.METHODS[name + "_dec20"])
        assert cfg.kblocks_frac == dq.METHODS[name].knobs["kblocks_frac"]
        assert cfg.decode_fracs() == (0.125, 0.05, 0.025)
    assert dq.build_config(dq.METHODS["narrow20_kv_group"]).prefill_selection == "kv_group"


def test_layer_density_is_row_weighted_per_layer():
    acc = dq.LayerDensity()
    acc.add(3, ({0: 1.0, 2: 0.5}, {2: 0.25}))
    acc.add(1, ({0: 1.0, 2: 0.1}, {}))
    means = acc.means()
    assert means["prefill"] == [1.0, None, pytest.approx((3 * 0.5 + 0.1) / 4)]
    assert means["decode"] == [None, None, 0.25]
    assert means["rows"] == 4
    assert dq.LayerDensity().means() == {"prefill": [], "decode": [], "rows": 0}


def test_batch_densities_skip_the_dense_layers():
    cfg = dq.build_config(dq.METHODS["p20"])  # dense_layers 2
    pre, dec = dq.batch_densities(({0: 1.0, 1: 1.0, 2: 0.2, 3: 0.4}, {2: 0.1, 3: 0.3}), cfg)
    assert pre == pytest.approx(0.3) and dec == pytest.approx(0.2)
    assert dq.batch_densities(({}, {}), None) == (1.0, 1.0)


def _run(method_records, lengths, tasks, commit="abc1234"):
    return dict(
        model="m",
        device_name="cpu",
        dtype="float32",
        torch="t",
        transformers="x",
        commit=commit,
        lengths=lengths,
        tasks=tasks,
        samples_per_task=10,
        load_seconds=1.0,
        data_seconds=1.0,
        methods=method_records,
    )


def _rec(name, knobs, scores, density, error=None, **extra):
    return dict(
        name=name,
        knobs=knobs,
        sparse_decode=True,
        oracle=False,
        config=None if knobs is None else {"dense_layers": 2},
        ruler=scores,
        density=density,
        error=error,
        seconds=5.0,
        answers={k: [{}] * 10 for k in scores},
        **{"density_per_layer": {}, **extra},
    )


def test_merge_joins_methods_and_lengths_and_means_only_complete_lengths(tmp_path):
    tasks = ["a", "b"]
    layers = lambda rows, v: {"prefill": [1.0, v], "decode": [1.0, v / 2], "rows": rows}  # noqa: E731
    files = [
        _run(
            [
                _rec(
                    "dense",
                    None,
                    {"a@4096": 100.0, "b@4096": 50.0},
                    {"4096": {"prefill": 1.0, "decode": 1.0}},
                )
            ],
            [4096],
            tasks,
        ),
        _run(
            [
                _rec(
                    "dense",
                    None,
                    {"a@8192": 80.0, "b@8192": 40.0},
                    {"8192": {"prefill": 1.0, "decode": 1.0}},
                )
            ],
            [8192],
            tasks,
            commit="def5678",
        ),
        # Timed out after task a at 8192: its score and batches, no mean for 8192 ...
        _run(
            [
                _rec(
                    "p20",
                    {},
                    {"a@8192": 70.0},
                    {"8192": [[10, 0.2, 0.1]]},
                    error="Timeout",
                    density_per_layer={"8192": layers(10, 0.2)},
                )
            ],
            [8192],
            tasks,
        ),
    ]
    paths = []
    for i, run in enumerate(files):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(run))
    merged = report.merge(paths)
    assert merged["lengths"] == [4096, 8192] and merged["commits"] == ["abc1234", "def5678"]
    dense, p20 = merged["methods"]
    assert dense["ruler_mean"] == {"4096": 75.0, "8192": 60.0}
    assert dense["density"]["8192"] == {"prefill": 1.0, "decode": 1.0}
    assert dense["seconds"] == 10.0
    assert p20["ruler_mean"] == {} and p20["errors"] == ["Timeout"]
    text = report.markdown(merged, None)
    assert "| dense | 75.0 | 100.0% / 100.0% | 60.0 | 100.0% / 100.0% | 4 |" in text
    assert "| 1: -10.0 |" in text  # p20's one pair (a@8192) against dense's
    assert "p20 (FAILED: Timeout)" in text
    # ... until a later process answers task b: mean, densities and layers weighted by rows.
    rest = _run(
        [
            _rec(
                "p20",
                {},
                {"b@8192": 30.0},
                {"8192": {"prefill": 0.4, "decode": 0.3}},
                density_batches={"8192": [[30, 0.4, 0.3]]},
                density_per_layer={"8192": layers(30, 0.4)},
            )
        ],
        [8192],
        tasks,
    )
    paths.append(tmp_path / "rest.json")
    paths[-1].write_text(json.dumps(rest))
    p20 = report.merge(paths)["methods"][1]
    assert p20["ruler_mean"] == {"8192": 50.0}
    assert p20["density"]["8192"] == {"prefill": pytest.approx(0.35), "decode": pytest.approx(0.25)}
    assert p20["density_per_layer"]["8192"]["prefill"] == [1.0, pytest.approx(0.35)]
    assert p20["density_per_layer"]["8192"]["rows"] == 40


def test_task_mean_needs_every_task_and_the_plot_adds_a_hard_half_panel(tmp_path, monkeypatch):
    """task_mean averages the tasks asked for only where all ran; the plot's hard-half panel
    appears when a method ran the hard half alone, and then holds that method's line."""
    half2 = list(report.HARD_HALF)
    # ruler_report stays free of torch: its copy of the hard half must be quality_sweep's half2.
    assert half2 == dq.eq.RULER_TASK_SETS["half2"]
    every = ["niah_single_1", *half2]
    dense_scores = {f"{t}@8192": 90.0 for t in every}
    spread_scores = {f"{t}@8192": 80.0 + i for i, t in enumerate(half2)}
    files = []
    for name, config, scores, tasks in (
        ("dense", None, dense_scores, every),
        ("spread", {}, spread_scores, half2),
    ):
        files.append(tmp_path / f"{name}.json")
        density = {"8192": {"prefill": 1.0 if config is None else 0.35, "decode": 1.0}}
        files[-1].write_text(json.dumps(_run([_rec(name, config, scores, density)], [8192], tasks)))
    merged = report.merge(files)
    dense, spread = merged["methods"]
    assert report.task_mean(spread, half2, 8192) == pytest.approx(83.0)
    assert report.task_mean(spread, every, 8192) is None  # niah_single_1 not run
    assert report.task_mean(dense, half2, 4096) is None  # no such length
    assert spread["ruler_mean"] == {}  # not every task: no point in the 13-task panel
    plt = pytest.importorskip("matplotlib.pyplot")  # (eval's own dependency, not the package's)
    shown = {}
    monkeypatch.setattr(plt, "close", lambda fig: shown.update(axes=fig.axes))
    report.plot(merged, None, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").exists()
    labels = [[line.get_label() for line in ax.get_lines()] for ax in shown["axes"]]
    assert len(labels) == 2 and "spread" not in labels[0] and "spread" in labels[1]
    ys = next(
        line.get_ydata() for line in shown["axes"][1].get_lines() if line.get_label() == "spread"
    )
    assert list(ys) == [pytest.approx(83.0 - 90.0)]


def test_paired_differences_match_by_sample_and_name_unknown_methods():
    def method(name, scores):  # scores per key: one per sample index
        return dict(name=name, answers={k: [{"score": x} for x in v] for k, v in scores.items()})

    result = dict(
        methods=[
            method("a", {"t@4096": [1, 0, 1], "u@4096": [1]}),
            method("b", {"t@4096": [0, 0, 1, 1], "v@4096": [0]}),
            method("c", {"w@4096": [1]}),
        ],
        lengths=[4096, 8192],
    )
    mean, se, n = report.paired(result, "a", "b")  # t@4096 samples 0-2 only: +100, 0, 0
    assert (n, mean) == (3, pytest.approx(100 / 3))
    assert se == pytest.approx((((200 / 3) ** 2 + 2 * (100 / 3) ** 2) / 2) ** 0.5 / 3**0.5)
    assert report.paired(result, "a", "c") is None
    assert report.paired(result, "c", "c") == (0.0, 0.0, 1)
    text = report.pairs_markdown(result, [("a", "b"), ("a", "c")])
    assert "| a - b | all | +33.3 ± 33.3 | 3 |" in text
    assert "| a - b | 4096 | +33.3 ± 33.3 | 3 |" in text  # per length; none at 8192
    assert "| a - b | 8192 |" not in text and "| a - c | all | no common samples |" in text
    assert report.paired(result, "a", "b", 8192) is None
    with pytest.raises(SystemExit, match=r"no method \['d'\]"):
        report.paired(result, "a", "d")


def test_pairs_split_at_the_dash_between_two_method_names():
    names = {"default", "exact_l2-8", "p20-x", "p20"}
    assert report.split_pair("exact_l2-8-default", names) == ("exact_l2-8", "default")
    assert report.split_pair("default-exact_l2-8", names) == ("default", "exact_l2-8")
    assert report.split_pair("p20-x-p20", names) == ("p20-x", "p20")
    assert report.split_pair("a-b", names) == ("a", "b")  # unknown: paired() names them


def test_merge_refuses_mixed_models(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_run([], [4096], ["a"])))
    other = _run([], [4096], ["a"])
    other["model"] = "n"
    b.write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="model n"):
        report.merge([a, b])


def test_oracle_is_a_registered_scorer():
    """The eval oracle ranks blocks through the package (sketchwalk.scorers): a layer's output is
    select_blocks on the exact block mass (prefill knobs), then sparse_prefill; a decode step the
    same with the decode knobs and sparse_decode."""
    sw = pytest.importorskip("sketchwalk")
    eq = dq.eq
    method = eq.Method("oracle20", "oracle", dict(eq.P20, dense_layers=0), "decode")
    cfg = eq.method_config(method)
    assert cfg.prefill_scorer == cfg.decode_scorer == eq.scorer_name(method)
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 701, 64), torch.randn(1, 2, 701, 64), torch.randn(1, 2, 701, 64)
    state = sw.SketchWalkState(cfg)
    out = sw.sketchwalk_attention(q[:, :, :700], k[:, :, :700], v[:, :, :700], 0, state)
    args = sw.plan.SelectionArgs.prefill(cfg, 700)
    index, count = sw.ops.select_blocks(
        eq.exact_block_mass(q[:, :, :700], k[:, :, :700], 64),
        *args.select_blocks_args(700, 700, 64),
    )
    assert torch.equal(
        out, sw.ops.sparse_prefill(q[:, :, :700], k[:, :, :700], v[:, :, :700], index, count)[0]
    )
    step = sw.sketchwalk_attention(q[:, :, 700:], k, v, 0, state)
    args = sw.plan.SelectionArgs.decode(cfg, 701)
    index, count = sw.ops.select_blocks(
        eq.exact_block_mass(q[:, :, 700:], k, 64), *args.select_blocks_args(1, 701, 64)
    )
    assert torch.equal(step, sw.ops.sparse_decode(q[:, :, 700:], k, v, index, count)[0])


def test_oracle_left_padded_rows_equal_rows_alone():
    """Through transformers, each row of a left-padded batch generates what it generates alone
    under the oracle's ranking (padding never enters its scores)."""
    pytest.importorskip("sketchwalk")
    hf_test = pytest.importorskip("test_hf_integration")
    eq = dq.eq
    method = eq.Method("oracle20", "oracle", dict(eq.P20, dense_layers=1), "decode")
    _, model = hf_test.make_pair("llama")
    hf_test.hf.configure(model, eq.method_config(method))
    base = hf_test.prompts(2, hf_test.PROMPT_LEN)
    pads = [0, 130]
    ids, mask = hf_test.left_pad(base, pads)
    kw = dict(max_new_tokens=4, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        batched = model.generate(ids, attention_mask=mask, **kw)
        alone = [model.generate(base[row : row + 1, pad:], **kw) for row, pad in enumerate(pads)]
    for row in range(2):
        assert torch.equal(batched[row, hf_test.PROMPT_LEN :], alone[row][0, -4:]), row


def test_layer_band_methods_cover_the_sparse_layers_once():
    import sketchwalk
    from eval import decode_quality as dq

    base = dq.METHODS["p20_dec20"]
    bands = dq.layer_band_methods(base, num_layers=28, bands=4)
    assert [m.name for m in bands[:2]] == ["p20_dec20_only2-8", "p20_dec20_skip2-8"]
    assert len(bands) == 8
    sparse_in = []
    for only, skip in zip(bands[::2], bands[1::2]):
        cfg_only, cfg_skip = (sketchwalk.SketchWalkConfig(**m.knobs) for m in (only, skip))
        band = [i for i in range(28) if not cfg_only.is_dense_layer(i)]
        assert band == [i for i in range(2, 28) if cfg_skip.is_dense_layer(i)]
        assert all(not cfg_skip.is_dense_layer(i) for i in range(2, 28) if i not in band)
        assert only.knobs["kblocks_frac"] == base.knobs["kblocks_frac"]
        sparse_in += band
    assert sparse_in == list(range(2, 28))


def test_batches_halved_after_running_out_of_gpu_memory():
    """decode_quality.halves_on_oom: a batch that runs out of GPU memory runs as its halves
    (recursively, in order), every sample once; one sample that fails is raised."""
    fits = 2
    calls = []

    def run(part):
        calls.append(list(part))
        if len(part) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return [x * 10 for x in part]

    splits = []
    got = dq.halves_on_oom(run, [1, 2, 3, 4, 5], splits.append)
    assert [p for p, _ in got] == [[1, 2], [3], [4, 5]]
    assert [o for _, outs in got for o in outs] == [10, 20, 30, 40, 50]
    assert splits == [5, 3]
    assert calls[0] == [1, 2, 3, 4, 5]
    assert dq.halves_on_oom(run, [7], None) == [([7], [70])]
    fits = 0
    with pytest.raises(torch.OutOfMemoryError):
        dq.halves_on_oom(run, [1, 2], None)

    def other_error(part):
        raise ValueError("not a memory error")

    with pytest.raises(ValueError):  # only running out of memory splits a batch
        dq.halves_on_oom(other_error, [1, 2, 3], None)

    def runtime_error(part):
        raise RuntimeError("sketchwalk.score_blocks: argument 'q' must be finite")

    with pytest.raises(RuntimeError, match="finite"):
        dq.halves_on_oom(runtime_error, [1, 2, 3], None)
    # A kernel launch or cuBLAS out of memory splits too, as torch's own error does.
    for message in (
        "sketchwalk.score_blocks: CUDA launch failed: out of memory",
        "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    ):
        failed = []

        def launch_oom(part):
            if len(part) > 1:
                failed.append(len(part))
                raise RuntimeError(message)
            return part

        assert [p for p, _ in dq.halves_on_oom(launch_oom, [1, 2], None)] == [[1], [2]]
        assert failed == [2]


def test_every_decode_quality_method_builds():
    """Every method of eval/decode_quality.py builds its SketchWalkConfig here (a knob the
    config refuses would otherwise fail only on the GPU machine); walk_bf16x3 sets the bf16x3
    walk on top of the defaults."""
    for name, method in dq.METHODS.items():
        if method.knobs is None:  # dense
            continue
        assert dq.build_config(method).block_size == 64, name
    cfg = dq.build_config(dq.METHODS["walk_bf16x3"])
    assert cfg.walk_matmul == "bf16x3"
    assert dataclasses.replace(cfg, walk_matmul="auto") == dq.build_config(dq.METHODS["default"])


def test_band_index_picks_band_pairs_and_refuses_unknown_bands():
    """--band-index: bands by index, each as its (only, skip) pair; "" is every band."""
    bands = dq.layer_band_methods(dq.METHODS["default"], num_layers=28, bands=4)
    got = [m.name for m in dq.picked_bands(bands, "1,3")]
    assert got == ["default_only9-15", "default_skip9-15", "default_only23-27", "default_skip23-27"]
    assert dq.picked_bands(bands, "") == bands
    assert [m.name for m in dq.picked_bands(bands, "0skip, 2only")] == [
        "default_skip2-8",
        "default_only16-22",
    ]
    for bad in ("4", "-1", "1both", "x"):
        with pytest.raises(SystemExit, match="0..3"):
            dq.picked_bands(bands, bad)


def test_quality_sweep_band_methods_are_the_defaults_bands():
    """quality_sweep --layer-bands: the perplexity sweep's bands of "sketchwalk (defaults)", the
    same layers as decode_quality's (eval/layer_bands.py)."""
    import argparse

    from eval import quality_sweep as qs

    args = argparse.Namespace(layer_bands=4, band_base="sketchwalk (defaults)", band_index="1skip")
    (got,) = qs.band_methods(args, num_layers=30)
    assert got.name == "sketchwalk (defaults)_skip9-15" and got.kind == "sketchwalk"
    assert got.knobs["dense_layer_ids"] == list(range(9, 16))
    assert qs.band_methods(argparse.Namespace(layer_bands=0), num_layers=30) == []
    with pytest.raises(SystemExit, match="band-base"):
        qs.band_methods(argparse.Namespace(layer_bands=2, band_base="dense", band_index=""), 30)


def test_band_budget_methods_keep_the_base_average():
    """--band-budget: one method per weight list, the base's knobs with layer_keep_scale whose
    mean over the sparse layers is 1 (sketchwalk.layer_budget), in both sweeps."""
    import argparse

    import sketchwalk
    from eval import quality_sweep as qs

    base = dq.METHODS["p20_dec20"]
    got = dq.band_budget_methods(base, 28, "1,1,1,2; 1,0.5,1,2")
    assert [m.name for m in got] == ["p20_dec20_budget1-1-1-2", "p20_dec20_budget1-0.5-1-2"]
    for method, weights in zip(got, ((1, 1, 1, 2), (1, 0.5, 1, 2))):
        cfg = dq.build_config(method)
        assert cfg.kblocks_frac == base.knobs["kblocks_frac"]
        want = sketchwalk.layer_budget.keep_scale_by_band(cfg, 28, weights)
        assert cfg.layer_keep_scale == pytest.approx(want, abs=1e-6)
        assert sum(cfg.layer_keep_scale[2:]) / 26 == pytest.approx(1.0, abs=1e-5)
    assert dq.band_budget_methods(base, 28, "") == []
    with pytest.raises(SystemExit, match="band-budget"):
        dq.band_budget_methods(base, 28, "0,0")
    args = argparse.Namespace(layer_bands=0, band_base="sketchwalk ~20%", band_budget="1,1,1,3")
    (sweep,) = qs.band_methods(args, num_layers=28)
    assert sweep.name == "sketchwalk ~20%_budget1-1-1-3" and sweep.kind == "sketchwalk"
    assert sweep.knobs["kblocks_frac"] == 0.06 and len(sweep.knobs["layer_keep_scale"]) == 28


def test_quality_sweep_add_method_parses_knobs_and_kinds():
    """quality_sweep --add-method NAME=JSON: plain knobs (kind sketchwalk), or kind + knobs (the
    oracle in some layers only); malformed specs are refused naming the option."""
    import argparse

    from eval import quality_sweep as qs

    sr4 = {"prefill_scorer": "sampled_rows", "prefill_score_rows": 4, "prefill_scorer_layers": [26]}
    oracle = {"kind": "oracle", "knobs": {"kblocks_frac": 0.06, "prefill_scorer_layers": [27]}}
    specs = [f"sr4 last={json.dumps(sr4)}", f"oracle last={json.dumps(oracle)}"]
    first, second = qs.extra_methods(argparse.Namespace(add_method=specs))
    assert (first.name, first.kind, first.group) == ("sr4 last", "sketchwalk", "extra")
    cfg = qs.method_config(first)
    assert (
        cfg.prefill_scorer_at(26) == "sampled_rows" and cfg.prefill_scorer_at(25) == "sketch_walk"
    )
    assert second.kind == "oracle"
    cfg = qs.method_config(second)
    assert cfg.prefill_scorer_at(27) != "sketch_walk" and cfg.prefill_scorer_at(26) == "sketch_walk"
    for bad in ("noequals", "x=[1]", "x={bad json", 'x={"kind": "oracle", "oops": 1}'):
        with pytest.raises(SystemExit, match="add-method"):
            qs.extra_methods(argparse.Namespace(add_method=[bad]))


def test_decode_quality_add_method_takes_json_knobs():
    """decode_quality --add-method NAME={JSON}: knobs whose values hold commas (layer lists),
    or the method's other fields (the oracle in the last layers); the KEY=VAL form unchanged."""
    last = {"prefill_scorer": "sampled_rows", "prefill_scorer_layers": [26, 27]}
    got = dq.parse_extra_method(f"sr_last={json.dumps(last)}")
    assert got.name == "sr_last" and got.knobs == last and not got.oracle
    assert dq.build_config(got).prefill_scorer_at(27) == "sampled_rows"
    spec = {"knobs": {"kblocks_frac": 0.06, "prefill_scorer_layers": [27]}, "oracle": True}
    got = dq.parse_extra_method(f"oracle_last={json.dumps(spec)}")
    assert got.oracle and dq.build_config(got).prefill_scorer_at(26) == "sketch_walk"
    late = dq.parse_extra_method('late={"knobs": {"kblocks_frac": 0.25}, "dense_q_span": "late"}')
    assert late.dense_q_span == "late" and late.knobs == {"kblocks_frac": 0.25}
    old = dq.parse_extra_method("win2:kblocks_frac=0.05,window_frac=0.02:dense_decode")
    assert old.knobs == {"kblocks_frac": 0.05, "window_frac": 0.02} and not old.sparse_decode
    for bad in ("x={oops", "x={}x", 'x={"knobs": {}, "what": 1}'):
        with pytest.raises(SystemExit, match="add-method"):
            dq.parse_extra_method(bad)


def test_signal_budget_methods_read_a_layer_recall_file(tmp_path):
    """--signal-budget FILE:KEY:POWER: the base's knobs with layer_keep_scale from the file's
    per-layer values (keep_scale_from_signal); a missing file or key is refused, naming the
    option."""
    import sketchwalk
    from eval.layer_bands import signal_budget_methods

    layers = {str(i): {"entropy": 0.1 * i, "recall": 0.5} for i in range(2, 6)}
    path = tmp_path / "recall.json"
    path.write_text(json.dumps({"layers": layers}))
    base = dq.METHODS["p20_dec20"]
    (got,) = signal_budget_methods(base, 6, f"{path}:entropy:2")
    assert got.name == "p20_dec20_entropy^2"
    cfg = dq.build_config(got)
    want = sketchwalk.layer_budget.keep_scale_from_signal(
        cfg, 6, {i: 0.1 * i for i in range(2, 6)}, 2
    )
    assert cfg.layer_keep_scale == pytest.approx(want, abs=1e-6)
    assert cfg.kblocks_frac == base.knobs["kblocks_frac"]
    # KEY "miss": 1 - recall (here 0.6 - 0.1 i: the lower the recall, the more budget).
    for i in range(2, 6):
        layers[str(i)]["recall"] = 0.4 + 0.1 * i
    path.write_text(json.dumps({"layers": layers}))
    (miss,) = signal_budget_methods(base, 6, f"{path}:miss:1")
    want = sketchwalk.layer_budget.keep_scale_from_signal(
        cfg, 6, {i: 0.6 - 0.1 * i for i in range(2, 6)}, 1
    )
    assert miss.name == "p20_dec20_miss^1"
    assert dq.build_config(miss).layer_keep_scale == pytest.approx(want, abs=1e-6)
    assert signal_budget_methods(base, 6, "") == []
    for bad in (f"{tmp_path}/none.json:entropy:1", f"{path}:spread:1", f"{path}:entropy:x"):
        with pytest.raises(SystemExit, match="signal-budget"):
            signal_budget_methods(base, 6, bad)
