"""``auto``: an exact index that converts itself into an HNSW index once it grows past a threshold."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from embedswitch.index._local import LocalIndex
from embedswitch.index.base import Hit, IndexMeta
from embedswitch.index.exact import ExactIndex
from embedswitch.index.hnsw import HnswIndex
from embedswitch.index.specs import AutoSpec

_Write = Callable[[LocalIndex], object]


class AutoIndex:
    """An exact index that turns itself into an HNSW index once it grows past the threshold.

    The conversion happens inside ``checkpoint``: the HNSW graph is built from a snapshot while
    searches and writes keep going to the exact index; writes made meanwhile are replayed onto the
    graph (the seq guards make the result identical), then the graph takes over and is
    checkpointed. Ids, seqs and tombstones carry over. A crash before that checkpoint reopens the
    exact index, which converts again at its next checkpoint.
    """

    def __init__(self, spec: AutoSpec, directory: Path, meta: IndexMeta) -> None:
        self.meta = meta
        self._spec = spec
        self._directory = Path(directory)
        self._inner: LocalIndex = ExactIndex(self._directory, meta)
        self._write_lock = threading.RLock()
        self._checkpoint_lock = threading.Lock()
        self._pending: list[_Write] | None = None

    @classmethod
    def from_spec(cls, spec: AutoSpec, directory: Path, meta: IndexMeta) -> AutoIndex:
        return cls(spec, directory, meta)

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
            graph = HnswIndex.from_spec(self._spec, self._directory, self.meta, snapshot)
            with self._write_lock:
                for write in self._pending:
                    write(graph)
                self._inner = graph
        finally:
            self._pending = None
