"""model2vec static models: MiniLM distilled once into a cache, and saved models by path."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from embedswitch.models import MiniLMStaticSpec, load_model
from embedswitch.models.model2vec import (
    StaticEmbeddingModel,
    cache_root,
    distilled_minilm_dir,
    distilled_name,
)
from embedswitch.models.sentence_transformers import minilm_path

DOCS = [
    "Mitosis is the process by which a eukaryotic cell divides into two identical daughter cells.",
    "The central bank raised interest rates by a quarter point to fight inflation.",
    "Insulin resistance is a hallmark of type 2 diabetes.",
]
QUERY = "how do cells divide?"


def test_cache_root_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMBEDSWITCH_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.setenv("EMBEDSWITCH_CACHE", "")
    assert cache_root() == Path.home() / ".cache" / "embedswitch"
    monkeypatch.delenv("EMBEDSWITCH_CACHE")
    assert cache_root() == Path.home() / ".cache" / "embedswitch"


@pytest.fixture(scope="session")
def static_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache root per test session: distilling takes about 20 s, so it happens once."""
    root = tmp_path_factory.mktemp("embedswitch-cache")
    distilled_minilm_dir(MiniLMStaticSpec(), root)
    return root


@pytest.fixture
def minilm_static(static_cache: Path, monkeypatch: pytest.MonkeyPatch) -> StaticEmbeddingModel:
    monkeypatch.setenv("EMBEDSWITCH_CACHE", str(static_cache))
    model = load_model("minilm-static")
    assert isinstance(model, StaticEmbeddingModel)
    return model


@pytest.mark.slow
def test_distilled_model_is_cached_under_models(static_cache: Path) -> None:
    target = distilled_minilm_dir(MiniLMStaticSpec(), static_cache)
    assert target.parent == static_cache / "models"
    assert target.name.startswith("minilm-static-")
    assert (target / "model.safetensors").is_file()
    before = (target / "model.safetensors").stat().st_mtime_ns
    assert distilled_minilm_dir(MiniLMStaticSpec(), static_cache) == target
    assert (target / "model.safetensors").stat().st_mtime_ns == before
    # no half-written staging directories are left behind
    assert [p.name for p in (static_cache / "models").iterdir() if p.is_dir()] == [target.name]


@pytest.mark.slow
def test_shape_dtype_norms_and_similarity(minilm_static: StaticEmbeddingModel) -> None:
    vectors = minilm_static.encode(DOCS)
    assert minilm_static.dim == 256
    assert vectors.shape == (3, 256)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    scores = vectors @ minilm_static.encode([QUERY], purpose="query")[0]
    assert int(np.argmax(scores)) == 0
    assert np.array_equal(minilm_static.encode(DOCS, purpose="query"), vectors)


@pytest.mark.slow
def test_texts_without_known_tokens_get_a_unit_vector(minilm_static: StaticEmbeddingModel) -> None:
    vectors = minilm_static.encode(["", "   ", "\u2603"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[1])
    assert minilm_static.encode([]).shape == (0, 256)


@pytest.mark.slow
def test_saved_model_by_path_gives_the_same_vectors_and_fingerprint(
    minilm_static: StaticEmbeddingModel, tmp_path: Path
) -> None:
    saved = tmp_path / "saved-static"
    minilm_static.static_model.save_pretrained(saved)
    by_path = load_model({"type": "model2vec", "path": str(saved)})
    assert isinstance(by_path, StaticEmbeddingModel)
    assert by_path.fingerprint == minilm_static.fingerprint
    assert np.array_equal(by_path.encode(DOCS), minilm_static.encode(DOCS))


def test_cache_entry_name_depends_on_parameters_and_source(tmp_path: Path) -> None:
    source = minilm_path()
    default = distilled_name(MiniLMStaticSpec(), source)
    assert default == distilled_name(MiniLMStaticSpec(pca_dims=256), source)
    assert default.startswith("minilm-static-")
    assert distilled_name(MiniLMStaticSpec(pca_dims=128), source) != default
    other_source = tmp_path / "other-minilm"
    shutil.copytree(source, other_source)
    (other_source / "vocab.txt").write_text("changed\n")
    assert distilled_name(MiniLMStaticSpec(), other_source) != default


@pytest.mark.slow
def test_concurrent_distills_run_once_and_match_the_first(static_cache: Path, tmp_path: Path) -> None:
    """Two threads distilling into a fresh cache: the lock lets one distil; the result is deterministic."""
    results: list[Path] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(distilled_minilm_dir(MiniLMStaticSpec(), tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 2 and results[0] == results[1]
    assert results[0].name == distilled_minilm_dir(MiniLMStaticSpec(), static_cache).name
    # Compare with the session cache's files, not ``minilm_static``: models are shared process-wide by
    # spec, so that one may have been loaded earlier from another cache root.
    cached = StaticEmbeddingModel(distilled_minilm_dir(MiniLMStaticSpec(), static_cache))
    assert StaticEmbeddingModel(results[0]).fingerprint == cached.fingerprint
    shutil.rmtree(tmp_path / "models")
