"""The experiment log's tables in their own SQLite file (``experiments.db`` in the data dir), for
the embedded store.

WAL with ``synchronous=NORMAL``: a committed transaction survives ``kill -9``, not necessarily a
power cut. Settings and experiment starts also fsync (``synchronous=FULL`` for that transaction).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..._sqlite import Connections
from .base import (
    Assignment,
    ExperimentRow,
    Feedback,
    FeedbackRow,
    Mode,
    RequestCounts,
    Settings,
    ShadowObservation,
    assignment_of,
    assignment_row,
    counts_of,
    dumps,
    feedback_of,
    feedback_row,
    loads,
    observation_row,
)

FILE_NAME = "experiments.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments(
  collection TEXT NOT NULL, id INTEGER NOT NULL, started_at REAL NOT NULL, control TEXT,
  PRIMARY KEY(collection, id));
CREATE TABLE IF NOT EXISTS settings(
  collection TEXT PRIMARY KEY, shadow TEXT, interleave TEXT, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments(
  request_id TEXT PRIMARY KEY, collection TEXT NOT NULL, experiment INTEGER NOT NULL, op TEXT NOT NULL,
  mode TEXT NOT NULL, version TEXT NOT NULL, pair TEXT, key TEXT, hits TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS assignments_by_experiment ON assignments(collection, experiment, mode);
CREATE INDEX IF NOT EXISTS assignments_by_time ON assignments(at);
CREATE TABLE IF NOT EXISTS feedback(
  request_id TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL, collection TEXT NOT NULL,
  value REAL, rank INTEGER NOT NULL, credit TEXT NOT NULL, at REAL NOT NULL,
  PRIMARY KEY(request_id, id, event)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback(at);
CREATE TABLE IF NOT EXISTS shadow(
  collection TEXT NOT NULL, experiment INTEGER NOT NULL, candidate TEXT NOT NULL, live TEXT NOT NULL,
  latency_ms REAL NOT NULL, live_latency_ms REAL NOT NULL, error TEXT, overlap REAL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS shadow_by_experiment ON shadow(collection, experiment, candidate);
CREATE INDEX IF NOT EXISTS shadow_by_time ON shadow(at);
"""


class SqliteTables:
    """``ExperimentTables`` in one SQLite file that this process owns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections = Connections(path, "NORMAL")
        self._db = self._connections.get
        self._tx = self._connections.transaction
        self._db().executescript(SCHEMA)

    def write(self, assignments: Sequence[Assignment], observations: Sequence[ShadowObservation]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO assignments VALUES (?,?,?,?,?,?,?,?,?,?)",
                [assignment_row(a) for a in assignments],
            )
            db.executemany(
                "INSERT INTO shadow VALUES (?,?,?,?,?,?,?,?,?)", [observation_row(o) for o in observations]
            )

    def find(self, collection: str, request_id: str) -> Assignment | None:
        row = (
            self._db()
            .execute(
                "SELECT request_id, collection, experiment, op, mode, version, pair, key, hits, at "
                "FROM assignments WHERE request_id=? AND collection=?",
                (request_id, collection),
            )
            .fetchone()
        )
        return None if row is None else assignment_of(row)

    def add_feedback(self, feedback: Feedback) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO feedback VALUES (?,?,?,?,?,?,?,?)", feedback_row(feedback)
            )
            return cursor.rowcount == 1

    # -- experiments and settings ---------------------------------------------------------------

    def current(self, collection: str) -> ExperimentRow | None:
        row = (
            self._db()
            .execute(
                "SELECT id, started_at, control FROM experiments WHERE collection=? ORDER BY id DESC LIMIT 1",
                (collection,),
            )
            .fetchone()
        )
        return None if row is None else ExperimentRow(*row)

    def first(self, collection: str, control: str | None) -> ExperimentRow:
        return self.current(collection) or self.start(collection, control)

    def start(self, collection: str, control: str | None) -> ExperimentRow:
        with self._tx(fsync=True) as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM experiments WHERE collection=?", (collection,)
            ).fetchone()
            row = ExperimentRow(last + 1, time.time(), control)
            db.execute(
                "INSERT INTO experiments VALUES (?,?,?,?)", (collection, row.id, row.started_at, control)
            )
        return row

    def settings(self, collection: str) -> Settings:
        row = (
            self._db()
            .execute("SELECT shadow, interleave FROM settings WHERE collection=?", (collection,))
            .fetchone()
        )
        return (None, None) if row is None else (loads(row[0]), loads(row[1]))

    def save_settings(
        self, collection: str, shadow: dict[str, Any] | None, interleave: dict[str, Any] | None
    ) -> None:
        with self._tx(fsync=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO settings VALUES (?,?,?,?)",
                (collection, dumps(shadow), dumps(interleave), time.time()),
            )

    # -- report queries -------------------------------------------------------------------------

    def request_counts(self, collection: str, experiment: int, modes: Sequence[Mode]) -> RequestCounts:
        rows = self._db().execute(
            "SELECT mode, version, pair, COUNT(*) FROM assignments WHERE collection=? AND experiment=? "
            f"AND mode IN ({','.join('?' * len(modes))}) GROUP BY mode, version, pair",
            (collection, experiment, *modes),
        )
        return counts_of(rows.fetchall())

    def feedback_rows(self, collection: str, experiment: int, mode: Mode) -> list[FeedbackRow]:
        rows = self._db().execute(
            "SELECT f.request_id, f.event, a.version, a.pair, f.credit, MIN(f.rank), COUNT(*) "
            "FROM assignments a JOIN feedback f ON f.request_id = a.request_id "
            "WHERE a.collection=? AND a.experiment=? AND a.mode=? "
            "GROUP BY f.request_id, f.event, f.credit",
            (collection, experiment, mode),
        )
        return feedback_of(rows.fetchall())

    def shadow_rows(self, collection: str, experiment: int) -> list[ShadowObservation]:
        rows = self._db().execute(
            "SELECT collection, experiment, candidate, live, latency_ms, live_latency_ms, error, overlap, at "
            "FROM shadow WHERE collection=? AND experiment=? ORDER BY at",
            (collection, experiment),
        )
        return [ShadowObservation(*row) for row in rows]

    # -- maintenance ----------------------------------------------------------------------------

    def prune(self, before: float) -> None:
        with self._tx() as db:
            for table in ("assignments", "feedback", "shadow"):
                db.execute(f"DELETE FROM {table} WHERE at < ?", (before,))

    def forget(self, collection: str) -> None:
        with self._tx(fsync=True) as db:
            for table in ("experiments", "settings", "assignments", "feedback", "shadow"):
                db.execute(f"DELETE FROM {table} WHERE collection=?", (collection,))

    def compact(self) -> None:
        """Truncate the write-ahead log (the rows are bounded by the retention)."""
        self._connections.truncate_wal()

    def close(self) -> None:
        self._connections.close()
