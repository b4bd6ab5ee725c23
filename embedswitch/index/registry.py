"""Choosing and opening the vector index of one (collection, version, kind).

The embedded indexes keep every vector in process memory and persist by checkpointing to a
directory. Their limits:

- ``exact`` scores every vector on every query, O(n) per query: fine up to ~20,000 vectors.
- ``hnsw`` (hnswlib, in process) answers in roughly O(log n), ~0.3 ms at 100,000 x 384, with
  recall@10 of 0.92-0.98 at the default parameters (raise ``ef_search`` for more); one machine
  serves a few million 384-dim vectors (~1.7 KB each in memory).
- ``usearch`` is HNSW on usearch with vectors stored at reduced precision (``f16``: half the
  vectors' memory, ``i8``: a quarter, unit-norm vectors only), for side-by-side versions that
  must fit in memory; recall beside float32 in ``bench/index_memory.py``.
- ``auto`` (the default) opens whatever type is on disk, starts new indexes as ``exact``, and
  converts one to ``hnsw`` at its first checkpoint past ``auto_threshold`` vectors.

Past a few million vectors per index use a server index; an embedded index logs a warning on the
``embedswitch`` logger once it passes 5,000,000 vectors. The server index:

- ``pgvector`` keeps the vectors in a table of the PostgreSQL store's database, shared by every
  server process, each write committed (and fenced) as it returns; exact below ``exact_below``
  vectors, pgvector's HNSW above (``index/pgvector.py`` states its limits). At 100,000 x 384 a
  search takes ~1.6 ms at p50 against ~0.45 ms for in-process hnswlib (``bench/pgvector_index.py``).

The engine indexes keep the vectors in a vector engine of their own, one collection per index:

- ``qdrant`` on the Qdrant server at the spec's ``url`` (Qdrant holds the seq guard), ``milvus`` on
  the Milvus server at its ``uri`` (a seq ledger holds it: in the data dir, or in a shared store's
  database). Without a url they run
  the engine's embedded mode in the index's directory (qdrant-client's local mode, milvus-lite),
  for tests and demos only (``index/qdrant.py``, ``index/milvus.py`` state the limits).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from embedswitch._errors import InvalidRequest
from embedswitch.index._files import stored_type
from embedswitch.index.base import IndexHost, IndexMeta, VectorIndex
from embedswitch.index.specs import IndexSpec

INDEX_TYPES: dict[str, str] = {
    "exact": "embedswitch.index.exact:ExactIndex",
    "hnsw": "embedswitch.index.hnsw:HnswIndex",
    "usearch": "embedswitch.index.usearch:UsearchIndex",
    "auto": "embedswitch.index.auto:AutoIndex",
}
"""Index type -> ``module:class`` of its backend, imported when first opened; each class has
``from_spec(spec, directory, meta)``. A new backend is one module, one line here and its spec."""

SERVER_TYPES: dict[str, str] = {
    "pgvector": "embedswitch.index.pgvector:PgvectorIndex",
}
"""Index types whose vectors live in the store's database; each class has
``from_spec(spec, host, meta)`` (``host``: an ``IndexHost``)."""


ENGINE_TYPES: dict[str, str] = {
    "qdrant": "embedswitch.index.qdrant:QdrantIndex",
    "milvus": "embedswitch.index.milvus:MilvusIndex",
}
"""Index types kept by a vector engine of their own, at the spec's server URL or in the engine's
embedded mode in the index's directory; each class has ``from_spec(spec, directory, meta, host)``
and ``stored_kinds(spec, directory, collection, version, host)`` (``host``: a shared store's
database, or None)."""

EXTRAS: dict[str, str] = {"qdrant_client": "qdrant", "pymilvus": "milvus", "milvus_lite": "milvus"}
"""The optional extra that installs an index type's client package."""


def open_index(
    spec: IndexSpec, directory: Path, meta: IndexMeta, host: IndexHost | None = None
) -> VectorIndex:
    """Open (or create) the index in ``directory`` as of its last checkpoint; a server-side index
    (a type in ``SERVER_TYPES``) keeps its table in ``host``'s database instead.

    Raises ``IndexMismatch`` when the directory holds an index built with another meta, or of
    another type than an explicit ``spec.type``. An ``auto`` index that already converted opens
    as the HNSW index it became.
    """
    check_placement(spec, has_database=host is not None)
    if host is not None and spec.type in SERVER_TYPES:
        found: VectorIndex = _backend(SERVER_TYPES[spec.type]).from_spec(spec, host, meta)
        return found
    directory = Path(directory)
    if spec.type in ENGINE_TYPES:
        engine: VectorIndex = _backend(ENGINE_TYPES[spec.type]).from_spec(spec, directory, meta, host)
        return engine
    kind = "hnsw" if spec.type == "auto" and stored_type(directory) == "hnsw" else spec.type
    index: VectorIndex = _backend(INDEX_TYPES[kind]).from_spec(spec, directory, meta)
    return index


def check_placement(spec: IndexSpec, has_database: bool) -> None:
    """Raise ``InvalidRequest`` for a server index type (``SERVER_TYPES``) without a store database
    to keep it in (the embedded store), and, with a shared store (``has_database``), for an engine
    type in its embedded mode (no url: one process's files); for an engine type whose client
    package is missing, naming the extra that installs it."""
    if spec.type in ENGINE_TYPES:
        _backend(ENGINE_TYPES[spec.type])
    if has_database and spec.type in ENGINE_TYPES and not shares_across_processes(spec):
        field, example = (
            ("url", "http://qdrant:6333") if spec.type == "qdrant" else ("uri", "http://milvus:19530")
        )
        embedded = "qdrant-client's local mode" if spec.type == "qdrant" else "milvus-lite"
        raise InvalidRequest(
            f"index type {spec.type!r} without a server {field} runs {embedded}, whose files are one "
            "process's, but this server shares a PostgreSQL store with other processes; give the "
            f'{spec.type} index a "{field}" (e.g. {example}), or use "pgvector"',
            index=spec.type,
        )
    if spec.type in SERVER_TYPES and not has_database:
        raise InvalidRequest(
            f"index type {spec.type!r} lives in a PostgreSQL store's database; serve with "
            "--store postgresql://... to use it, or pick an embedded type (exact, hnsw, usearch, auto)"
        )


def shares_across_processes(spec: IndexSpec) -> bool:
    """Whether every process of a cluster can serve from the index itself: ``pgvector``, ``qdrant``
    on a server (Qdrant holds the seq guard) and ``milvus`` on a server (its seq ledger is then in
    the store's database)."""
    return spec.type == "pgvector" or (
        (spec.type == "qdrant" and spec.url is not None) or (spec.type == "milvus" and spec.uri is not None)
    )


def _backend(target: str) -> Any:
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in EXTRAS:
            raise
        raise InvalidRequest(
            f"this index type needs the Python package {missing!r}, which is not installed here; install "
            f"it with pip install 'embedswitch[{EXTRAS[missing]}]' (or 'embedswitch[all]') and restart",
            extra=EXTRAS[missing],
            module=missing,
        ) from exc


def stored_kinds(
    spec: IndexSpec, directory: Path, host: IndexHost | None, collection: str, version: str
) -> list[str]:
    """The record kinds that have an index of this version: the subdirectories of ``directory``
    (one per kind), or for a server-side type the kinds its host's database holds."""
    if spec.type in SERVER_TYPES:
        if host is None:
            return []
        kinds: list[str] = _backend(SERVER_TYPES[spec.type]).stored_kinds(host, collection, version)
        return kinds
    directory = Path(directory)
    if spec.type in ENGINE_TYPES:
        found: list[str] = _backend(ENGINE_TYPES[spec.type]).stored_kinds(
            spec, directory, collection, version, host
        )
        return found
    return sorted(p.name for p in directory.iterdir() if p.is_dir()) if directory.is_dir() else []
