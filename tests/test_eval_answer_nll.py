"""eval/answer_nll.py: a RULER answer's likelihood, teacher forced after its prompt (against a
float64 log-softmax of the full logits), and its sample and pairing helpers."""

import math

import pytest
import torch

from utils import tiny_llama


@pytest.fixture
def an():
    pytest.importorskip("transformers")
    from eval import answer_nll

    return answer_nll


def test_answer_scores_match_a_float64_log_softmax(an):
    model = tiny_llama()
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 128, (1, 90), generator=g)
    ids[0, -3:] = torch.tensor([5, 6, 7])
    nll, acc = an.answer_scores(model, ids, 7)
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits[0].double()
    logp = torch.log_softmax(logits[-8:-1], dim=-1)  # rows predicting the last 7 tokens
    target = ids[0, -7:]
    want_nll = float(-logp.gather(1, target[:, None]).mean())
    want_acc = float((logp.argmax(-1) == target).double().mean())
    assert math.isclose(nll, want_nll, rel_tol=1e-5)
    assert acc == pytest.approx(want_acc)
    assert nll > 0.0


def test_parse_samples_and_paired(an):
    assert an.parse_samples("0-3,7") == [0, 1, 2, 3, 7]
    assert an.parse_samples("5") == [5]
    mean, se = an.paired([1.0, 2.0, 4.0], [0.0, 1.0, 1.0])  # differences 1, 1, 3
    assert mean == pytest.approx(5 / 3)
    assert se == pytest.approx(math.sqrt(((2 / 3) ** 2 * 2 + (4 / 3) ** 2) / 2 / 3))
    assert an.answer_text(["12", "34"]) == " 12, 34"


def test_merge_joins_disjoint_samples_of_the_common_methods(an):
    def run(samples, commit, methods):
        return dict(
            model="m",
            task="t",
            length=8192,
            seed=42,
            samples=samples,
            device="cpu",
            torch="x",
            commit=commit,
            seconds=1.0,
            methods={
                name: dict(knobs={}, nll=[v] * len(samples), acc=[1.0] * len(samples), density=[])
                for name, v in methods.items()
            },
        )

    a = run([0, 1], "aaa", {"dense": 0.1, "old": 0.2, "only_a": 0.3})
    b = run([5], "bbb", {"dense": 0.4, "new": 0.5})
    got = an.merge([a, b], {"old": "new"})
    assert got["samples"] == [0, 1, 5] and sorted(got["methods"]) == ["dense", "new"]
    assert got["methods"]["new"]["nll"] == [0.2, 0.2, 0.5]
    assert got["commit"] == "aaa, bbb" and got["renamed"] == {"old": "new"}
    assert "old -> new" in an.markdown(got) and "samples [5] at bbb" in an.markdown(got)
    with pytest.raises(SystemExit, match="share samples"):
        an.merge([a, a], {})
    with pytest.raises(SystemExit, match="differ"):
        an.merge([a, {**b, "task": "u"}], {})
