"""The embedded store: one SQLite database in WAL mode (``sqlite``, the default).

Limits: one process writes (SQLite has one writer at a time; embedswitch serialises its writes in
process), and waiters are woken by in-process conditions, so one process serves a data dir.
Commits are fsynced (``synchronous=FULL``), so an acknowledged write survives ``kill -9`` and power
loss. Beyond one API process, or tens of millions of records, use a server store behind the same
seam.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from .. import _json
from .._errors import CollectionExists, CollectionNotFound, RecordNotFound
from .._sqlite import Connections
from ..filters import Filter
from ._filtered import ids_query, page_query
from ._single_process import SingleProcess
from ._sqlite_interactions import SqliteInteractions
from ._sqlite_quarantine import QUARANTINE_SCHEMA, SqliteQuarantine
from .base import (
    BackfillState,
    Change,
    CollectionRow,
    Event,
    NewRecord,
    Record,
    RecordKey,
    RolloutRow,
    TrafficRow,
    VersionRow,
    WriteResult,
)

FILE_NAME = "embedswitch.db"

# records and log rows carry vectors (kilobytes each), so they are rowid tables, as SQLite advises
# for rows over about a twentieth of a page: a WITHOUT ROWID b-tree of them wrote 1.7x slower and
# read a search's fields 4.8x slower here. Data dirs made before keep theirs; both work alike.
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections(
  name TEXT PRIMARY KEY, head_seq INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS records(
  collection TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, text TEXT NOT NULL,
  fields TEXT NOT NULL, seq INTEGER NOT NULL, vector BLOB,
  PRIMARY KEY(collection, kind, id));
CREATE TABLE IF NOT EXISTS log(
  collection TEXT NOT NULL, seq INTEGER NOT NULL, op TEXT NOT NULL, kind TEXT NOT NULL,
  id TEXT NOT NULL, text TEXT, vector BLOB, PRIMARY KEY(collection, seq));
CREATE TABLE IF NOT EXISTS versions(
  collection TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
  created_seq INTEGER NOT NULL, applied_seq INTEGER NOT NULL, backfill TEXT,
  created_at REAL NOT NULL, PRIMARY KEY(collection, name));
CREATE TABLE IF NOT EXISTS traffic(
  collection TEXT NOT NULL, id INTEGER NOT NULL, weights TEXT NOT NULL, reason TEXT NOT NULL,
  created_at REAL NOT NULL, parent INTEGER, PRIMARY KEY(collection, id));
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, version TEXT, event TEXT NOT NULL,
  detail TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_collection ON events(collection, id);
CREATE TABLE IF NOT EXISTS interactions(
  collection TEXT NOT NULL, seq INTEGER NOT NULL, user TEXT NOT NULL, item TEXT NOT NULL,
  weight REAL NOT NULL, ts REAL NOT NULL, PRIMARY KEY(collection, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS interactions_by_user ON interactions(collection, user);
CREATE INDEX IF NOT EXISTS interactions_by_item ON interactions(collection, item);
CREATE TABLE IF NOT EXISTS rollouts(
  collection TEXT NOT NULL, id INTEGER NOT NULL, spec TEXT NOT NULL, state TEXT NOT NULL,
  status TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
  PRIMARY KEY(collection, id));
"""


class SqliteConfig(BaseModel):
    """``sqlite`` (the data dir's ``embedswitch.db``) or ``sqlite:///absolute/path.db``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path


def _add_vector_columns(db: sqlite3.Connection) -> None:
    """Give a store written before records could bring vectors its ``vector`` columns."""
    for table in ("records", "log"):
        if "vector" not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN vector BLOB")


class SqliteStore(SqliteInteractions, SqliteQuarantine, SingleProcess):
    """The Store seam on one SQLite file (see the module docstring for its limits)."""

    embedded = True

    def __init__(self, path: Path) -> None:
        SingleProcess.__init__(self)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = Connections(path, "FULL")
        self._db = self._connections.get
        self._tx = self._connections.transaction
        with self._connections.write_lock:
            self._db().executescript(SCHEMA + QUARANTINE_SCHEMA)
            _add_vector_columns(self._db())
        self._changed = threading.Condition()  # notified after every commit that moves a head
        self._applied: dict[tuple[str, str], int] = {}
        self._applied_changed = threading.Condition()

    @classmethod
    def from_uri(cls, uri: str, data_dir: Path) -> SqliteStore:
        """``sqlite`` alone keeps the store in ``data_dir``; ``sqlite:///path`` names the file."""
        rest = uri.removeprefix("sqlite").removeprefix("://")
        config = SqliteConfig(path=Path(rest) if rest else data_dir / FILE_NAME)
        return cls(config.path)

    # -- connections -------------------------------------------------------------------------

    def compact(self) -> None:
        self._connections.truncate_wal()

    def close(self) -> None:
        self._closing.set()
        self._connections.close()

    # -- waiting ------------------------------------------------------------------------------

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def head_seq(self, collection: str) -> int:
        row = self.get_collection(collection)
        return row.head_seq if row else 0

    def wait_for_log(self, collection: str, after: int, timeout_s: float) -> bool:
        with self._changed:
            if self.head_seq(collection) > after:
                return True
            self._changed.wait(timeout_s)  # any commit, or a wake, ends the wait
        return self.head_seq(collection) > after

    def wake(self, collection: str) -> None:
        self._notify()

    def publish_applied(self, collection: str, version: str, seq: int) -> None:
        with self._applied_changed:
            self._applied[(collection, version)] = seq
            self._applied_changed.notify_all()

    def published_applied(self, collection: str, version: str) -> int | None:
        with self._applied_changed:
            return self._applied.get((collection, version))

    def wait_applied(self, collection: str, version: str, seq: int, timeout_s: float) -> bool:
        with self._applied_changed:
            return self._applied_changed.wait_for(
                lambda: self._applied.get((collection, version), -1) >= seq, timeout=timeout_s
            )

    # -- collections -------------------------------------------------------------------------

    def create_collection(self, name: str, first: VersionRow, weights: dict[str, int]) -> None:
        now = time.time()
        with self._tx() as db:
            if db.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone():
                raise CollectionExists(
                    f"collection {name!r} already exists; pick another name or delete it first",
                    collection=name,
                )
            db.execute("INSERT INTO collections(name, head_seq, created_at) VALUES (?, 0, ?)", (name, now))
            self._insert_version(db, first)
            self._insert_traffic(db, name, weights, "created", now)

    def list_collections(self) -> list[CollectionRow]:
        rows = self._db().execute("SELECT name, head_seq, created_at FROM collections ORDER BY name")
        return [CollectionRow(*row) for row in rows]

    def get_collection(self, name: str) -> CollectionRow | None:
        row = (
            self._db()
            .execute("SELECT name, head_seq, created_at FROM collections WHERE name=?", (name,))
            .fetchone()
        )
        return CollectionRow(*row) if row else None

    def delete_collection(self, name: str) -> None:
        with self._tx() as db:
            for table in ("records", "log", "versions", "traffic", "events", "interactions", "rollouts"):
                db.execute(f"DELETE FROM {table} WHERE collection=?", (name,))
            db.execute("DELETE FROM quarantine WHERE collection=?", (name,))
            db.execute("DELETE FROM collections WHERE name=?", (name,))
        with self._applied_changed:
            for key in [key for key in self._applied if key[0] == name]:
                del self._applied[key]

    # -- records and the change log ----------------------------------------------------------

    def write(
        self, collection: str, upserts: Sequence[NewRecord], deletes: Sequence[RecordKey]
    ) -> WriteResult:
        with self._tx() as db:
            row = db.execute("SELECT head_seq FROM collections WHERE name=?", (collection,)).fetchone()
            if row is None:
                raise CollectionNotFound(collection)
            seq = row[0]
            changed = 0
            for rec in upserts:
                fields = json.dumps(dict(rec.fields), separators=(",", ":"), sort_keys=True)
                text = rec.text or ""
                vector = None if rec.vector is None else np.asarray(rec.vector, np.float32).tobytes()
                old = db.execute(
                    "SELECT text, fields, vector FROM records WHERE collection=? AND kind=? AND id=?",
                    (collection, rec.kind, rec.id),
                ).fetchone()
                if old == (text, fields, vector):
                    continue
                seq += 1
                changed += 1
                db.execute(
                    "INSERT INTO log(collection, seq, op, kind, id, text, vector) VALUES (?,?,?,?,?,?,?)",
                    (collection, seq, "upsert", rec.kind, rec.id, text, vector),
                )
                db.execute(
                    "INSERT OR REPLACE INTO records(collection, kind, id, text, fields, seq, vector) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (collection, rec.kind, rec.id, text, fields, seq, vector),
                )
            for kind, rid in deletes:
                gone = db.execute(
                    "DELETE FROM records WHERE collection=? AND kind=? AND id=?", (collection, kind, rid)
                ).rowcount
                if not gone:
                    raise RecordNotFound(
                        f"collection {collection!r} has no {kind!r} record {rid!r}; nothing was deleted",
                        collection=collection,
                        kind=kind,
                        id=rid,
                    )
                seq += 1
                changed += 1
                db.execute(
                    "INSERT INTO log(collection, seq, op, kind, id, text) VALUES (?,?,?,?,?,NULL)",
                    (collection, seq, "delete", kind, rid),
                )
            db.execute("UPDATE collections SET head_seq=? WHERE name=?", (seq, collection))
        if changed:
            self._notify()
        return WriteResult(count=len(upserts) + len(deletes), changed=changed, seq=seq)

    def get_records(self, collection: str, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        by_kind: dict[str, list[str]] = {}
        for kind, rid in keys:
            by_kind.setdefault(kind, []).append(rid)
        out: dict[RecordKey, Record] = {}
        db = self._db()
        for kind, ids in by_kind.items():
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for rid, text, fields, seq, vector in db.execute(
                    "SELECT id, text, fields, seq, vector FROM records "
                    f"WHERE collection=? AND kind=? AND id IN ({marks})",
                    [collection, kind, *chunk],
                ):
                    out[(kind, rid)] = Record(kind, rid, text, _json.loads(fields), seq, vector)
        return out

    def get_fields(self, collection: str, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        db = self._db()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for rid, fields in db.execute(
                f"SELECT id, fields FROM records WHERE collection=? AND kind=? AND id IN ({marks})",
                [collection, kind, *chunk],
            ):
                out[rid] = _json.loads(fields)
        return out

    def count_records(self, collection: str) -> dict[str, int]:
        rows = self._db().execute(
            "SELECT kind, COUNT(*) FROM records WHERE collection=? GROUP BY kind", (collection,)
        )
        return dict(rows.fetchall())

    def record_ids(self, collection: str, kind: str, where: Filter) -> set[str]:
        return {rid for (rid,) in self._db().execute(*ids_query("sqlite", collection, kind, where))}

    def list_records(
        self, collection: str, kind: str, after: str | None, limit: int, where: Filter | None = None
    ) -> list[Record]:
        rows = self._db().execute(*page_query("sqlite", collection, kind, after, limit, where))
        return [Record(k, i, t, _json.loads(f), s, v) for k, i, t, f, s, v in rows]

    def read_log(self, collection: str, after: int, limit: int) -> list[Change]:
        rows = self._db().execute(
            "SELECT seq,op,kind,id,text,vector FROM log WHERE collection=? AND seq>? ORDER BY seq LIMIT ?",
            (collection, after, limit),
        )
        return [Change(*row) for row in rows]

    def prune_log(self, collection: str, upto_seq: int) -> int:
        with self._tx() as db:
            return db.execute(
                "DELETE FROM log WHERE collection=? AND seq<=?", (collection, upto_seq)
            ).rowcount

    def scan_records(
        self, collection: str, upto_seq: int, after: RecordKey | None, limit: int
    ) -> list[Record]:
        kind, rid = after if after else ("", "")
        rows = self._db().execute(
            "SELECT kind, id, text, fields, seq, vector FROM records WHERE collection=? "
            "AND (kind, id) > (?, ?) "
            "AND seq<=? ORDER BY kind, id LIMIT ?",
            (collection, kind, rid, upto_seq, limit),
        )
        return [Record(k, i, t, _json.loads(f), s, v) for k, i, t, f, s, v in rows]

    # -- versions ----------------------------------------------------------------------------

    @staticmethod
    def _insert_version(db: sqlite3.Connection, row: VersionRow) -> None:
        db.execute(
            "INSERT INTO versions(collection, name, spec, state, created_seq, applied_seq, backfill, "
            "created_at) VALUES (?,?,?,?,?,?,?,?)",
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
        with self._tx() as db:
            self._insert_version(db, row)

    def list_versions(self, collection: str) -> list[VersionRow]:
        rows = self._db().execute(
            "SELECT collection, name, spec, state, created_seq, applied_seq, backfill, created_at "
            "FROM versions WHERE collection=? ORDER BY created_at, name",
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
        with self._tx() as db:
            db.execute(
                "UPDATE versions SET applied_seq=?, backfill=?, state=COALESCE(?, state) "
                "WHERE collection=? AND name=?",
                (applied_seq, BackfillState.to_json(backfill), state, collection, name),
            )

    def delete_version(self, collection: str, name: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM versions WHERE collection=? AND name=?", (collection, name))
            db.execute("DELETE FROM quarantine WHERE collection=? AND version=?", (collection, name))
        with self._applied_changed:
            self._applied.pop((collection, name), None)

    # -- traffic and history -----------------------------------------------------------------

    @staticmethod
    def _insert_traffic(
        db: sqlite3.Connection,
        collection: str,
        weights: dict[str, int],
        reason: str,
        now: float,
        parent: int | None = None,
    ) -> TrafficRow:
        (last,) = db.execute(
            "SELECT COALESCE(MAX(id), 0) FROM traffic WHERE collection=?", (collection,)
        ).fetchone()
        db.execute(
            "INSERT INTO traffic(collection, id, weights, reason, created_at, parent) VALUES (?,?,?,?,?,?)",
            (collection, last + 1, json.dumps(weights), reason, now, parent),
        )
        return TrafficRow(last + 1, weights, reason, now, parent)

    def set_traffic(
        self, collection: str, weights: dict[str, int], reason: str, parent: int | None
    ) -> TrafficRow:
        with self._tx() as db:
            return self._insert_traffic(db, collection, weights, reason, time.time(), parent)

    def traffic_history(self, collection: str, limit: int = 100) -> list[TrafficRow]:
        rows = self._db().execute(
            "SELECT id, weights, reason, created_at, parent FROM traffic WHERE collection=? "
            "ORDER BY id DESC LIMIT ?",
            (collection, limit),
        )
        return [TrafficRow(i, json.loads(w), r, at, p) for i, w, r, at, p in rows]

    def traffic_row(self, collection: str, id: int) -> TrafficRow | None:
        row = (
            self._db()
            .execute(
                "SELECT id, weights, reason, created_at, parent FROM traffic WHERE collection=? AND id=?",
                (collection, id),
            )
            .fetchone()
        )
        return TrafficRow(row[0], json.loads(row[1]), row[2], row[3], row[4]) if row else None

    def add_event(self, collection: str, version: str | None, event: str, detail: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events(collection, version, event, detail, at) VALUES (?,?,?,?,?)",
                (collection, version, event, json.dumps(detail), time.time()),
            )

    def events(self, collection: str, version: str | None = None, limit: int = 200) -> list[Event]:
        sql = "SELECT id, version, event, detail, at FROM events WHERE collection=?"
        params: list[Any] = [collection]
        if version is not None:
            sql += " AND version=?"
            params.append(version)
        rows = self._db().execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [Event(i, v, e, json.loads(d), at) for i, v, e, d, at in rows]

    # -- rollouts ----------------------------------------------------------------------------

    def add_rollout(
        self, collection: str, spec: dict[str, Any], state: dict[str, Any], status: str
    ) -> RolloutRow:
        now = time.time()
        with self._tx() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM rollouts WHERE collection=?", (collection,)
            ).fetchone()
            db.execute(
                "INSERT INTO rollouts(collection, id, spec, state, status, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (collection, last + 1, json.dumps(spec), json.dumps(state), status, now, now),
            )
        return RolloutRow(collection, last + 1, spec, state, status, now, now)

    def save_rollout(self, collection: str, id: int, state: dict[str, Any], status: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE rollouts SET state=?, status=?, updated_at=? WHERE collection=? AND id=?",
                (json.dumps(state), status, time.time(), collection, id),
            )

    def prune_events(self, collection: str, keep: int, before: float) -> int:
        with self._tx() as db:
            return db.execute(
                "DELETE FROM events WHERE collection=? AND (at<? OR id<=(SELECT id FROM events "
                "WHERE collection=? ORDER BY id DESC LIMIT 1 OFFSET ?))",
                (collection, before, collection, keep),
            ).rowcount

    def rollouts(self, collection: str, limit: int = 100) -> list[RolloutRow]:
        rows = self._db().execute(
            "SELECT collection, id, spec, state, status, created_at, updated_at FROM rollouts "
            "WHERE collection=? ORDER BY id DESC LIMIT ?",
            (collection, limit),
        )
        return [_rollout(row) for row in rows]

    def rollout(self, collection: str, id: int) -> RolloutRow | None:
        row = (
            self._db()
            .execute(
                "SELECT collection, id, spec, state, status, created_at, updated_at FROM rollouts "
                "WHERE collection=? AND id=?",
                (collection, id),
            )
            .fetchone()
        )
        return _rollout(row) if row else None


def _rollout(row: tuple[Any, ...]) -> RolloutRow:
    collection, id, spec, state, status, created_at, updated_at = row
    return RolloutRow(collection, id, json.loads(spec), json.loads(state), status, created_at, updated_at)
