"""What the index suites share: the index types under test, their precision, small vector helpers.

``TYPES`` are the embedded types (an index in a directory); ``SEAM_TYPES`` adds ``pgvector``, an
index in a real PostgreSQL (``tests/_postgres.py``), reached through ``tests/_pg_host.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
SEAM_TYPES = [*TYPES, "pgvector"]
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


def open_seam(
    index_type: str, directory: Path, host: IndexHost | None, meta: IndexMeta = META
) -> VectorIndex:
    """An index of any ``SEAM_TYPES`` type: in ``directory``, or (pgvector) in ``host``'s database."""
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
