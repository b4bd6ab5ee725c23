"""Precomputed vectors loaded into a ``source="vectors"`` version, then committed: the load's
checks (the version takes vectors, each names an existing record once, each has the version's
dimension) and its writes, at the snapshot's seq, so a later update of a record wins."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import events
from ._errors import Conflict, InvalidRequest, RecordNotFound
from .results import VectorAck
from .specs import VectorRow
from .store.base import BackfillState, Store
from .version import Version


def load_vectors(version: Version, store: Store, rows: Sequence[VectorRow]) -> VectorAck:
    """Write ``rows`` into ``version`` (all or nothing); ``Conflict`` when it takes no vectors."""
    state = _awaiting(version)
    vectors = version.check_vectors([row.vector for row in rows], "vectors")
    by_kind: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_kind.setdefault(row.kind, []).append(i)
    parts = [(kind, [rows[i].id for i in idx], vectors[idx]) for kind, idx in by_kind.items()]
    return _load(version, store, state, parts)


def load_array(
    version: Version, store: Store, kind: str, ids: Sequence[str], vectors: np.ndarray
) -> VectorAck:
    """Write row ``i`` of the 2-D array ``vectors`` as the vector of record ``ids[i]`` of ``kind``
    (all or nothing): a bulk load with no per-number validation, as fast as the index takes it."""
    state = _awaiting(version)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise InvalidRequest(
            f"{len(ids)} ids for an array of shape {vectors.shape}; pass a 2-D array, one row per id",
            collection=version.collection,
            version=version.name,
        )
    return _load(version, store, state, [(kind, list(ids), version.check_vectors(vectors, "vectors"))])


def _awaiting(version: Version) -> BackfillState:
    """The version's load state, or ``Conflict`` when it takes no vectors now."""
    name, collection = version.name, version.collection
    state = version.backfill.state if version.backfill is not None else None
    if version.training is not None:
        raise Conflict(
            f"version {name!r} is trained by embedswitch; it loads its own vectors",
            collection=collection,
            version=name,
        )
    if state is None or not state.awaiting_vectors:
        raise Conflict(
            f"version {name!r} does not take vectors: only a version created with "
            '"source": "vectors" does, until its load is committed',
            collection=collection,
            version=name,
        )
    return state


def _load(
    version: Version, store: Store, state: BackfillState, parts: list[tuple[str, list[str], np.ndarray]]
) -> VectorAck:
    """Check every part (kind, ids, checked vectors), then write them all."""
    where = {"collection": version.collection, "version": version.name}
    missing: list[str] = []
    for kind, ids, _ in parts:
        if len(set(ids)) != len(ids):
            raise InvalidRequest(
                "a record appears twice in one vector batch; send one vector per record", **where
            )
        found = store.get_fields(version.collection, kind, ids)
        missing += [f"{kind}/{rid}" for rid in ids if rid not in found]
    if missing:
        raise RecordNotFound(
            f"{len(missing)} vectors name records that do not exist (e.g. {', '.join(missing[:3])}); "
            "ingest the records first, then load their vectors",
            **where,
        )
    written = sum(
        version.write(kind, ids, vectors, [state.upto_seq] * len(ids), durable=True)
        for kind, ids, vectors in parts
    )
    return VectorAck(count=sum(len(ids) for _, ids, _ in parts), written=written)


def commit_load(version: Version, store: Store) -> None:
    """End ``version``'s load: its model embeds the records that got no vector."""
    state = version.backfill.state if version.backfill is not None else None
    if version.training is not None or state is None or not state.awaiting_vectors:
        raise Conflict(
            f"version {version.name!r} has no vector load to commit",
            collection=version.collection,
            version=version.name,
        )
    version.commit_vectors()
    events.record(store, version.collection, version.name, "vectors_committed", {})
