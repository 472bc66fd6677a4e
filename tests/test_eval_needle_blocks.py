"""eval/needle_rows.needle_blocks and eval/decode_quality.found_needle_blocks: the query blocks
that hold a RULER answer's tokens, on a word-level tokenizer whose tokens are the words."""

import pytest

transformers = pytest.importorskip("transformers")


@pytest.fixture
def tok():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]"] + [f"w{i}" for i in range(200)]
    t = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=t, unk_token="[UNK]")


def _prompt(values_at: dict[int, str], length: int = 300) -> str:
    return " ".join(values_at.get(i, f"w{i % 100}") for i in range(length))


def test_needle_blocks_are_the_blocks_of_each_value(tok):
    from eval.needle_rows import needle_blocks

    prompt = _prompt({10: "w150", 130: "w151", 200: "w152"})
    assert needle_blocks(tok, prompt, ["w150", "w151", "w152"], 64) == [[0], [2], [3]]
    with pytest.raises(ValueError, match="w199"):
        needle_blocks(tok, prompt, ["w199"], 64)


def test_found_needle_blocks_skip_values_not_in_the_prompt(tok):
    from eval.decode_quality import found_needle_blocks

    prompt = _prompt({70: "w160", 260: "w161"})
    assert found_needle_blocks(tok, prompt, ["w161", "w160", "w199"]) == [1, 4]
