"""RULER's 13 tasks as eval/quality_sweep.py runs them (issue 11): the task table matches the
package's synthetic.yaml, each task is scored by RULER's metric (string-match-all; string-
match-part for qa), and each generator accepts the arguments it is given. The parts that need
NVIDIA's package (`nvidia-long-context-eval` with nltk, wonderwords, scipy, tenacity, pyyaml)
are skipped where it is not installed, as in CI."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
eq = pytest.importorskip("eval.quality_sweep")

HAS_RULER = all(
    importlib.util.find_spec(m) is not None
    for m in ("long_context_eval", "nltk", "wonderwords", "scipy", "tenacity", "yaml")
)
needs_ruler = pytest.mark.skipif(
    not HAS_RULER,
    reason="nvidia-long-context-eval (and its "
    "dependencies nltk, wonderwords, scipy, tenacity, pyyaml) not installed",
)

ALL = [
    "niah_single_1",
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "fwe",
    "qa_1",
    "qa_2",
]
NEW = ["niah_multikey_2", "niah_multikey_3", "vt", "cwe", "fwe", "qa_1", "qa_2"]


def test_task_names_and_shortcuts():
    assert list(eq.RULER_TASKS) == ALL
    assert eq.ruler_tasks("all") == ALL
    assert eq.ruler_tasks("niah") == ALL[:8]
    assert eq.ruler_tasks("half1") + eq.ruler_tasks("half2") == ALL
    assert eq.ruler_tasks(" vt, qa_1 ,") == ["vt", "qa_1"]
    assert eq.ruler_tasks("") == []


def test_ruler_score_all_vs_part():
    refs = ["Paris", "London"]
    # string-match-all (niah, vt, cwe, fwe): the fraction of references found, case-insensitive.
    assert eq.ruler_score("niah_multivalue", "paris and LONDON", refs) == 1.0
    assert eq.ruler_score("cwe", "only paris", refs) == 0.5
    assert eq.ruler_score("vt", "neither", refs) == 0.0
    assert eq.ruler_score("fwe", "PARIS", refs) == 0.5
    # string-match-part (qa): 1 if any reference is found, else 0.
    for qa in ("qa_1", "qa_2"):
        assert eq.ruler_score(qa, "only paris", refs) == 1.0
        assert eq.ruler_score(qa, "The answer is london.", refs) == 1.0
        assert eq.ruler_score(qa, "Berlin", refs) == 0.0
    # A reference must appear whole: part of it is no match.
    assert eq.ruler_score("qa_1", "10th century", ["10th and 11th centuries"]) == 0.0


def test_answer_separator_goes_before_the_last_prefix():
    prefix = " Answer: The top 10 words that appear most often in the list are:"
    example = "list 1. a 2. b\nQuestion: top words?" + prefix + " 1. a"
    text = example + "\nlist 1. c 2. d\nQuestion: top words?" + prefix
    marked = eq.mark_answer_prefix(text, prefix)
    assert marked.count(eq.ANSWER_SEP) == 1
    assert marked.replace(eq.ANSWER_SEP, "") == text
    assert marked.endswith(eq.ANSWER_SEP + prefix)
    # Placeholders end the literal part that is searched for; a marked text is left alone.
    vt = " Answer: According to the chain(s), {num_v} variables are assigned the value {query}:"
    assert eq.mark_answer_prefix(
        "Q?" + vt.format(num_v=5, query=7), vt
    ) == "Q?" + eq.ANSWER_SEP + vt.format(num_v=5, query=7)
    assert eq.mark_answer_prefix(marked, prefix) == marked


@needs_ruler
def test_tasks_match_synthetic_yaml_and_lengths():
    import yaml
    from long_context_eval.data.synthetic.constants import TASKS

    config = yaml.safe_load((Path(eq.assets.ruler_data_dir()) / "synthetic.yaml").read_text())
    assert {name: (c["task"], c["args"]) for name, c in config.items()} == {
        name: (gen, args) for name, (gen, args) in eq.RULER_TASKS.items()
    }
    expected = {
        "niah": 128,
        "variable_tracking": 30,
        "common_words_extraction": 120,
        "freq_words_extraction": 50,
        "qa": 32,
    }
    for name, (gen, _) in eq.RULER_TASKS.items():
        assert eq.ruler_new_tokens(name) == TASKS[gen]["tokens_to_generate"] == expected[gen]


def _word_tokenizer(path: Path) -> Path:
    """A tiny offline HF tokenizer: one token per word or run of punctuation."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(path))
    return path


@needs_ruler
@pytest.mark.parametrize("task", NEW)
def test_generator_accepts_its_arguments(task, tmp_path, monkeypatch):
    monkeypatch.setenv("SKETCHWALK_ASSETS", str(tmp_path / "assets"))
    tok_dir = _word_tokenizer(tmp_path / "word-tokenizer")
    # qa needs room for its first 10 documents (RULER's step): below that its generator loops.
    length = 4096 if task.startswith("qa") else 1024
    items = eq.ruler_samples(task, 1, length, tok_dir, seed=42)
    assert len(items) == 1
    item = items[0]
    assert item["input"].count(eq.ANSWER_SEP) == 1
    # RULER's "length": prompt + generation length, in its tokenizer. fwe sizes the prompt
    # alone against max_seq_length (freq_words_extraction.py), so only its prompt fits.
    budget = length + (eq.ruler_new_tokens(task) if task == "fwe" else 0)
    assert item["length"] <= budget
    assert item["outputs"] and all(isinstance(r, str) and r for r in item["outputs"])
    raw = tmp_path / "assets" / "ruler" / tok_dir.name / f"{task}_{length}_1_42" / task
    assert json.loads((raw / "validation.jsonl").read_text())["input"] == item["input"].replace(
        eq.ANSWER_SEP, ""
    )
