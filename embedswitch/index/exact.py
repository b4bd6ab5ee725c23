"""Exact (brute-force) search over a float32 matrix held in memory.

Every query scores every vector, so results are exact and a query costs O(n * dim): about 1.5 ms
at 20,000 vectors of 384 dims on one core. Use it for small collections; ``registry.open_index``
with ``type="auto"`` switches to HNSW past ``auto_threshold`` vectors. The matrix holds each vector
once (rows ``[0, n)`` dense, capacity growing by a quarter), plus 16 bytes per row and 8 per key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from embedswitch.index._files import write_npy
from embedswitch.index._local import LocalIndex
from embedswitch.index._storage import Found, corrupt, top_k
from embedswitch.index.base import IndexMeta
from embedswitch.index.specs import ExactSpec

_MIN_CAPACITY = 64
_SCORE_BUDGET = 8_000_000
"""Most query x vector scores computed at once, bounding the temporary matrix to ~32 MB."""


class ExactStorage:
    """The vectors as rows of one matrix; a removed row is filled with the last one."""

    index_type = "exact"
    precision = "f32"
    scan_below = 0  # its own search scores the allowed rows only

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.close()

    def close(self) -> None:
        self._mat = np.zeros((0, self.dim), dtype=np.float32)
        self._row_keys = np.zeros(0, dtype=np.int64)  # row -> key
        self._row_of = np.zeros(0, dtype=np.int64)  # key -> row, -1 for none
        self._n = 0

    def reserve(self, extra: int) -> None:
        """Grow capacity to fit ``extra`` more rows, by at least a quarter (amortised O(1) appends)."""
        size, capacity = self._n + extra, len(self._mat)
        if size <= capacity:
            return
        new_capacity = max(_MIN_CAPACITY, size, capacity + capacity // 4)
        mat = np.zeros((new_capacity, self.dim), dtype=np.float32)
        mat[: self._n] = self._mat[: self._n]
        row_keys = np.zeros(new_capacity, dtype=np.int64)
        row_keys[: self._n] = self._row_keys[: self._n]
        self._mat, self._row_keys = mat, row_keys

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        n, m = self._n, len(keys)
        self.reserve(m)
        self._mat[n : n + m] = vectors
        self._row_keys[n : n + m] = keys
        top = int(keys.max()) + 1 if m else 0
        if top > len(self._row_of):
            grown = np.full(max(top, len(self._row_of) * 5 // 4), -1, dtype=np.int64)
            grown[: len(self._row_of)] = self._row_of
            self._row_of = grown
        self._row_of[keys] = np.arange(n, n + m)
        self._n = n + m

    def replace(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        self._mat[self._row_of[keys]] = vectors

    def remove(self, keys: np.ndarray) -> None:
        """Move the last row into each removed row, keeping rows ``[0, n)`` dense."""
        for key in keys.tolist():
            row, last = int(self._row_of[key]), self._n - 1
            if row != last:
                moved = int(self._row_keys[last])
                self._mat[row] = self._mat[last]
                self._row_keys[row] = moved
                self._row_of[moved] = row
            self._row_of[key] = -1
            self._n = last

    def get(self, keys: np.ndarray) -> np.ndarray:
        return self._mat[self._row_of[keys]]

    def search(
        self, queries: np.ndarray, k: int, exclude: set[int], allow: np.ndarray | None, ef: int | None
    ) -> Found:
        n = self._n
        if allow is not None:  # score the allowed rows only: a mask before ranking
            mat, keys = self._mat[self._row_of[allow]], allow
        elif exclude:
            keep = np.ones(n, dtype=bool)
            keep[self._row_of[np.fromiter(exclude, dtype=np.int64, count=len(exclude))]] = False
            mat, keys = self._mat[:n][keep], self._row_keys[:n][keep]
        else:
            mat, keys = self._mat[:n], self._row_keys[:n]
        if not len(keys):
            return [[] for _ in range(len(queries))]
        chunk = max(1, _SCORE_BUDGET // len(keys))
        out: Found = []
        for start in range(0, len(queries), chunk):
            out += top_k(queries[start : start + chunk], mat, keys, k)
        return out

    def save(self, directory: Path) -> list[Path]:
        return [
            write_npy(directory / "vectors.npy", self._mat[: self._n]),
            write_npy(directory / "row_keys.npy", self._row_keys[: self._n]),
        ]

    def load(self, directory: Path, keys: np.ndarray) -> None:
        vectors = np.load(directory / "vectors.npy", allow_pickle=False)
        row_keys = np.load(directory / "row_keys.npy", allow_pickle=False)
        if len(row_keys) != len(keys) or set(row_keys.tolist()) != set(keys.tolist()):
            raise corrupt(directory, "vectors")
        self.add(row_keys.astype(np.int64), vectors.astype(np.float32, copy=False), 1)

    def empty(self) -> ExactStorage:
        return ExactStorage(self.dim)

    def dead_slots(self) -> int:
        return 0

    def memory_bytes(self) -> int:
        return int(self._mat.nbytes + self._row_keys.nbytes + self._row_of.nbytes)

    def params(self) -> dict[str, Any]:
        return {}


class ExactIndex(LocalIndex):
    """A ``VectorIndex`` that scores every stored vector on every query."""

    def __init__(self, directory: Path, meta: IndexMeta) -> None:
        super().__init__(directory, meta, ExactStorage(meta.dim))

    @classmethod
    def from_spec(cls, spec: ExactSpec, directory: Path, meta: IndexMeta) -> ExactIndex:
        return cls(directory, meta)
