"""Precomputed vectors loaded into a ``source="vectors"`` version, then committed: the load's
checks (the version takes vectors, each names an existing record once, each has the version's
dimension) and its writes, at the snapshot's seq, so a later update of a record wins."""

from __future__ import annotations

from collections.abc import Sequence

from . import events
from ._errors import Conflict, InvalidRequest, RecordNotFound
from .results import VectorAck
from .specs import VectorRow
from .store.base import Store
from .version import Version


def load_vectors(version: Version, store: Store, rows: Sequence[VectorRow]) -> VectorAck:
    """Write ``rows`` into ``version`` (all or nothing); ``Conflict`` when it takes no vectors."""
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
    vectors = version.check_vectors([row.vector for row in rows], "vectors")
    keys = [(row.kind, row.id) for row in rows]
    if len(set(keys)) != len(keys):
        raise InvalidRequest(
            "a record appears twice in one vector batch; send one vector per record",
            collection=collection,
            version=name,
        )
    found = store.get_records(collection, keys)
    missing = [f"{kind}/{rid}" for kind, rid in keys if (kind, rid) not in found]
    if missing:
        raise RecordNotFound(
            f"{len(missing)} vectors name records that do not exist (e.g. {', '.join(missing[:3])}); "
            "ingest the records first, then load their vectors",
            collection=collection,
            version=name,
        )
    written = 0
    by_kind: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_kind.setdefault(row.kind, []).append(i)
    for kind, idx in by_kind.items():
        written += version.write(
            kind, [rows[i].id for i in idx], vectors[idx], [state.upto_seq] * len(idx), durable=True
        )
    return VectorAck(count=len(rows), written=written)


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
