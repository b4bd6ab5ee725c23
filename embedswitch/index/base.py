"""The vector-index seam: one index holds one record kind of one version."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embedswitch._pg import Host
from embedswitch.filters import Filter


@dataclass(frozen=True)
class IndexMeta:
    """What built an index. Opening an index with a different meta is an ``IndexMismatch``."""

    collection: str
    version: str
    kind: str
    fingerprint: str
    dim: int


Hit = tuple[str, float]


class Ranked(list[Hit]):
    """One query's hits, best first, and, from an index that reads them in its own query (``pgvector``
    joins the store's records), the hits' record fields as of the search (``fields``: id -> fields;
    an id without a record has none). ``fields`` is None when the caller reads them from the store."""

    fields: dict[str, dict[str, Any]] | None = None


class Allowed:
    """Which records a filtered search may return: those of the index's kind whose fields match
    ``where`` (a compiled filter), as the store holds them when the search runs.

    An index that holds vectors only (the in-process ones) calls ``ids()``: the store's answer to
    the filter, resolved on first use and kept for the request. An index in the store's own
    database (``pgvector``) evaluates ``where`` beside its vectors instead. ``where`` is None when
    the caller knows the ids only (``Allowed.of``).
    """

    def __init__(self, where: Filter | None, resolve: Callable[[], AbstractSet[str]]) -> None:
        self.where = where
        self._resolve = resolve
        self._ids: frozenset[str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, ids: Iterable[str]) -> Allowed:
        """Exactly these ids."""
        fixed = frozenset(ids)
        return cls(None, lambda: fixed)

    def ids(self) -> frozenset[str]:
        """The allowed ids (resolved once)."""
        with self._lock:
            if self._ids is None:
                self._ids = frozenset(self._resolve())
            return self._ids


@dataclass(frozen=True)
class SearchParams:
    """Per-search knobs. ``ef``: search breadth of a graph index for this search (it never goes
    below the index's own ``ef_search``); ``exact``: score every candidate (every allowed vector),
    exact whatever the index type."""

    ef: int | None = None
    exact: bool = False


@runtime_checkable
class IndexHost(Host, Protocol):
    """Where a server-side index (``pgvector``) keeps its tables, and a ``milvus`` index its seq
    ledger: the shared store's database, whose ``connection()`` it writes and reads through.

    ``PostgresStore`` is one. Embedded indexes (files in a directory) take no host.
    """

    def reader(self) -> AbstractContextManager[Any]:
        """A pooled connection with no transaction open (inside ``store.together``, that block's
        connection), for a read that sends its own ``BEGIN`` ... ``COMMIT`` in one pipeline."""
        ...

    def searcher(self) -> AbstractContextManager[Any]:
        """A pooled autocommit connection that only index searches use (read-only; inside
        ``store.together`` too), so session settings a search makes stay with searches."""
        ...

    def own_transaction(self) -> AbstractContextManager[Any]:
        """A pooled connection in a transaction of its own, committed when the block exits normally,
        even inside ``store.together`` (a write that must be durable before one outside the
        database, such as a Milvus seq ledger's record)."""
        ...

    def check_fence(self, conn: Any) -> None:
        """Inside ``conn``'s transaction: raise ``LeaseLost`` if the calling worker runs under a
        ``_fence.fenced`` lease that this process no longer holds at its epoch (else nothing)."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Vectors of one (collection, version, kind), keyed by record id, guarded by per-record seq.

    Callers may rely on:
    - every write carries the change-log ``seq`` it comes from. A write is applied only when its seq
      is greater than the last seq the index saw for that id, deletes included (tombstones), so
      replaying a seq twice, or writing an older snapshot after a newer update or a delete, is a
      no-op. ``upsert`` and ``delete`` return how many ids they actually changed;
    - ``search`` takes unit-norm queries ``[n, dim]`` and returns, per query, up to ``k`` hits
      ``(id, score)`` by descending inner product, skipping ids in ``exclude`` and, with
      ``allowed``, every id it does not allow. Both restrict the candidates *before* ranking: a
      search returns ``k`` hits whenever ``k`` allowed, non-excluded vectors exist (an approximate
      index falls back to scoring the allowed vectors exactly rather than return fewer);
    - all methods are safe to call from several threads, and searches do not wait for each other;
    - ``checkpoint`` makes every write so far durable; after a crash the index reopens as of its
      last checkpoint, never half-written, plus every ``durable`` upsert made after it (re-applied
      in order through the seq guards). A durable upsert is durable when it returns; it costs a
      small write of its own vectors, not a checkpoint (a backfill page, a vector load).
    """

    meta: IndexMeta

    @property
    def index_type(self) -> str:
        """What serves the vectors now, e.g. "exact", "hnsw", "usearch" or "pgvector"."""
        ...

    @property
    def precision(self) -> str:
        """How each number is stored: "f32" (``get`` returns vectors as written), "f16" or "i8"."""
        ...

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int], durable: bool = False
    ) -> int: ...

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int: ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[list[Hit]]: ...

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present."""
        ...

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen."""
        ...

    def ids(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        ...

    def checkpoint(self) -> None: ...

    def memory_bytes(self) -> int:
        """Bytes of memory the index holds: its vectors, search structure and id bookkeeping."""
        ...

    def disk_bytes(self) -> int:
        """Bytes of its last checkpoint on disk; for a server index, of its table in the database."""
        ...

    def close(self) -> None: ...

    def destroy(self) -> None:
        """Close and delete every file or table of this index."""
        ...


@runtime_checkable
class Bm25Index(Protocol):
    """The texts of one (collection, version, kind), keyed by record id, ranked by Okapi BM25
    (k1 = 1.2, b = 0.75): the lexical part of a ``TextIndex``. ``LexicalIndex`` (SQLite FTS5, one
    process's file) and ``PgBm25Index`` (tables of the PostgreSQL store's database) are two.

    Callers may rely on the promises of ``VectorIndex`` where they apply: writes carry seqs and
    pass the guard only when newer (deletes included, leaving tombstones), each returning how many
    ids it changed; ``search`` returns up to ``k`` hits ``(id, score)`` for records holding any
    word of ``text``, best first (higher is better), skipping ``exclude`` and, with ``allowed``,
    every id it does not allow (the ``k`` best allowed matches, whatever ranks above them); every
    method is safe from several threads, and searches wait for no write.
    """

    meta: IndexMeta

    @property
    def index_type(self) -> str: ...

    @property
    def precision(self) -> str: ...

    def upsert(
        self, ids: Sequence[str], texts: Sequence[str], seqs: Sequence[int], durable: bool = False
    ) -> int: ...

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int: ...

    def search(
        self, text: str, k: int, exclude: Iterable[str] | None = None, allowed: Allowed | None = None
    ) -> list[Hit]: ...

    def get(self, ids: Sequence[str]) -> dict[str, str]:
        """The indexed texts of those ids that are present."""
        ...

    def seq_of(self, id: str) -> int | None: ...

    def ids(self) -> list[str]: ...

    def tombstones(self) -> dict[str, int]:
        """Deleted id -> the seq of its delete."""
        ...

    def __len__(self) -> int: ...

    def forget_tombstones(self, upto_seq: int) -> int: ...

    def checkpoint(self) -> None: ...

    def memory_bytes(self) -> int: ...

    def disk_bytes(self) -> int: ...

    def close(self) -> None: ...

    def destroy(self) -> None: ...
