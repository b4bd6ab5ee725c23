"""The store seam: records, the change log and control state (collections, versions, traffic)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..specs import InteractionIn, RecordIn

Op = Literal["upsert", "delete", "interact"]
RecordKey = tuple[str, str]  # (kind, id)


@dataclass(frozen=True)
class Record:
    kind: str
    id: str
    text: str
    fields: dict[str, Any]
    seq: int


@dataclass(frozen=True)
class Change:
    """One entry of the change log."""

    seq: int
    op: Op
    kind: str
    id: str
    text: str | None = None


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
class WriteResult:
    count: int  # records accepted
    changed: int  # of which actually changed something (identical re-upserts are not logged)
    seq: int  # collection head after the write


class Store(Protocol):
    """Durable state. Callers may rely on:

    - ``write`` is one transaction: every change in it gets consecutive seqs and is durable when the
      call returns, or none is applied and an error is raised;
    - seqs are per collection, strictly increasing, never reused;
    - ``read_log`` returns changes with ``seq > after`` in seq order;
    - ``scan_records`` pages through live records with ``seq <= upto_seq`` in ``(kind, id)`` order;
    - every method is safe to call from several threads.
    """

    def create_collection(self, name: str, first: VersionRow, weights: dict[str, int]) -> None: ...

    def list_collections(self) -> list[CollectionRow]: ...

    def get_collection(self, name: str) -> CollectionRow | None: ...

    def delete_collection(self, name: str) -> None: ...

    def write(
        self, collection: str, upserts: Sequence[RecordIn], deletes: Sequence[RecordKey]
    ) -> WriteResult: ...

    def add_interactions(self, collection: str, rows: Sequence[InteractionIn]) -> WriteResult:
        """One transaction: each interaction gets a seq and a log entry (op ``interact``, kind ``user``,
        id = the user); all its items must exist as records of kind ``item``, else none is stored."""
        ...

    def seen_items(self, collection: str, user: str) -> set[str]: ...

    def user_histories(
        self, collection: str, users: Sequence[str]
    ) -> dict[str, list[tuple[str, float, float]]]:
        """Per user, their interactions as (item, weight, ts) in seq order."""
        ...

    def users_of_items(self, collection: str, items: Sequence[str]) -> set[str]: ...

    def interaction_users(self, collection: str) -> list[str]: ...

    def scan_interactions(self, collection: str, upto_seq: int) -> list[tuple[str, str, float, float]]:
        """Every interaction with seq <= ``upto_seq`` on an item that exists now, as
        ``(user, item, weight, ts)`` in seq order: the training data of a collaborative model."""
        ...

    def popular_items(self, collection: str, limit: int) -> list[str]:
        """Existing items by total interaction weight, highest first (ties by id)."""
        ...

    def get_records(self, collection: str, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]: ...

    def count_records(self, collection: str) -> dict[str, int]:
        """Live records per kind."""
        ...

    def read_log(self, collection: str, after: int, limit: int) -> list[Change]: ...

    def prune_log(self, collection: str, upto_seq: int) -> int: ...

    def scan_records(
        self, collection: str, upto_seq: int, after: RecordKey | None, limit: int
    ) -> list[Record]: ...

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

    def delete_version(self, collection: str, name: str) -> None: ...

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

    def close(self) -> None: ...
