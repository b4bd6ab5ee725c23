"""The models of lexical versions: their specs, with every bad one a clear error, and adapters."""

from __future__ import annotations

import numpy as np
import pytest

from embedswitch import ModelNotAllowed, UnknownModel
from embedswitch.models import Bm25Spec, HashingSpec, HybridSpec, ModelAccess, load_model, parse_model_spec


def test_short_names_and_defaults() -> None:
    assert parse_model_spec("bm25") == Bm25Spec(tokenizer="unicode61")
    hybrid = parse_model_spec("hybrid")
    assert isinstance(hybrid, HybridSpec)
    assert (hybrid.dense.type, hybrid.fusion, hybrid.weight, hybrid.rrf_k, hybrid.depth) == (
        "minilm",
        "rrf",
        0.5,
        60,
        100,
    )
    parsed = parse_model_spec(
        {"type": "hybrid", "dense": "hashing", "lexical": "bm25", "fusion": "convex", "weight": 0.3}
    )
    assert parsed == HybridSpec(dense=HashingSpec(), fusion="convex", weight=0.3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "bm25", "k1": 1.5}, "unknown field 'k1' (fields of 'bm25': tokenizer)"),
        ({"type": "bm25", "tokenizer": "snowball"}, "tokenizer: Input should be 'unicode61' or 'porter'"),
        ({"type": "hybrid", "dense": "bm25"}, "'dense' must be a text model"),
        ({"type": "hybrid", "dense": {"type": "hybrid"}}, "'dense' must be a text model"),
        ({"type": "hybrid", "dense": "nope"}, "unknown model 'nope'"),
        ({"type": "hybrid", "fusion": "max"}, "fusion: Input should be 'rrf' or 'convex'"),
        ({"type": "hybrid", "weight": 1.5}, "weight: Input should be less than or equal to 1"),
        ({"type": "hybrid", "depth": 0}, "depth: Input should be greater than or equal to 1"),
    ],
)
def test_bad_specs_name_the_problem(spec: dict, message: str) -> None:
    with pytest.raises(UnknownModel) as raised:
        parse_model_spec(spec)
    assert message in raised.value.message


def test_adapters_give_the_dense_vectors_and_fingerprint_both_parts() -> None:
    bm25 = load_model("bm25")
    assert bm25.dim == 0 and bm25.encode(["a", "b"]).shape == (2, 0)
    porter = load_model({"type": "bm25", "tokenizer": "porter"})
    assert porter.fingerprint != bm25.fingerprint
    hashing = load_model("hashing")
    hybrid = load_model({"type": "hybrid", "dense": "hashing"})
    assert hybrid.dim == hashing.dim and hybrid.normalized and not hybrid.batches_queries
    np.testing.assert_array_equal(hybrid.encode(["a text"], "query"), hashing.encode(["a text"], "query"))
    fingerprints = {
        load_model(spec).fingerprint
        for spec in (
            {"type": "hybrid", "dense": "hashing"},
            {"type": "hybrid", "dense": {"type": "hashing", "seed": 1}},
            {"type": "hybrid", "dense": "hashing", "lexical": {"tokenizer": "porter"}},
        )
    }
    assert len(fingerprints | {hashing.fingerprint, bm25.fingerprint}) == 5
    # fusion changes no stored vector or text, so it leaves the fingerprint alone
    assert (
        load_model({"type": "hybrid", "dense": "hashing", "fusion": "convex"}).fingerprint
        == hybrid.fingerprint
    )


def test_access_checks_the_dense_model_of_a_hybrid() -> None:
    spec = parse_model_spec({"type": "hybrid", "dense": {"type": "model2vec", "path": "/elsewhere/model"}})
    with pytest.raises(ModelNotAllowed):
        ModelAccess(model_dirs=()).check(spec)
