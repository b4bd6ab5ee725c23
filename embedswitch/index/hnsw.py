"""Approximate search on an in-process HNSW graph (hnswlib).

hnswlib was chosen by ``bench/bench_index.py`` (100,000 x 384 clustered vectors, M=16,
ef_construction=128, ef_search=64, on this project's 2-core machine): it built the graph about 2x
faster than usearch and answered a query about 3x faster (0.31 ms against 0.97 ms p50) at the same
recall, and unlike faiss HNSW it can delete. A query costs roughly O(log n), so one process serves a
few million 384-dim vectors; the graph holds each float32 vector once, about 1.7 KB per 384-dim
vector at M=16 (capacity grows by an eighth at a time). With the defaults recall@10 was 0.92 at
100,000 clustered vectors; raise ``ef_search`` for more recall at the cost of latency. ``get``
returns the float32 vectors exactly as written. Deleted vectors are marked, their slots reused by
later insertions; once marked slots pass ``rebuild_deleted_ratio`` of the live vectors the graph is
rebuilt in the background (``LocalIndex``).

What this relies on from hnswlib 0.8 (its README): ``knn_query`` is safe with other ``knn_query``
calls but not with ``add_items``, and ``resize_index`` is safe with neither; ``add_items`` and
``knn_query`` release the GIL. ``LocalIndex`` runs every write (``add_items``, which also replaces
vectors in place and reuses deleted slots, ``mark_deleted``, ``resize_index``) with searches
excluded, and lets searches, ``get_items`` and ``save_index`` run side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from embedswitch._errors import EmbedswitchError
from embedswitch.index._local import LocalIndex
from embedswitch.index._storage import Found, corrupt, scored, threads_for
from embedswitch.index.base import IndexMeta
from embedswitch.index.specs import AutoSpec, HnswSpec

_FILE = "index.hnswlib"
_MIN_CAPACITY = 1024
_MUTEX = 40
"""sizeof(std::mutex) on Linux x86-64: hnswlib keeps one per slot and 65,536 for labels."""
_LABEL_LOCKS = 65_536
_LOOKUP_NODE = 40
"""An entry of hnswlib's label -> slot ``unordered_map``: node (32 B allocated) + bucket pointer."""


def _outside(exclude: set[int]) -> Callable[[int], bool]:
    return lambda key: key not in exclude


def _mask(allow: np.ndarray, top: int) -> Callable[[int], int]:
    """hnswlib's filter for the keys ``allow`` among labels below ``top``: a byte per label, looked
    up in C (building a set of the allowed keys cost more than the search at 50% selectivity)."""
    mask = np.zeros(top, dtype=np.uint8)
    mask[allow] = 1
    return bytearray(mask.tobytes()).__getitem__


class HnswStorage:
    """The vectors in an hnswlib graph (inner-product space), labelled by key."""

    index_type = "hnsw"
    precision = "f32"
    scan_below = 0
    """hnswlib's ``get_items`` costs ~50 us a vector, a filtered search under a ms: always search."""

    def __init__(self, dim: int, m: int, ef_construction: int, ef_search: int) -> None:
        self.dim, self.m, self.ef_construction, self.ef_search = dim, m, ef_construction, ef_search
        self.close()

    def close(self) -> None:
        self._graph = hnswlib.Index(space="ip", dim=self.dim)
        self._graph.init_index(
            max_elements=_MIN_CAPACITY,
            ef_construction=self.ef_construction,
            M=self.m,
            allow_replace_deleted=True,
        )
        self._graph.set_ef(self.ef_search)
        self._live = 0
        self._top = 0  # above every label the graph has held: the size of a filter's mask

    def reserve(self, extra: int) -> None:
        """Grow the graph so ``extra`` more vectors fit, by at least an eighth (deleted slots count
        as taken: they are reused first, but they are in the capacity)."""
        need = self._graph.element_count + extra
        capacity = self._graph.get_max_elements()
        if need > capacity:
            self._graph.resize_index(max(need, capacity + capacity // 8))

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        # Keys are never reused, so every key here is new and may take a deleted slot.
        self.reserve(len(keys))
        self._graph.add_items(vectors, keys.astype(np.uint64), num_threads=threads, replace_deleted=True)
        self._live += len(keys)
        if len(keys):
            self._top = max(self._top, int(keys.max()) + 1)

    def replace(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        # add_items with a live label updates that element in place.
        self._graph.add_items(vectors, keys.astype(np.uint64), num_threads=threads)

    def remove(self, keys: np.ndarray) -> None:
        for key in keys.tolist():
            self._graph.mark_deleted(key)
        self._live -= len(keys)

    def get(self, keys: np.ndarray) -> np.ndarray:
        try:
            found = self._graph.get_items(keys.astype(np.uint64), return_type="numpy")
        except RuntimeError as exc:
            raise EmbedswitchError(f"HNSW graph lost vectors of stored keys ({exc}); rebuild it") from exc
        return np.asarray(found, dtype=np.float32).reshape(len(keys), self.dim)

    def search(
        self, queries: np.ndarray, k: int, exclude: set[int], allow: np.ndarray | None, ef: int | None
    ) -> Found:
        pool = len(allow) if allow is not None else self._live - len(exclude)
        # hnswlib searches with max(ef, count): a larger count is a larger ef for this call only
        count = min(max(k, ef or 0), pool)
        if count <= 0:
            return [[] for _ in range(len(queries))]
        keep: Callable[[int], object] | None = None
        if allow is not None:  # the filter runs inside the graph search, before ranking
            keep = _mask(allow, self._top)
        elif exclude:
            keep = _outside(exclude)
        # a filter is a Python function: one thread calls it (hnswlib's threads would take turns on the GIL)
        threads = 1 if keep is not None else threads_for(len(queries))
        try:
            labels, distances = self._graph.knn_query(queries, k=count, num_threads=threads, filter=keep)
        except RuntimeError:  # some query found fewer than ``count``: per query, short ones empty
            return [self._one(query, count, keep, k) for query in queries]
        return [scored(row, dists, set(), k) for row, dists in zip(labels, distances, strict=True)]

    def _one(
        self, query: np.ndarray, count: int, keep: Callable[[int], object] | None, k: int
    ) -> list[tuple[int, float]]:
        try:
            labels, distances = self._graph.knn_query(query[None, :], k=count, num_threads=1, filter=keep)
        except RuntimeError:
            return []
        return scored(labels[0], distances[0], set(), k)

    def save(self, directory: Path) -> list[Path]:
        path = directory / _FILE
        self._graph.save_index(str(path))
        return [path]

    def load(self, directory: Path, keys: np.ndarray) -> None:
        graph = hnswlib.Index(space="ip", dim=self.dim)
        graph.load_index(str(directory / _FILE), allow_replace_deleted=True)
        graph.set_ef(self.ef_search)
        self.m = int(graph.M)
        labels = graph.get_ids_list()
        if len(keys) and not set(keys.tolist()) <= set(labels):
            raise corrupt(directory, "graph")
        self._graph, self._live, self._top = graph, len(keys), max(labels, default=-1) + 1

    def empty(self) -> HnswStorage:
        return HnswStorage(self.dim, self.m, self.ef_construction, self.ef_search)

    def dead_slots(self) -> int:
        return int(self._graph.element_count) - self._live

    def memory_bytes(self) -> int:
        """What hnswlib allocates, by its layout: per slot of capacity the level-0 links, vector
        and label, a level, a link-list pointer, a mutex and a visited mark; the upper levels' links
        as they are (``index_file_size`` counts them); the label lookup per element; label locks."""
        graph = self._graph
        capacity, count = int(graph.get_max_elements()), int(graph.element_count)
        per_slot = (2 * self.m * 4 + 4) + self.dim * 4 + 8
        upper = int(graph.index_file_size()) - count * (per_slot + 4)
        return (
            capacity * (per_slot + 4 + 8 + _MUTEX + 2)
            + max(0, upper)
            + count * _LOOKUP_NODE
            + (_LABEL_LOCKS * _MUTEX)
        )

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}


class HnswIndex(LocalIndex):
    """A ``VectorIndex`` on an hnswlib HNSW graph with inner-product metric.

    ``m`` (graph degree) is fixed when the graph is first built; reopening an existing index keeps
    the ``m`` it was built with. ``ef_construction`` and ``ef_search`` apply on every open.
    """

    def __init__(
        self,
        directory: Path,
        meta: IndexMeta,
        *,
        m: int = 16,
        ef_construction: int = 128,
        ef_search: int = 64,
        rebuild_deleted_ratio: float | None = None,
    ) -> None:
        storage = HnswStorage(meta.dim, m, ef_construction, ef_search)
        super().__init__(directory, meta, storage, rebuild_deleted_ratio=rebuild_deleted_ratio)

    @classmethod
    def from_spec(cls, spec: HnswSpec | AutoSpec, directory: Path, meta: IndexMeta) -> HnswIndex:
        """The graph of ``spec`` (an ``auto`` spec's HNSW parameters too)."""
        return cls(
            directory,
            meta,
            m=spec.m,
            ef_construction=spec.ef_construction,
            ef_search=spec.ef_search,
            rebuild_deleted_ratio=spec.rebuild_deleted_ratio,
        )
