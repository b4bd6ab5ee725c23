"""The index of one record kind of a lexical version: a ``Bm25Index`` of the records' texts (SQLite
FTS5 in the version's directory, or tables of the PostgreSQL store's database, ``index/pgbm25.py``,
with a shared store), and for a hybrid version the ``VectorIndex`` of its dense model beside it,
searched together and fused (``rrf``, ``convex``).

``TextIndex`` is a ``VectorIndex`` to everything that keeps indexes (the version's bookkeeping:
kinds, sizes, seq guards, checkpoints, retiring), so a lexical version is a version like any
other. What differs is what goes in and how it is searched: ``upsert`` also takes the records'
``texts`` (the sink passes them), and ``search_text`` answers a text query. Both parts are written
with the same seqs, so they hold the same records; ``seq_of`` is the older of the two, so a write
that reached one part but not the other before a crash is done again, never skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from embedswitch._errors import InvalidRequest
from embedswitch.index.base import Allowed, Bm25Index, Hit, IndexHost, IndexMeta, SearchParams, VectorIndex
from embedswitch.index.lexical import LexicalIndex, Tokenizer
from embedswitch.index.pgbm25 import PgBm25Index
from embedswitch.index.registry import open_index
from embedswitch.index.specs import IndexSpec


@dataclass(frozen=True)
class Fusion:
    """How a hybrid ranks the union of its parts' ``depth`` best hits (``HybridSpec``)."""

    method: Literal["rrf", "convex"] = "rrf"
    weight: float = 0.5
    """convex: the share of the dense score (the lexical one gets ``1 - weight``)."""
    rrf_k: int = 60
    depth: int = 100


def rrf(lists: Sequence[Sequence[Hit]], k: int, rrf_k: int) -> list[Hit]:
    """Reciprocal rank fusion: each id scores ``sum(1 / (rrf_k + rank))`` over the lists it is in
    (ranks from 1); the best ``k``, ties in first-seen order."""
    scores: dict[str, float] = {}
    for hits in lists:
        for rank, (id_, _) in enumerate(hits, start=1):
            scores[id_] = scores.get(id_, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


def convex(dense: Sequence[Hit], lexical: Sequence[Hit], k: int, weight: float) -> list[Hit]:
    """``weight * dense + (1 - weight) * lexical``, each list's scores min-max scaled to [0, 1]
    over its own hits (an id absent from a list scores 0 there); the best ``k``."""
    scores: dict[str, float] = {}
    for hits, share in ((dense, weight), (lexical, 1.0 - weight)):
        for id_, scaled in _min_max(hits):
            scores[id_] = scores.get(id_, 0.0) + share * scaled
    return sorted(scores.items(), key=lambda item: -item[1])[:k]


def _min_max(hits: Sequence[Hit]) -> list[Hit]:
    if not hits:
        return []
    values = [score for _, score in hits]
    low, span = min(values), max(values) - min(values)
    return [(id_, (score - low) / span if span > 0 else 1.0) for id_, score in hits]


class TextIndex:
    """A ``VectorIndex`` holding the texts (and, hybrid, the dense vectors) of one kind."""

    def __init__(self, lexical: Bm25Index, vectors: VectorIndex | None, fusion: Fusion) -> None:
        self.lexical = lexical
        self.vectors = vectors
        self.fusion = fusion
        self.meta: IndexMeta = lexical.meta

    @property
    def index_type(self) -> str:
        """ "bm25", or the vector index's type and "+bm25" ("exact+bm25", "hnsw+bm25", ...)."""
        return "bm25" if self.vectors is None else f"{self.vectors.index_type}+bm25"

    @property
    def precision(self) -> str:
        """The vectors' precision; "text" for BM25 alone."""
        return "text" if self.vectors is None else self.vectors.precision

    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        seqs: Sequence[int],
        durable: bool = False,
        texts: Sequence[str] | None = None,
    ) -> int:
        """Index each record's text (and vector): ``texts`` are required, a lexical index can't be
        filled from vectors alone."""
        if texts is None:
            raise InvalidRequest(
                f"version {self.meta.version!r} is lexical: it indexes the records' text, so its "
                "records can't come as vectors alone; upsert the records with their text",
                collection=self.meta.collection,
                version=self.meta.version,
            )
        written = self.vectors.upsert(ids, vectors, seqs, durable) if self.vectors is not None else 0
        return max(written, self.lexical.upsert(ids, texts, seqs, durable))

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        removed = self.vectors.delete(ids, seqs) if self.vectors is not None else 0
        return max(removed, self.lexical.delete(ids, seqs))

    def require_vectors(self) -> VectorIndex:
        """The dense part; ``InvalidRequest`` for BM25 alone, which has no vectors."""
        if self.vectors is None:
            raise InvalidRequest(
                f"version {self.meta.version!r} is BM25 alone: it has no vectors to search by vector, "
                "'like' or recommendation; search it by text, or use a hybrid or dense version",
                collection=self.meta.collection,
                version=self.meta.version,
            )
        return self.vectors

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[list[Hit]]:
        """The dense part's search by vector (``require_vectors``)."""
        return self.require_vectors().search(queries, k, exclude, allowed, params)

    def search_text(
        self,
        text: str,
        query: np.ndarray | None,
        k: int,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[Hit]:
        """The ``k`` best records for ``text``: BM25 alone, or (hybrid, ``query`` being the dense
        model's vector of ``text``) both parts' ``depth`` best, fused; with ``allowed``, each part
        ranks the allowed records only."""
        if self.vectors is None or query is None:
            return self.lexical.search(text, k, None, allowed)
        depth = max(k, self.fusion.depth)
        dense = self.vectors.search(query[None, :], depth, None, allowed, params)[0]
        lexical = self.lexical.search(text, depth, None, allowed)
        if self.fusion.method == "convex":
            return convex(dense, lexical, k, self.fusion.weight)
        return rrf([dense, lexical], k, self.fusion.rrf_k)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        return self.vectors.get(ids) if self.vectors is not None else {}

    def seq_of(self, id: str) -> int | None:
        """The older of the two parts' last seqs for ``id`` (None if either never saw it)."""
        lexical = self.lexical.seq_of(id)
        if self.vectors is None or lexical is None:
            return lexical
        dense = self.vectors.seq_of(id)
        return None if dense is None else min(lexical, dense)

    def ids(self) -> list[str]:
        return self.lexical.ids()

    def __len__(self) -> int:
        return len(self.lexical)

    def forget_tombstones(self, upto_seq: int) -> int:
        if self.vectors is not None:
            self.vectors.forget_tombstones(upto_seq)
        return self.lexical.forget_tombstones(upto_seq)

    def checkpoint(self) -> None:
        if self.vectors is not None:
            self.vectors.checkpoint()
        self.lexical.checkpoint()

    def memory_bytes(self) -> int:
        return self.lexical.memory_bytes() + (self.vectors.memory_bytes() if self.vectors is not None else 0)

    def disk_bytes(self) -> int:
        return self.lexical.disk_bytes() + (self.vectors.disk_bytes() if self.vectors is not None else 0)

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.close()
        self.lexical.close()

    def destroy(self) -> None:
        self.lexical.destroy()
        if self.vectors is not None:
            self.vectors.destroy()


def open_text_index(
    spec: IndexSpec | None,
    directory: Path,
    meta: IndexMeta,
    host: IndexHost | None,
    tokenizer: Tokenizer,
    fusion: Fusion,
) -> TextIndex:
    """The BM25 index (in ``directory``, or with a database ``host`` in its tables, which every
    process sharing it reads) and, with a vector index ``spec`` (hybrid), the vector index beside
    it (``registry.open_index``)."""
    vectors = open_index(spec, directory, meta, host) if spec is not None else None
    try:
        lexical: Bm25Index = (
            PgBm25Index.open(host, meta, tokenizer)
            if host is not None
            else LexicalIndex(directory, meta, tokenizer)
        )
    except Exception:
        if vectors is not None:
            vectors.close()
        raise
    return TextIndex(lexical, vectors, fusion)


def stored_text_kinds(host: IndexHost | None, collection: str, version: str) -> list[str]:
    """The record kinds with a BM25 index of ``version`` in ``host``'s database (none without one:
    an embedded index is a directory per kind, found like a vector index's)."""
    return PgBm25Index.stored_kinds(host, collection, version) if host is not None else []
