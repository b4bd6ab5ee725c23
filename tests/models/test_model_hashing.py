"""The hashing model: deterministic, unit-norm, seed-separated, and similarity-preserving."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedswitch._errors import InvalidRequest
from embedswitch.models.hashing import HashingModel, features

TEXTS = [
    "The cat sat on the mat.",
    "Stock markets fell sharply on Monday after the central bank raised rates.",
    "Mitochondria are the powerhouse of the cell.",
    "",
    "   !!! ???",
    "Ünïcödé wörds and 数字 123",
]


def test_same_seed_gives_same_vectors_across_instances() -> None:
    first = HashingModel(dim=128, seed=7).encode(TEXTS)
    second = HashingModel(dim=128, seed=7).encode(TEXTS)
    assert np.array_equal(first, second)
    assert HashingModel(dim=128, seed=7).fingerprint == HashingModel(dim=128, seed=7).fingerprint


def test_vectors_are_pinned_across_runs() -> None:
    # Python's hash() is salted per process; blake2b is not. These literals must never change
    # without bumping ALGORITHM_VERSION, or indexes on disk silently stop matching their queries.
    model = HashingModel(dim=16, seed=0)
    vector = model.encode(["Hello world"])[0] * np.sqrt(3)
    expected = np.zeros(16)
    expected[[1, 6, 12]] = [-1.0, 1.0, -1.0]
    assert np.allclose(vector, expected, atol=1e-6)
    assert model.fingerprint == "111362e7d4b641889d832521052d5734c481372ad122330bde34dde9008e60e7"


def test_shape_dtype_and_unit_norms() -> None:
    vectors = HashingModel(dim=64).encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 64)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_text_without_words_gets_a_fixed_unit_vector() -> None:
    model = HashingModel(dim=32)
    vectors = model.encode(["", "?!", "..."])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors[0], vectors[1])
    assert np.array_equal(vectors[0], vectors[2])


def test_empty_batch() -> None:
    vectors = HashingModel(dim=16).encode([])
    assert vectors.shape == (0, 16)
    assert vectors.dtype == np.float32


def test_query_and_document_vectors_are_the_same() -> None:
    model = HashingModel()
    assert np.array_equal(model.encode(TEXTS, purpose="query"), model.encode(TEXTS, purpose="document"))


@pytest.mark.parametrize("dim", [0, 7, 4097, -1])
def test_dim_out_of_range_is_rejected(dim: int) -> None:
    with pytest.raises(InvalidRequest, match="between 8 and 4096"):
        HashingModel(dim=dim)


def test_dim_and_seed_change_the_fingerprint() -> None:
    prints = {HashingModel(dim=d, seed=s).fingerprint for d in (64, 128) for s in (0, 1)}
    assert len(prints) == 4


def test_different_seeds_are_nearly_orthogonal() -> None:
    texts = [
        f"document number {i} talks about topic {i % 7} and subject {i % 11} at length" for i in range(200)
    ]
    a = HashingModel(dim=256, seed=0).encode(texts)
    b = HashingModel(dim=256, seed=1).encode(texts)
    same_text_cosines = np.sum(a * b, axis=1)
    assert abs(float(same_text_cosines.mean())) < 0.05
    assert float(np.abs(same_text_cosines).max()) < 0.5
    # while the same seed maps each text onto itself
    assert np.allclose(np.sum(a * HashingModel(dim=256, seed=0).encode(texts), axis=1), 1.0)


def test_similar_texts_score_higher_than_unrelated_ones() -> None:
    model = HashingModel()
    query, near, far = model.encode(
        [
            "treatment of type 2 diabetes with metformin",
            "metformin is a first-line treatment for type 2 diabetes",
            "the history of medieval castle architecture in france",
        ]
    )
    assert float(query @ near) > float(query @ far) + 0.2


def test_features_are_lowercased_unigrams_and_bigrams() -> None:
    assert features("Hello, World wide") == ["hello", "world", "wide", "hello world", "world wide"]
    assert features("") == [""]


def test_non_string_text_is_rejected() -> None:
    with pytest.raises(InvalidRequest, match="must be strings"):
        HashingModel().encode([b"bytes"])  # type: ignore[list-item]


def test_encode_is_thread_safe() -> None:
    model = HashingModel(dim=128)
    texts = [f"text {i} with words {i * 3} and {i * 7}" for i in range(300)]
    expected = HashingModel(dim=128).encode(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(model.encode(texts))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(np.array_equal(result, expected) for result in results)
