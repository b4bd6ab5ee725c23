"""Exact (brute-force) search over a float32 matrix held in memory.

Every query scores every vector, so results are exact and a query costs O(n * dim): about 1.5 ms
at 20,000 vectors of 384 dims on one core. Use it for small collections; ``registry.open_index``
with ``type="auto"`` switches to HNSW past ``auto_threshold`` vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedswitch._errors import EmbedswitchError
from embedswitch.index._local import LocalIndex, Snapshot, write_npy
from embedswitch.index.base import IndexMeta
from embedswitch.index.specs import ExactSpec

_MIN_CAPACITY = 64
_SCORE_BUDGET = 8_000_000
"""Most query x vector scores computed at once, bounding the temporary matrix to ~32 MB."""


class ExactIndex(LocalIndex):
    """A ``VectorIndex`` that scores every stored vector on every query."""

    index_type = "exact"

    @classmethod
    def from_spec(cls, spec: ExactSpec, directory: Path, meta: IndexMeta) -> ExactIndex:
        return cls(directory, meta)

    def _store_reset(self) -> None:
        self._mat = np.zeros((0, self.meta.dim), dtype=np.float32)
        self._row_keys = np.zeros(0, dtype=np.int64)
        self._row_of: dict[int, int] = {}
        self._n = 0

    def _store_add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        n, m = self._n, len(keys)
        self._reserve(n + m)
        self._mat[n : n + m] = vectors
        self._row_keys[n : n + m] = keys
        self._row_of.update(zip(keys.tolist(), range(n, n + m), strict=True))
        self._n = n + m

    def _store_replace(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self._mat[self._rows(keys)] = vectors

    def _store_remove(self, keys: np.ndarray) -> None:
        """Move the last row into each removed row, keeping rows ``[0, n)`` dense."""
        for key in keys.tolist():
            row = self._row_of.pop(key)
            last = self._n - 1
            if row != last:
                moved = int(self._row_keys[last])
                self._mat[row] = self._mat[last]
                self._row_keys[row] = moved
                self._row_of[moved] = row
            self._n = last

    def _store_get(self, keys: np.ndarray) -> np.ndarray:
        return self._mat[self._rows(keys)]

    def _store_search(self, queries: np.ndarray, k: int, exclude: set[int]) -> list[list[tuple[int, float]]]:
        n = self._n
        mask = [self._row_of[key] for key in exclude]
        kk = min(k, n - len(mask))
        if kk <= 0:
            return [[] for _ in range(len(queries))]
        chunk = max(1, _SCORE_BUDGET // n)
        out: list[list[tuple[int, float]]] = []
        for start in range(0, len(queries), chunk):
            out += self._top_k(queries[start : start + chunk], kk, mask)
        return out

    def _top_k(self, queries: np.ndarray, kk: int, mask: list[int]) -> list[list[tuple[int, float]]]:
        n = self._n
        scores = queries @ self._mat[:n].T
        if mask:
            scores[:, mask] = -np.inf
        if kk < n:
            top = np.argpartition(scores, n - kk, axis=1)[:, n - kk :]
        else:
            top = np.broadcast_to(np.arange(n), scores.shape)
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        rows = np.take_along_axis(top, order, axis=1)
        keys = self._row_keys[rows].tolist()
        best = np.take_along_axis(top_scores, order, axis=1).tolist()
        return [list(zip(ks, ss, strict=True)) for ks, ss in zip(keys, best, strict=True)]

    def _store_save(self, directory: Path) -> list[Path]:
        return [
            write_npy(directory / "vectors.npy", self._mat[: self._n]),
            write_npy(directory / "row_keys.npy", self._row_keys[: self._n]),
        ]

    def _store_load(self, directory: Path, keys: np.ndarray) -> None:
        vectors = np.load(directory / "vectors.npy", allow_pickle=False)
        row_keys = np.load(directory / "row_keys.npy", allow_pickle=False)
        if len(row_keys) != len(keys) or set(row_keys.tolist()) != set(keys.tolist()):
            raise EmbedswitchError(
                f"index checkpoint {directory} is corrupt: its vectors do not match its ids; "
                "restore it from a backup or rebuild this version",
                path=str(directory),
            )
        self._store_add(row_keys.astype(np.int64), vectors.astype(np.float32, copy=False))

    def _store_load_snapshot(self, snapshot: Snapshot) -> None:
        self._store_add(snapshot.keys, snapshot.vectors)

    def _store_nbytes(self) -> int:
        return int(self._mat.nbytes + self._row_keys.nbytes) + 64 * len(self._row_of)

    def _rows(self, keys: np.ndarray) -> list[int]:
        return [self._row_of[key] for key in keys.tolist()]

    def _reserve(self, size: int) -> None:
        """Grow capacity geometrically so that appends are amortised O(1)."""
        capacity = len(self._mat)
        if size <= capacity:
            return
        new_capacity = max(_MIN_CAPACITY, size, capacity + capacity // 2)
        mat = np.zeros((new_capacity, self.meta.dim), dtype=np.float32)
        mat[: self._n] = self._mat[: self._n]
        row_keys = np.zeros(new_capacity, dtype=np.int64)
        row_keys[: self._n] = self._row_keys[: self._n]
        self._mat, self._row_keys = mat, row_keys
