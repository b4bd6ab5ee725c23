"""The experiment log's tables in the shared store's PostgreSQL database (``es_exp_*``), so that
every process sharing the store records into, and reports from, one log.

Commits follow the database's durability (``synchronous_commit``); there is nothing to compact
here (autovacuum gives back the space of pruned rows).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..._pg import Host, create_tables
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

SCHEMA = """
CREATE TABLE IF NOT EXISTS es_exp_experiments(
  collection TEXT NOT NULL, id INTEGER NOT NULL, started_at DOUBLE PRECISION NOT NULL, control TEXT,
  PRIMARY KEY(collection, id));
CREATE TABLE IF NOT EXISTS es_exp_settings(
  collection TEXT PRIMARY KEY, shadow TEXT, interleave TEXT, updated_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS es_exp_assignments(
  request_id TEXT PRIMARY KEY, collection TEXT NOT NULL, experiment INTEGER NOT NULL, op TEXT NOT NULL,
  mode TEXT NOT NULL, version TEXT NOT NULL, pair TEXT, key TEXT, hits TEXT NOT NULL,
  at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS es_exp_assignments_by_experiment
  ON es_exp_assignments(collection, experiment, mode);
CREATE INDEX IF NOT EXISTS es_exp_assignments_by_time ON es_exp_assignments(at);
CREATE TABLE IF NOT EXISTS es_exp_feedback(
  request_id TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL, collection TEXT NOT NULL,
  value DOUBLE PRECISION, rank INTEGER NOT NULL, credit TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY(request_id, id, event));
CREATE INDEX IF NOT EXISTS es_exp_feedback_by_collection ON es_exp_feedback(collection);
CREATE INDEX IF NOT EXISTS es_exp_feedback_by_time ON es_exp_feedback(at);
CREATE TABLE IF NOT EXISTS es_exp_shadow(
  collection TEXT NOT NULL, experiment INTEGER NOT NULL, candidate TEXT NOT NULL, live TEXT NOT NULL,
  latency_ms DOUBLE PRECISION NOT NULL, live_latency_ms DOUBLE PRECISION NOT NULL, error TEXT,
  overlap DOUBLE PRECISION, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS es_exp_shadow_by_experiment
  ON es_exp_shadow(collection, experiment, candidate);
CREATE INDEX IF NOT EXISTS es_exp_shadow_by_time ON es_exp_shadow(at);
"""
_ASSIGNMENT = "request_id, collection, experiment, op, mode, version, pair, key, hits, at"
_SHADOW = "collection, experiment, candidate, live, latency_ms, live_latency_ms, error, overlap, at"
_EXPERIMENTS_LOCK = "embedswitch: experiments of "  # + collection: numbering its experiments


class PostgresTables:
    """``ExperimentTables`` in a database that several processes share."""

    def __init__(self, host: Host) -> None:
        self._host = host
        create_tables(host, SCHEMA)

    def write(self, assignments: Sequence[Assignment], observations: Sequence[ShadowObservation]) -> None:
        with self._host.connection() as conn, conn.cursor() as cur:
            if assignments:
                cur.executemany(
                    f"INSERT INTO es_exp_assignments({_ASSIGNMENT}) VALUES ({_marks(10)}) "
                    "ON CONFLICT (request_id) DO NOTHING",
                    [assignment_row(a) for a in assignments],
                )
            if observations:
                with cur.copy(f"COPY es_exp_shadow({_SHADOW}) FROM STDIN") as copy:
                    for observation in observations:
                        copy.write_row(observation_row(observation))

    def find(self, collection: str, request_id: str) -> Assignment | None:
        with self._host.connection() as conn:
            row = conn.execute(
                f"SELECT {_ASSIGNMENT} FROM es_exp_assignments WHERE request_id=%s AND collection=%s",
                (request_id, collection),
            ).fetchone()
        return None if row is None else assignment_of(row)

    def add_feedback(self, feedback: Feedback) -> bool:
        with self._host.connection() as conn:
            cursor = conn.execute(
                "INSERT INTO es_exp_feedback(request_id, id, event, collection, value, rank, credit, at) "
                f"VALUES ({_marks(8)}) ON CONFLICT DO NOTHING",
                feedback_row(feedback),
            )
            return bool(cursor.rowcount == 1)

    # -- experiments and settings ---------------------------------------------------------------

    def current(self, collection: str) -> ExperimentRow | None:
        with self._host.connection() as conn:
            return _latest(conn, collection)

    def first(self, collection: str, control: str | None) -> ExperimentRow:
        with self._host.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_EXPERIMENTS_LOCK + collection,))
            return _latest(conn, collection) or _insert(conn, collection, 1, control)

    def start(self, collection: str, control: str | None) -> ExperimentRow:
        with self._host.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_EXPERIMENTS_LOCK + collection,))
            latest = _latest(conn, collection)
            return _insert(conn, collection, (latest.id if latest else 0) + 1, control)

    def settings(self, collection: str) -> Settings:
        with self._host.connection() as conn:
            row = conn.execute(
                "SELECT shadow, interleave FROM es_exp_settings WHERE collection=%s", (collection,)
            ).fetchone()
        return (None, None) if row is None else (loads(row[0]), loads(row[1]))

    def save_settings(
        self, collection: str, shadow: dict[str, Any] | None, interleave: dict[str, Any] | None
    ) -> None:
        with self._host.connection() as conn:
            conn.execute(
                "INSERT INTO es_exp_settings(collection, shadow, interleave, updated_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (collection) DO UPDATE SET "
                "shadow=excluded.shadow, interleave=excluded.interleave, updated_at=excluded.updated_at",
                (collection, dumps(shadow), dumps(interleave), time.time()),
            )

    # -- report queries -------------------------------------------------------------------------

    def request_counts(self, collection: str, experiment: int, modes: Sequence[Mode]) -> RequestCounts:
        with self._host.connection() as conn:
            rows = conn.execute(
                "SELECT mode, version, pair, COUNT(*) FROM es_exp_assignments "
                "WHERE collection=%s AND experiment=%s AND mode = ANY(%s) GROUP BY mode, version, pair",
                (collection, experiment, list(modes)),
            ).fetchall()
        return counts_of(rows)

    def feedback_rows(self, collection: str, experiment: int, mode: Mode) -> list[FeedbackRow]:
        with self._host.connection() as conn:
            rows = conn.execute(
                "SELECT f.request_id, f.event, a.version, a.pair, f.credit, MIN(f.rank), COUNT(*) "
                "FROM es_exp_assignments a JOIN es_exp_feedback f ON f.request_id = a.request_id "
                "WHERE a.collection=%s AND a.experiment=%s AND a.mode=%s "
                "GROUP BY f.request_id, f.event, f.credit, a.version, a.pair",
                (collection, experiment, mode),
            ).fetchall()
        return feedback_of(rows)

    def shadow_rows(self, collection: str, experiment: int) -> list[ShadowObservation]:
        with self._host.connection() as conn:
            rows = conn.execute(
                f"SELECT {_SHADOW} FROM es_exp_shadow WHERE collection=%s AND experiment=%s ORDER BY at",
                (collection, experiment),
            ).fetchall()
        return [ShadowObservation(*row) for row in rows]

    # -- maintenance ----------------------------------------------------------------------------

    def prune(self, before: float) -> None:
        with self._host.connection() as conn:
            for table in ("es_exp_assignments", "es_exp_feedback", "es_exp_shadow"):
                conn.execute(f"DELETE FROM {table} WHERE at < %s", (before,))

    def forget(self, collection: str) -> None:
        with self._host.connection() as conn:
            for table in ("experiments", "settings", "assignments", "feedback", "shadow"):
                conn.execute(f"DELETE FROM es_exp_{table} WHERE collection=%s", (collection,))

    def compact(self) -> None:
        """Nothing to do: autovacuum reuses the space of pruned rows."""

    def close(self) -> None:
        """Nothing to do: the connections are the store's."""


def _latest(conn: Any, collection: str) -> ExperimentRow | None:
    row = conn.execute(
        "SELECT id, started_at, control FROM es_exp_experiments WHERE collection=%s ORDER BY id DESC LIMIT 1",
        (collection,),
    ).fetchone()
    return None if row is None else ExperimentRow(*row)


def _insert(conn: Any, collection: str, id: int, control: str | None) -> ExperimentRow:
    row = ExperimentRow(id, time.time(), control)
    conn.execute(
        "INSERT INTO es_exp_experiments(collection, id, started_at, control) VALUES (%s, %s, %s, %s)",
        (collection, row.id, row.started_at, control),
    )
    return row


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)
