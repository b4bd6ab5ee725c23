"""The PostgreSQL store's control state (``ControlStore``): collections, versions, traffic,
events, rollouts and quarantined records.

A part of ``PostgresStore`` (a mixin over its pool), kept apart so that each module stays one noun.
Every write that changes control state (not events) sends ``es_control`` with the collection in
its transaction, so every process sharing the database learns of it (``wait_control``).
Per-collection ids (traffic assignments, rollouts) are taken under a transaction-scoped advisory
lock of that collection, so processes writing at once never pick the same one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..._errors import CollectionExists
from ..base import (
    BackfillState,
    CollectionRow,
    Event,
    QuarantineRow,
    RecordKey,
    RolloutRow,
    TrafficRow,
    VersionRow,
)
from .listener import CONTROL, Wakeups

Conn = Any  # a psycopg connection

_TABLES = (
    "es_records",
    "es_log",
    "es_versions",
    "es_applied",
    "es_traffic",
    "es_events",
    "es_interactions",
    "es_rollouts",
    "es_quarantine",
)
"""Every table with rows of a collection (column ``collection``), besides ``es_collections``."""


def _changed(conn: Conn, collection: str) -> None:
    """Tell every process, at commit, that the collection's control state changed."""
    conn.execute("SELECT pg_notify(%s, %s)", (CONTROL, collection))


def _next_id(conn: Conn, table: str, collection: str) -> int:
    """The collection's next id in ``table`` (1, 2, ...), reserved until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{table}/{collection}",))
    (last,) = conn.execute(
        f"SELECT COALESCE(MAX(id), 0) FROM {table} WHERE collection = %s", (collection,)
    ).fetchone()
    return int(last) + 1


def _rollout(row: Sequence[Any]) -> RolloutRow:
    collection, id, spec, state, status, created_at, updated_at = row
    return RolloutRow(collection, id, json.loads(spec), json.loads(state), status, created_at, updated_at)


_ROLLOUT = "SELECT collection, id, spec, state, status, created_at, updated_at FROM es_rollouts "
_TRAFFIC = "SELECT id, weights, reason, created_at, parent FROM es_traffic "


class PostgresControl:
    """``ControlStore`` over the store's connections."""

    _tx: Callable[[], AbstractContextManager[Conn]]
    _fetch: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
    _wakeups: Wakeups

    # -- collections ------------------------------------------------------------------------------

    def create_collection(self, name: str, first: VersionRow, weights: dict[str, int]) -> None:
        now = time.time()
        with self._tx() as conn:
            created = conn.execute(
                "INSERT INTO es_collections(name, head_seq, created_at) VALUES (%s, 0, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, now),
            ).fetchone()
            if created is None:
                raise CollectionExists(
                    f"collection {name!r} already exists; pick another name or delete it first",
                    collection=name,
                )
            self._insert_version(conn, first)
            self._insert_traffic(conn, name, weights, "created", now, None)
            _changed(conn, name)

    def list_collections(self) -> list[CollectionRow]:
        rows = self._fetch("SELECT name, head_seq, created_at FROM es_collections ORDER BY name", ())
        return [CollectionRow(*row) for row in rows]

    def get_collection(self, name: str) -> CollectionRow | None:
        rows = self._fetch("SELECT name, head_seq, created_at FROM es_collections WHERE name = %s", (name,))
        return CollectionRow(*rows[0]) if rows else None

    def delete_collection(self, name: str) -> None:
        with self._tx() as conn:
            # first the row that writers lock: a write in flight finishes first, a later one finds
            # no collection
            conn.execute("DELETE FROM es_collections WHERE name = %s", (name,))
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table} WHERE collection = %s", (name,))
            _changed(conn, name)
        self._wakeups.forget(name)

    # -- versions ---------------------------------------------------------------------------------

    @staticmethod
    def _insert_version(conn: Conn, row: VersionRow) -> None:
        conn.execute(
            "INSERT INTO es_versions(collection, name, spec, state, created_seq, applied_seq, backfill, "
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row.collection,
                row.name,
                json.dumps(row.spec),
                row.state,
                row.created_seq,
                row.applied_seq,
                BackfillState.to_json(row.backfill),
                row.created_at,
            ),
        )

    def add_version(self, row: VersionRow) -> None:
        with self._tx() as conn:
            self._insert_version(conn, row)
            _changed(conn, row.collection)

    def list_versions(self, collection: str) -> list[VersionRow]:
        rows = self._fetch(
            "SELECT collection, name, spec, state, created_seq, applied_seq, backfill, created_at "
            "FROM es_versions WHERE collection = %s ORDER BY created_at, name",
            (collection,),
        )
        return [
            VersionRow(c, n, json.loads(spec), state, cs, aps, BackfillState.from_json(bf), at)
            for c, n, spec, state, cs, aps, bf, at in rows
        ]

    def save_version_progress(
        self,
        collection: str,
        name: str,
        applied_seq: int,
        backfill: BackfillState | None,
        state: str | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE es_versions SET applied_seq = %s, backfill = %s, state = COALESCE(%s, state) "
                "WHERE collection = %s AND name = %s",
                (applied_seq, BackfillState.to_json(backfill), state, collection, name),
            )
            _changed(conn, collection)

    def delete_version(self, collection: str, name: str) -> None:
        with self._tx() as conn:
            for table in ("es_quarantine", "es_applied"):
                conn.execute(
                    f"DELETE FROM {table} WHERE collection = %s AND version = %s", (collection, name)
                )
            conn.execute("DELETE FROM es_versions WHERE collection = %s AND name = %s", (collection, name))
            _changed(conn, collection)
        self._wakeups.forget(collection)

    # -- traffic and history ----------------------------------------------------------------------

    @staticmethod
    def _insert_traffic(
        conn: Conn, collection: str, weights: dict[str, int], reason: str, now: float, parent: int | None
    ) -> TrafficRow:
        id = _next_id(conn, "es_traffic", collection)
        conn.execute(
            "INSERT INTO es_traffic(collection, id, weights, reason, created_at, parent) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (collection, id, json.dumps(weights), reason, now, parent),
        )
        return TrafficRow(id, weights, reason, now, parent)

    def set_traffic(
        self, collection: str, weights: dict[str, int], reason: str, parent: int | None
    ) -> TrafficRow:
        with self._tx() as conn:
            row = self._insert_traffic(conn, collection, weights, reason, time.time(), parent)
            _changed(conn, collection)
            return row

    def traffic_history(self, collection: str, limit: int = 100) -> list[TrafficRow]:
        rows = self._fetch(_TRAFFIC + "WHERE collection = %s ORDER BY id DESC LIMIT %s", (collection, limit))
        return [TrafficRow(i, json.loads(w), r, at, p) for i, w, r, at, p in rows]

    def traffic_row(self, collection: str, id: int) -> TrafficRow | None:
        rows = self._fetch(_TRAFFIC + "WHERE collection = %s AND id = %s", (collection, id))
        return TrafficRow(rows[0][0], json.loads(rows[0][1]), *rows[0][2:]) if rows else None

    def add_event(self, collection: str, version: str | None, event: str, detail: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO es_events(collection, version, event, detail, at) VALUES (%s, %s, %s, %s, %s)",
                (collection, version, event, json.dumps(detail), time.time()),
            )

    def events(self, collection: str, version: str | None = None, limit: int = 200) -> list[Event]:
        sql = "SELECT id, version, event, detail, at FROM es_events WHERE collection = %s"
        params: list[Any] = [collection]
        if version is not None:
            sql += " AND version = %s"
            params.append(version)
        rows = self._fetch(sql + " ORDER BY id DESC LIMIT %s", [*params, limit])
        return [Event(i, v, e, json.loads(d), at) for i, v, e, d, at in rows]

    def prune_events(self, collection: str, keep: int, before: float) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM es_events WHERE collection = %s AND (at < %s OR id <= (SELECT id FROM "
                "es_events WHERE collection = %s ORDER BY id DESC LIMIT 1 OFFSET %s))",
                (collection, before, collection, keep),
            )
            return int(cur.rowcount)

    # -- rollouts ---------------------------------------------------------------------------------

    def add_rollout(
        self, collection: str, spec: dict[str, Any], state: dict[str, Any], status: str
    ) -> RolloutRow:
        now = time.time()
        with self._tx() as conn:
            id = _next_id(conn, "es_rollouts", collection)
            conn.execute(
                "INSERT INTO es_rollouts(collection, id, spec, state, status, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (collection, id, json.dumps(spec), json.dumps(state), status, now, now),
            )
            _changed(conn, collection)
        return RolloutRow(collection, id, spec, state, status, now, now)

    def save_rollout(self, collection: str, id: int, state: dict[str, Any], status: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE es_rollouts SET state = %s, status = %s, updated_at = %s "
                "WHERE collection = %s AND id = %s",
                (json.dumps(state), status, time.time(), collection, id),
            )
            _changed(conn, collection)

    def rollouts(self, collection: str, limit: int = 100) -> list[RolloutRow]:
        rows = self._fetch(_ROLLOUT + "WHERE collection = %s ORDER BY id DESC LIMIT %s", (collection, limit))
        return [_rollout(row) for row in rows]

    def rollout(self, collection: str, id: int) -> RolloutRow | None:
        rows = self._fetch(_ROLLOUT + "WHERE collection = %s AND id = %s", (collection, id))
        return _rollout(rows[0]) if rows else None

    # -- quarantined records ----------------------------------------------------------------------

    def quarantine(self, collection: str, version: str, rows: Sequence[QuarantineRow]) -> None:
        if not rows:
            return
        now = time.time()
        latest = {(r.kind, r.id): r for r in rows}  # one row per record, the last given wins
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO es_quarantine(collection, version, kind, id, seq, error, at, skipped) "
                "SELECT %s, %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], "
                "%s::float8[], %s::boolean[]) ON CONFLICT (collection, version, kind, id) DO UPDATE SET "
                "seq = EXCLUDED.seq, error = EXCLUDED.error, at = EXCLUDED.at, skipped = EXCLUDED.skipped",
                (
                    collection,
                    version,
                    *(
                        list(column)
                        for column in zip(
                            *(
                                (r.kind, r.id, r.seq, r.error, r.at or now, r.skipped)
                                for r in latest.values()
                            ),
                            strict=True,
                        )
                    ),
                ),
            )
            _changed(conn, collection)

    def quarantined(self, collection: str, version: str) -> list[QuarantineRow]:
        rows = self._fetch(
            "SELECT kind, id, seq, error, at, skipped FROM es_quarantine "
            "WHERE collection = %s AND version = %s ORDER BY kind, id",
            (collection, version),
        )
        return [QuarantineRow(*row) for row in rows]

    def unquarantine(self, collection: str, version: str, keys: Sequence[tuple[str, str, int]]) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM es_quarantine q "
                "USING unnest(%s::text[], %s::text[], %s::bigint[]) AS k(kind, id, seq) "
                "WHERE q.collection = %s AND q.version = %s AND q.kind = k.kind AND q.id = k.id "
                "AND q.seq <= k.seq",
                (
                    [k for k, _, _ in keys],
                    [i for _, i, _ in keys],
                    [s for _, _, s in keys],
                    collection,
                    version,
                ),
            )
            _changed(conn, collection)
            return int(cur.rowcount)

    def skip_quarantined(self, collection: str, version: str, keys: Sequence[RecordKey]) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE es_quarantine SET skipped = true WHERE collection = %s AND version = %s "
                "AND (kind, id) IN (SELECT * FROM unnest(%s::text[], %s::text[])) AND NOT skipped",
                (collection, version, [k for k, _ in keys], [i for _, i in keys]),
            )
            _changed(conn, collection)
            return int(cur.rowcount)
