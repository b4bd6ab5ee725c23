"""The store seam: records and the change log (``RecordStore``), control state (``ControlStore``).

A backend implements both as one ``Store``, chosen by URI in ``registry.py``. The seam carries
plain data (the dataclasses below), never API schemas: a write takes anything shaped like a
``NewRecord``. Waiting is part of it too: for new log entries (``wait_for_log``) and for a
version's applied position (``wait_applied``), so a backend shared by several processes can
wake them (PostgreSQL: LISTEN/NOTIFY) where the embedded one uses an in-process condition.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..filters import Filter

Op = Literal["upsert", "delete", "interact"]
RecordKey = tuple[str, str]  # (kind, id)


class NewRecord(Protocol):
    """A record to write: ``(kind, id)`` identifies it in its collection."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str | None: ...

    @property
    def fields(self) -> Mapping[str, Any]: ...

    @property
    def vector(self) -> Sequence[float] | None:
        """The record's own vector, if it brings one (kept with it as float32)."""
        ...


class NewInteraction(Protocol):
    """An interaction to write; ``ts`` None means now."""

    @property
    def user(self) -> str: ...

    @property
    def item(self) -> str: ...

    @property
    def weight(self) -> float: ...

    @property
    def ts(self) -> float | None: ...


@dataclass(frozen=True)
class Interaction:
    """A stored interaction: ``user`` interacted with ``item`` (``weight``, at ``ts`` seconds)."""

    user: str
    item: str
    weight: float = 1.0
    ts: float = 0.0


@dataclass(frozen=True)
class Record:
    """A stored record; ``text`` is "" for one that brought only a ``vector`` (float32 bytes)."""

    kind: str
    id: str
    text: str
    fields: dict[str, Any]
    seq: int
    vector: bytes | None = None


@dataclass(frozen=True)
class Change:
    """One entry of the change log."""

    seq: int
    op: Op
    kind: str
    id: str
    text: str | None = None
    vector: bytes | None = None  # an upsert's own vector, float32 bytes, if the record brought one


@dataclass(frozen=True)
class CollectionRow:
    name: str
    head_seq: int
    created_at: float


@dataclass(frozen=True)
class BackfillState:
    """Progress of a version's backfill over the records that existed at ``upto_seq``."""

    upto_seq: int
    total: int
    done: int = 0
    cursor: RecordKey | None = None
    finished: bool = False
    awaiting_vectors: bool = False  # a "vectors" version fills gaps only once its load is committed

    @staticmethod
    def to_json(state: BackfillState | None) -> str | None:
        """``state`` as stored in a version's row (None when there is none)."""
        return None if state is None else json.dumps(dataclasses.asdict(state))

    @classmethod
    def from_json(cls, text: str | None) -> BackfillState | None:
        """A version row's stored state (None when it has none)."""
        if not text:
            return None
        raw = json.loads(text)
        return cls(**{**raw, "cursor": tuple(raw["cursor"]) if raw["cursor"] else None})


@dataclass(frozen=True)
class VersionRow:
    collection: str
    name: str
    spec: dict[str, Any]  # VersionSpec as JSON
    state: str
    created_seq: int
    applied_seq: int
    backfill: BackfillState | None
    created_at: float


@dataclass(frozen=True)
class TrafficRow:
    id: int
    weights: dict[str, int]
    reason: str
    created_at: float
    parent: int | None = None  # the assignment a rollback of this one restores


@dataclass(frozen=True)
class Event:
    id: int
    version: str | None
    event: str
    detail: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class RolloutRow:
    """A gated rollout: what was asked (``spec``) and where it stands (``state``), both as JSON."""

    collection: str
    id: int  # per collection, from 1
    spec: dict[str, Any]
    state: dict[str, Any]
    status: str  # running, completed, rolled_back, stopped
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class QuarantineRow:
    """A record a version's model rejected: its text as of ``seq`` gets no vector in that version
    until a later write of the record, a successful retry, or a skip (``skipped``: kept for the
    record, no longer holding the version back)."""

    kind: str
    id: str
    seq: int
    error: str
    at: float = 0.0
    skipped: bool = False


@dataclass(frozen=True)
class WriteResult:
    count: int  # records accepted
    changed: int  # of which actually changed something (identical re-upserts are not logged)
    seq: int  # collection head after the write


class RecordStore(Protocol):
    """Records, the change log and interactions. Callers may rely on:

    - ``write`` and ``add_interactions`` are one transaction each: every change gets the next seq
      and is durable when the call returns, or none is applied and an error is raised;
    - seqs are per collection, strictly increasing, never reused, and a reader never sees seq
      ``n + 1`` before seq ``n`` (no gaps appear later);
    - ``read_log`` returns changes with ``seq > after`` in seq order;
    - ``scan_records`` pages through live records with ``seq <= upto_seq`` in ``(kind, id)`` order;
    - ``wait_for_log`` returns True as soon as the head is past ``after``, and False after the
      timeout or when ``wake`` is called for the collection (so a waiter can be stopped); it may
      also return False early (another collection's commit may wake it), so callers loop;
    - every method is safe to call from several threads.
    """

    def write(
        self, collection: str, upserts: Sequence[NewRecord], deletes: Sequence[RecordKey]
    ) -> WriteResult: ...

    def add_interactions(self, collection: str, rows: Sequence[NewInteraction]) -> WriteResult:
        """One transaction: each interaction gets a seq and a log entry (op ``interact``, kind ``user``,
        id = the user); all its items must exist as records of kind ``item``, else none is stored."""
        ...

    def head_seq(self, collection: str) -> int:
        """The collection's last seq (0 when empty or unknown)."""
        ...

    def wait_for_log(self, collection: str, after: int, timeout_s: float) -> bool: ...

    def wake(self, collection: str) -> None:
        """Make every ``wait_for_log`` on the collection return now."""
        ...

    def get_records(self, collection: str, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]: ...

    def get_fields(self, collection: str, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The fields of those records of ``kind`` that exist, by id: a search's hits (no text,
        no vector read)."""
        ...

    def count_records(self, collection: str) -> dict[str, int]:
        """Live records per kind."""
        ...

    def record_ids(self, collection: str, kind: str, where: Filter) -> set[str]:
        """The ids of the live records of ``kind`` whose fields match ``where``."""
        ...

    def list_records(
        self, collection: str, kind: str, after: str | None, limit: int, where: Filter | None = None
    ) -> list[Record]:
        """Up to ``limit`` live records of ``kind`` matching ``where``, ids after ``after``, in id order."""
        ...

    def read_log(self, collection: str, after: int, limit: int) -> list[Change]: ...

    def prune_log(self, collection: str, upto_seq: int) -> int: ...

    def scan_records(
        self, collection: str, upto_seq: int, after: RecordKey | None, limit: int
    ) -> list[Record]: ...

    def seen_items(self, collection: str, user: str) -> set[str]: ...

    def user_histories(
        self, collection: str, users: Sequence[str]
    ) -> dict[str, list[tuple[str, float, float]]]:
        """Per user, their interactions as (item, weight, ts) in seq order."""
        ...

    def users_of_items(self, collection: str, items: Sequence[str]) -> set[str]: ...

    def interaction_users(self, collection: str) -> list[str]: ...

    def scan_interactions(self, collection: str, upto_seq: int) -> list[Interaction]:
        """Every interaction with seq <= ``upto_seq`` on an item that exists now, in seq order: the
        training data of a collaborative model."""
        ...

    def popular_items(self, collection: str, limit: int) -> list[str]:
        """Existing items by total interaction weight, highest first (ties by id)."""
        ...


class ControlStore(Protocol):
    """Collections, versions, traffic, events, rollouts and quarantined records. Callers may rely
    on: every write is durable when it returns; ``publish_applied`` is not (the saved position is
    ``save_version_progress``'s), it tells waiters how far a version has applied; and every method
    is safe to call from several threads."""

    def create_collection(self, name: str, first: VersionRow, weights: dict[str, int]) -> None: ...

    def list_collections(self) -> list[CollectionRow]: ...

    def get_collection(self, name: str) -> CollectionRow | None: ...

    def delete_collection(self, name: str) -> None: ...

    def add_version(self, row: VersionRow) -> None: ...

    def list_versions(self, collection: str) -> list[VersionRow]: ...

    def save_version_progress(
        self,
        collection: str,
        name: str,
        applied_seq: int,
        backfill: BackfillState | None,
        state: str | None = None,
    ) -> None: ...

    def delete_version(self, collection: str, name: str) -> None:
        """Drop the version, with its quarantined records."""
        ...

    def publish_applied(self, collection: str, version: str, seq: int) -> None:
        """``version`` has applied the log up to ``seq`` (in memory; durable once checkpointed)."""
        ...

    def wait_applied(self, collection: str, version: str, seq: int, timeout_s: float) -> bool:
        """True as soon as ``version`` has applied ``seq``; False after the timeout."""
        ...

    def set_traffic(
        self, collection: str, weights: dict[str, int], reason: str, parent: int | None
    ) -> TrafficRow: ...

    def traffic_row(self, collection: str, id: int) -> TrafficRow | None: ...

    def traffic_history(self, collection: str, limit: int = 100) -> list[TrafficRow]:
        """Newest first."""
        ...

    def add_event(self, collection: str, version: str | None, event: str, detail: dict[str, Any]) -> None: ...

    def events(self, collection: str, version: str | None = None, limit: int = 200) -> list[Event]:
        """Newest first."""
        ...

    def prune_events(self, collection: str, keep: int, before: float) -> int:
        """Drop the collection's events beyond the newest ``keep`` and those older than ``before``
        (a unix time); returns how many were dropped."""
        ...

    def add_rollout(
        self, collection: str, spec: dict[str, Any], state: dict[str, Any], status: str
    ) -> RolloutRow:
        """Store a new rollout with the next id of the collection (1, 2, ...)."""
        ...

    def save_rollout(self, collection: str, id: int, state: dict[str, Any], status: str) -> None:
        """Replace a rollout's state and status, durably."""
        ...

    def rollouts(self, collection: str, limit: int = 100) -> list[RolloutRow]:
        """Newest first."""
        ...

    def rollout(self, collection: str, id: int) -> RolloutRow | None: ...

    def quarantine(self, collection: str, version: str, rows: Sequence[QuarantineRow]) -> None:
        """Keep each row durably, replacing the row of the same ``(kind, id)`` in that version."""
        ...

    def quarantined(self, collection: str, version: str) -> list[QuarantineRow]:
        """The version's quarantined records, in ``(kind, id)`` order."""
        ...

    def unquarantine(self, collection: str, version: str, keys: Sequence[tuple[str, str, int]]) -> int:
        """For each ``(kind, id, seq)``, drop that record's row if its seq is at most ``seq`` (a row
        for a newer rejection stays); returns how many went."""
        ...

    def skip_quarantined(self, collection: str, version: str, keys: Sequence[RecordKey]) -> int:
        """Mark those records' rows skipped; returns how many were not skipped before."""
        ...


class ClusterStore(Protocol):
    """What the processes sharing one store coordinate through (see ``docs/architecture.md``,
    "Scale-out"). The embedded store serves one process (the data dir's lock): its leases are
    always granted and never lost, and its control changes are this process's own.

    Callers may rely on:
    - a lease (``try_lease``) is held by at most one process at a time; taking it bumps its epoch
      (the fencing token). A holder keeps it until ``release_lease``, its death (kill -9: its
      connection drops), or it stops renewing it for the store's lease TTL (a paused process);
    - while a worker runs inside ``_fence.fenced(name, epoch)``, every write it makes through the
      store (and through an index in the shared database) checks in its own transaction that the
      lease is still at ``epoch``, else raises ``LeaseLost`` and stores nothing;
    - ``wait_control`` returns once any process changed the control state (collections, versions
      and their state, traffic, rollouts, experiment settings) after the counter ``after``, or after
      the timeout; a notification lost across a reconnect is covered by callers reloading anyway
      at a slow poll;
    - ``published_applied`` is the latest position ``publish_applied`` announced for a version, by
      any process (None when none did).
    """

    shared: bool
    """True when several processes may share this store (PostgreSQL)."""

    def try_lease(self, name: str) -> int | None:
        """Take the cluster-wide lease ``name`` if it is free: its new epoch, else None."""
        ...

    def lease_epoch(self, name: str) -> int | None:
        """The epoch at which this process holds ``name``; None once it holds it no more."""
        ...

    def release_lease(self, name: str) -> None: ...

    def wait_control(self, after: int, timeout_s: float) -> int:
        """The control-change counter once it is past ``after`` (or after the timeout)."""
        ...

    def published_applied(self, collection: str, version: str) -> int | None: ...

    def together(self) -> AbstractContextManager[None]:
        """Every write the calling thread makes inside, through the store or an index in its
        database, commits as one transaction or none does (a batch's vectors and the position it
        brings the version to); a no-op where each write is durable on its own."""
        ...


class Store(RecordStore, ControlStore, ClusterStore, Protocol):
    """One backend's durable state: both halves of the seam, and the cluster's coordination."""

    embedded: bool
    """True when reads are local file reads that never wait on a network (SQLite)."""

    def compact(self) -> None:
        """Give back disk the backend no longer needs (SQLite: truncate the write-ahead log)."""
        ...

    def close(self) -> None: ...
