"""HNSW with vectors stored at reduced precision (usearch): half or a quarter of the memory.

hnswlib stores float32 only; usearch builds the same kind of graph over vectors it stores as
``f16`` (half the bytes per vector; recall within about a point of float32) or ``i8`` (a quarter;
usearch normalises each vector and scales it to [-127, 127], so only unit-norm vectors keep their
scores: the inner product becomes the cosine). ``f32`` is there to compare like with like.
Measured side by side with hnswlib in ``bench/index_memory.py`` (memory, recall@10, latency).
``get`` returns the stored, rounded vectors as float32; scores are inner products of the query
with them (usearch rounds the query the same way).

What this relies on from usearch (2.x Python): ``add``/``remove`` may grow or restructure the
graph, so ``LocalIndex`` runs them with reads excluded; ``search`` and ``get`` only read. usearch
holds the GIL while it searches, so concurrent searches of one usearch index take turns on the
interpreter instead of running on several cores (hnswlib's do). Removed slots are reused by later
additions, so the graph does not grow under churn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from embedswitch.index._local import LocalIndex
from embedswitch.index._storage import Found, corrupt, scored, threads_for
from embedswitch.index.base import IndexMeta
from embedswitch.index.specs import UsearchSpec

_FILE = "index.usearch"


class UsearchStorage:
    """The vectors in a usearch HNSW graph at ``precision``, labelled by key."""

    index_type = "usearch"
    scan_below = 256
    """usearch's search takes no filter (see ``search``); ``get`` costs ~6 us a vector."""

    def __init__(self, dim: int, spec: UsearchSpec) -> None:
        self.dim, self.spec = dim, spec
        self.precision: str = spec.precision
        self.close()

    def close(self) -> None:
        self._index = self._new(self.precision)

    def _new(self, precision: str) -> Index:
        return Index(
            ndim=self.dim,
            metric="cos" if precision == "i8" else "ip",  # usearch quantises to i8 for cosine only
            dtype=precision,
            connectivity=self.spec.m,
            expansion_add=self.spec.ef_construction,
            expansion_search=self.spec.ef_search,
        )

    def reserve(self, extra: int) -> None:
        """usearch grows its graph itself (doubling)."""

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        self._index.add(keys.astype(np.uint64), vectors, threads=max(0, threads))

    def replace(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        self.remove(keys)
        self.add(keys, vectors, threads)

    def remove(self, keys: np.ndarray) -> None:
        self._index.remove(keys.astype(np.uint64))

    def get(self, keys: np.ndarray) -> np.ndarray:
        found = self._index.get(keys.astype(np.uint64), dtype="f32")
        rows = np.stack([row for row in found if row is not None]) if isinstance(found, tuple) else found
        return np.asarray(rows, dtype=np.float32).reshape(len(keys), self.dim)

    def search(
        self, queries: np.ndarray, k: int, exclude: set[int], allow: np.ndarray | None, ef: int | None
    ) -> Found:
        """usearch's Python search takes no filter: with ``allow``, it over-fetches in proportion
        to how selective the filter is and keeps the allowed keys (``LocalIndex`` scores the
        allowed vectors exactly for any query left short)."""
        size = len(self._index)
        want = max(k, ef or 0)
        if allow is not None:
            count = min(size, want * (-(-size // max(1, len(allow))) * 2 + 3) + len(exclude))
        else:
            count = min(size, want + len(exclude))
        if count <= 0 or (allow is not None and not len(allow)):
            return [[] for _ in range(len(queries))]
        threads = max(0, threads_for(len(queries)))
        found = self._index.search(queries, count, threads=threads)
        keys, distances = np.atleast_2d(found.keys), np.atleast_2d(found.distances)
        counts = np.atleast_1d(getattr(found, "counts", [len(found.keys)]))
        if allow is not None:
            allowed = frozenset(allow.tolist())
            return [
                [hit for hit in scored(row[:n], dists[:n], set(), n) if hit[0] in allowed][:k]
                for row, dists, n in zip(keys, distances, counts.tolist(), strict=True)
            ]
        return [
            scored(row[:n], dists[:n], exclude, k)
            for row, dists, n in zip(keys, distances, counts.tolist(), strict=True)
        ]

    def save(self, directory: Path) -> list[Path]:
        path = directory / _FILE
        self._index.save(str(path))
        return [path]

    def load(self, directory: Path, keys: np.ndarray) -> None:
        path = str(directory / _FILE)
        meta = Index.metadata(path) or {}
        precision = str(meta.get("kind_scalar", self.precision)).rsplit(".", 1)[-1].lower()
        index = self._new(precision)
        index.load(path)
        if len(keys) and not bool(np.all(index.contains(keys.astype(np.uint64)))):
            raise corrupt(directory, "graph")
        self._index, self.precision = index, precision

    def empty(self) -> UsearchStorage:
        return UsearchStorage(self.dim, self.spec.model_copy(update={"precision": self.precision}))

    def dead_slots(self) -> int:
        return 0

    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def params(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "m": spec.m,
            "ef_construction": spec.ef_construction,
            "ef_search": spec.ef_search,
            "precision": self.precision,
        }


class UsearchIndex(LocalIndex):
    """A ``VectorIndex`` on a usearch HNSW graph storing vectors at reduced precision.

    ``precision`` is fixed when the graph is first built; reopening keeps the one it was built with.
    """

    def __init__(self, directory: Path, meta: IndexMeta, spec: UsearchSpec) -> None:
        super().__init__(
            directory, meta, UsearchStorage(meta.dim, spec), rebuild_deleted_ratio=spec.rebuild_deleted_ratio
        )

    @classmethod
    def from_spec(cls, spec: UsearchSpec, directory: Path, meta: IndexMeta) -> UsearchIndex:
        return cls(directory, meta, spec)
