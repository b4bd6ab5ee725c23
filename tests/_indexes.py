"""What the index suites share: the index types under test, their precision, small vector helpers.

``TYPES`` are the embedded types (an index in a directory); ``SEAM_TYPES`` adds ``pgvector``, an
index in a real PostgreSQL (``tests/_postgres.py``), reached through ``tests/_pg_host.py``, and the
engine types ``qdrant`` and ``milvus`` in their embedded modes (qdrant-client's local mode,
milvus-lite: the real client code, no server), skipped with the reason when their package is missing,
and ``milvus-pg``: milvus-lite with its seq ledger in the real PostgreSQL.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from embedswitch.index import IndexMeta, VectorIndex, index_spec, open_index
from embedswitch.index._local import LocalIndex
from embedswitch.index.base import IndexHost

DIM = 16
META = IndexMeta(collection="docs", version="v1", kind="text", fingerprint="ab" * 32, dim=DIM)
SPECS: dict[str, dict[str, str]] = {
    "exact": {"type": "exact"},
    "hnsw": {"type": "hnsw"},
    "usearch-f16": {"type": "usearch", "precision": "f16"},
    "usearch-i8": {"type": "usearch", "precision": "i8"},
}
TYPES = list(SPECS)
ENGINES = {"qdrant": "qdrant_client", "milvus": "pymilvus"}
"""Engine index type -> the client package it needs."""
SEAM_TYPES = [*TYPES, "pgvector", *ENGINES, "milvus-pg"]
ON_HOST = {"pgvector", "milvus-pg"}
"""Seam types that keep something in the host's database: pgvector its vectors, ``milvus-pg`` (a
milvus index whose seq ledger is in the database, as with a shared store; its engine is
milvus-lite, so one process only) its ledger."""
PGVECTOR: dict[str, object] = {"type": "pgvector"}
ATOL = {"f32": 0.0, "f16": 1e-3, "i8": 3e-2}
"""How far a stored vector's numbers (and so its scores) may be from those written, per precision."""


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def open_typed(index_type: str, directory: Path, meta: IndexMeta = META) -> LocalIndex:
    spec = SPECS[index_type]
    index = open_index(index_spec(spec), directory, meta)
    assert isinstance(index, LocalIndex)
    assert index.index_type == spec["type"]
    assert index.precision == spec.get("precision", "f32")
    return index


def require_engine(index_type: str) -> None:
    """Skip the test, saying why, when the engine type's client package is not installed."""
    package = ENGINES[index_type]
    try:
        importlib.import_module(package)
    except ModuleNotFoundError:
        pytest.skip(
            f"{index_type} index: {package} is not installed (pip install 'embedswitch[{index_type}]')"
        )


def open_seam(
    index_type: str, directory: Path, host: IndexHost | None, meta: IndexMeta = META, persistent: bool = True
) -> VectorIndex:
    """An index of any ``SEAM_TYPES`` type: in ``directory``, or (pgvector) in ``host``'s database.
    Without ``persistent``, a qdrant index is in memory (local mode on disk commits every point)."""
    if index_type == "milvus-pg":
        require_engine("milvus")
        from embedswitch.index.milvus import MilvusIndex

        assert host is not None
        ledgered: VectorIndex = MilvusIndex.open(meta, directory, None, host)
        return ledgered
    if index_type in ENGINES:
        require_engine(index_type)
        if index_type == "qdrant" and not persistent:
            qdrant = importlib.import_module("embedswitch.index.qdrant")
            found: VectorIndex = qdrant.QdrantIndex.open(meta)
        else:
            found = open_index(index_spec({"type": index_type}), directory, meta)
        assert (found.index_type, found.precision) == (index_type, "f32")
        return found
    if index_type != "pgvector":
        return open_typed(index_type, directory, meta)
    index = open_index(index_spec(PGVECTOR), directory, meta, host)
    assert (index.index_type, index.precision) == ("pgvector", "f32")
    return index


def assert_stored(index: VectorIndex, got: np.ndarray, written: np.ndarray) -> None:
    """``got`` is ``written`` as the index stores it: exactly, or within its precision."""
    if index.precision == "f32":
        np.testing.assert_array_equal(got, written)
    else:
        np.testing.assert_allclose(got, written, atol=ATOL[index.precision])


def score_atol(index: VectorIndex) -> float:
    """How far a score may be from the inner product with the vector as written."""
    return max(1e-5, ATOL[index.precision] * 2)
