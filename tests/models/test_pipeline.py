"""The encode pipeline of transformer models: token-budget batches, and the same vectors as
sentence-transformers' own ``encode`` (the real MiniLM)."""

from __future__ import annotations

import numpy as np

from embedswitch.models import load_model
from embedswitch.models.pipeline import encode_pipelined, token_batches


def test_batches_are_sorted_by_length_and_within_the_budget() -> None:
    lengths = [5, 300, 7, 7, 40, 12, 3, 600, 9]
    batches = list(token_batches(lengths, token_budget=64))
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths)
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= 64 or len(batch) == 1  # a text over the budget goes alone
    assert [len(b) for b in batches] == [5, 1, 1, 1, 1]  # 3,5,7,7,9 | 12 (6 x 12 > 64) | 40 | 300 | 600


def test_pipelined_vectors_equal_sentence_transformers_encode() -> None:
    model = load_model("minilm")
    texts = [
        "short",
        "a somewhat longer sentence about cells dividing",
        "x " * 400,
        "",
        "mid length text here",
    ]
    st = model.st_model  # type: ignore[attr-defined]
    want = st.encode(texts, batch_size=2, normalize_embeddings=True, convert_to_numpy=True)
    got = encode_pipelined(st, texts, token_budget=128)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5
