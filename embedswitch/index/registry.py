"""Choosing and opening the vector index of one (collection, version, kind).

The embedded indexes keep every vector in process memory and persist by checkpointing to a
directory. Their limits:

- ``exact`` scores every vector on every query, O(n) per query: fine up to ~20,000 vectors.
- ``hnsw`` (hnswlib, in process) answers in roughly O(log n), ~0.3 ms at 100,000 x 384, with
  recall@10 of 0.92-0.98 at the default parameters (raise ``ef_search`` for more); one machine
  serves a few million 384-dim vectors (~1.7 KB each in memory).
- ``auto`` (the default) opens whatever type is on disk, starts new indexes as ``exact``, and
  converts one to ``hnsw`` at its first checkpoint past ``auto_threshold`` vectors.

Past a few million vectors per index use a server index such as pgvector or Milvus; an embedded
index logs a warning on the ``embedswitch`` logger once it passes 5,000,000 vectors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from embedswitch.index._local import LocalIndex, Snapshot, stored_type
from embedswitch.index.base import Hit, IndexMeta, VectorIndex
from embedswitch.index.exact import ExactIndex
from embedswitch.index.hnsw import HnswIndex


class IndexSpec(BaseModel):
    """Which embedded index to use and how to tune it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["auto", "exact", "hnsw"] = "auto"
    m: int = Field(default=16, ge=2, le=256, description="HNSW graph degree; fixed once a graph is built")
    ef_construction: int = Field(default=128, ge=1, description="HNSW search depth while inserting")
    ef_search: int = Field(default=64, ge=1, description="HNSW search depth per query (recall)")
    auto_threshold: int = Field(default=20_000, ge=0, description="'auto' goes HNSW past this size")


def open_index(spec: IndexSpec, directory: Path, meta: IndexMeta) -> VectorIndex:
    """Open (or create) the index in ``directory`` as of its last checkpoint.

    Raises ``IndexMismatch`` when the directory holds an index built with another meta, or of
    another type than an explicit ``spec.type``.
    """
    directory = Path(directory)
    if spec.type == "exact":
        return ExactIndex(directory, meta)
    if spec.type == "hnsw" or stored_type(directory) == "hnsw":
        return _open_hnsw(spec, directory, meta)
    return AutoIndex(spec, directory, meta)


def _open_hnsw(
    spec: IndexSpec, directory: Path, meta: IndexMeta, snapshot: Snapshot | None = None
) -> HnswIndex:
    return HnswIndex(
        directory,
        meta,
        m=spec.m,
        ef_construction=spec.ef_construction,
        ef_search=spec.ef_search,
        snapshot=snapshot,
    )


_Write = Callable[[LocalIndex], object]


class AutoIndex:
    """An exact index that turns itself into an HNSW index once it grows past the threshold.

    The conversion happens inside ``checkpoint``: the HNSW graph is built from a snapshot while
    searches and writes keep going to the exact index; writes made meanwhile are replayed onto the
    graph (the seq guards make the result identical), then the graph takes over and is
    checkpointed. Ids, seqs and tombstones carry over. A crash before that checkpoint reopens the
    exact index, which converts again at its next checkpoint.
    """

    def __init__(self, spec: IndexSpec, directory: Path, meta: IndexMeta) -> None:
        self.meta = meta
        self._spec = spec
        self._directory = Path(directory)
        self._inner: LocalIndex = ExactIndex(self._directory, meta)
        self._write_lock = threading.RLock()
        self._checkpoint_lock = threading.Lock()
        self._pending: list[_Write] | None = None

    @property
    def index_type(self) -> str:
        """The type currently serving: "exact" until converted, then "hnsw"."""
        return self._inner.index_type

    @property
    def inner(self) -> LocalIndex:
        """The index currently serving."""
        return self._inner

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int]) -> int:
        with self._write_lock:
            changed = self._inner.upsert(ids, vectors, seqs)
            if changed and self._pending is not None:
                ids_, vecs_, seqs_ = list(ids), np.array(vectors, copy=True), list(seqs)
                self._pending.append(lambda index: index.upsert(ids_, vecs_, seqs_))
            return changed

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        with self._write_lock:
            removed = self._inner.delete(ids, seqs)
            ids_, seqs_ = list(ids), list(seqs)
            self._record(lambda index: index.delete(ids_, seqs_))
            return removed

    def forget_tombstones(self, upto_seq: int) -> int:
        with self._write_lock:
            dropped = self._inner.forget_tombstones(upto_seq)
            self._record(lambda index: index.forget_tombstones(upto_seq))
            return dropped

    def search(self, queries: np.ndarray, k: int, exclude: Iterable[str] | None = None) -> list[list[Hit]]:
        return self._inner.search(queries, k, exclude)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return self._inner.get(ids)

    def seq_of(self, id: str) -> int | None:
        return self._inner.seq_of(id)

    def ids(self) -> list[str]:
        return self._inner.ids()

    def tombstones(self) -> dict[str, int]:
        return self._inner.tombstones()

    def __len__(self) -> int:
        return len(self._inner)

    def nbytes(self) -> int:
        return self._inner.nbytes()

    def checkpoint(self) -> None:
        """Make every write durable, first converting to HNSW if past ``auto_threshold``."""
        with self._checkpoint_lock:
            if isinstance(self._inner, ExactIndex) and len(self._inner) > self._spec.auto_threshold:
                self._convert()
            self._inner.checkpoint()

    def close(self) -> None:
        with self._checkpoint_lock, self._write_lock:
            self._inner.close()

    def destroy(self) -> None:
        with self._checkpoint_lock, self._write_lock:
            self._inner.destroy()

    def __repr__(self) -> str:
        return f"AutoIndex({self._inner!r})"

    def _record(self, write: _Write) -> None:
        if self._pending is not None:
            self._pending.append(write)

    def _convert(self) -> None:
        with self._write_lock:
            snapshot = self._inner.snapshot()
            self._pending = []
        try:
            graph = _open_hnsw(self._spec, self._directory, self.meta, snapshot)
            with self._write_lock:
                for write in self._pending:
                    write(graph)
                self._inner = graph
        finally:
            self._pending = None
