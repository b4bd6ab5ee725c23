"""The experiments' own SQLite file (``experiments.db`` in the data dir): request assignments,
feedback, shadow observations, experiment starts and the shadow/interleave settings.

The search path never waits for a disk write: ``record`` and ``observe`` put rows into a bounded
in-memory buffer that a background thread writes every ``FLUSH_INTERVAL_S`` in one transaction
(WAL, ``synchronous=NORMAL``: a committed transaction survives ``kill -9``, not necessarily a power
cut). So the assignments of the last flush interval (a quarter of a second) are lost on ``kill -9``,
and feedback naming them then gets a 404. Feedback, settings and experiment starts are written
synchronously; settings and starts also fsync (``synchronous=FULL`` for that transaction).

When the buffer is full (``MAX_PENDING`` rows, i.e. the disk can't keep up), new rows are dropped
and counted. Rows older than the retention are pruned by the same thread every ``PRUNE_INTERVAL_S``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .._sqlite import Connections

log = logging.getLogger("embedswitch")

FLUSH_INTERVAL_S = 0.25
MAX_PENDING = 100_000
PRUNE_INTERVAL_S = 600.0
DEFAULT_RETENTION_S = 30 * 86_400.0

Mode = Literal["single", "interleaved"]
Op = Literal["search", "recommend"]

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


@dataclass(frozen=True)
class Assignment:
    """Which version(s) answered a routed request, and what it showed."""

    request_id: str
    collection: str
    experiment: int
    op: Op
    mode: Mode
    version: str  # the answering version; for an interleaved answer, the first of ``pair``
    pair: tuple[str, str] | None  # the two interleaved versions
    key: str | None
    hits: tuple[tuple[str, str], ...]  # (id, contributing version), by rank
    at: float


@dataclass(frozen=True)
class Feedback:
    request_id: str
    collection: str
    id: str
    event: str
    value: float | None
    rank: int  # 1-based position of the hit in the response
    credit: str  # the version that contributed the hit
    at: float


@dataclass(frozen=True)
class ShadowObservation:
    collection: str
    experiment: int
    candidate: str
    live: str
    latency_ms: float
    live_latency_ms: float
    error: str | None
    overlap: float | None  # Jaccard of the top-10 ids with the live answer's; None on error
    at: float


@dataclass(frozen=True)
class ExperimentRow:
    id: int
    started_at: float
    control: str | None


@dataclass(frozen=True)
class RequestCounts:
    single: dict[str, int]  # routed requests per answering version
    interleaved: dict[tuple[str, str], int]  # interleaved impressions per pair


@dataclass
class FeedbackRow:
    """Per (request, event): the version, the best rank fed back and the credited versions' counts."""

    request_id: str
    event: str
    version: str
    pair: tuple[str, str] | None
    best_rank: int
    credits: dict[str, int]


class ExperimentLog:
    """The experiments' storage; every method is safe to call from several threads."""

    def __init__(self, path: Path, retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.path = path
        self.retention_s = retention_s
        self.dropped = 0  # rows not recorded because the buffer was full
        self._connections = Connections(path, "NORMAL")
        self._db = self._connections.get
        self._tx = self._connections.transaction
        self._write_lock = self._connections.write_lock
        self._pending_lock = threading.Lock()
        self._pending: dict[str, Assignment] = {}
        self._pending_shadow: list[ShadowObservation] = []
        self._db().executescript(SCHEMA)
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="experiment-log", daemon=True)
        self._flusher.start()

    # -- connections --------------------------------------------------------------------------

    # -- the buffered hot path ------------------------------------------------------------------

    def record(self, assignment: Assignment) -> bool:
        """Buffer an assignment (no disk I/O); False if the buffer is full and it was dropped."""
        with self._pending_lock:
            if len(self._pending) + len(self._pending_shadow) >= MAX_PENDING:
                self.dropped += 1
                return False
            self._pending[assignment.request_id] = assignment
            return True

    def observe(self, observation: ShadowObservation) -> bool:
        """Buffer a shadow observation; False if the buffer is full and it was dropped."""
        with self._pending_lock:
            if len(self._pending) + len(self._pending_shadow) >= MAX_PENDING:
                self.dropped += 1
                return False
            self._pending_shadow.append(observation)
            return True

    def flush(self) -> None:
        """Write everything buffered so far (one transaction)."""
        with self._write_lock:  # flushes in order: a later flush never commits before an earlier one
            with self._pending_lock:
                assignments, self._pending = self._pending, {}
                observations, self._pending_shadow = self._pending_shadow, []
            if assignments or observations:
                self._write(list(assignments.values()), observations)

    def _write(self, assignments: list[Assignment], observations: list[ShadowObservation]) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO assignments VALUES (?,?,?,?,?,?,?,?,?,?)",
                [_assignment_row(a) for a in assignments],
            )
            db.executemany(
                "INSERT INTO shadow VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (o.collection, o.experiment, o.candidate, o.live, o.latency_ms, o.live_latency_ms)
                    + (o.error, o.overlap, o.at)
                    for o in observations
                ],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _run(self) -> None:
        last_prune = time.monotonic()
        while not self._stop.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                    self.prune(time.time() - self.retention_s)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("writing experiment assignments failed; retrying")

    # -- lookups and feedback -------------------------------------------------------------------

    def find(self, collection: str, request_id: str) -> Assignment | None:
        """The assignment of ``request_id`` in ``collection``, buffered or written (a buffered one is
        written first, so feedback never refers to an assignment that is not on disk)."""
        with self._pending_lock:
            buffered = request_id in self._pending
        if buffered:
            self.flush()
        else:
            with self._write_lock:  # a flush that took it from the buffer has committed it
                pass
        row = (
            self._db()
            .execute(
                "SELECT request_id, collection, experiment, op, mode, version, pair, key, hits, at "
                "FROM assignments WHERE request_id=? AND collection=?",
                (request_id, collection),
            )
            .fetchone()
        )
        return None if row is None else _assignment(row)

    def add_feedback(self, feedback: Feedback) -> bool:
        """Store one feedback event; False if the same (request_id, id, event) is already stored."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO feedback VALUES (?,?,?,?,?,?,?,?)",
                (feedback.request_id, feedback.id, feedback.event, feedback.collection, feedback.value)
                + (feedback.rank, feedback.credit, feedback.at),
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

    def start(self, collection: str, control: str | None) -> ExperimentRow:
        """A new experiment of ``collection`` (number previous + 1), starting now."""
        self.flush()  # assignments of the previous experiment stay with it
        with self._tx(fsync=True) as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(id), 0) FROM experiments WHERE collection=?", (collection,)
            ).fetchone()
            row = ExperimentRow(last + 1, time.time(), control)
            db.execute(
                "INSERT INTO experiments VALUES (?,?,?,?)", (collection, row.id, row.started_at, control)
            )
        return row

    def settings(self, collection: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(shadow, interleave)`` as stored (None where off)."""
        row = (
            self._db()
            .execute("SELECT shadow, interleave FROM settings WHERE collection=?", (collection,))
            .fetchone()
        )
        if row is None:
            return (None, None)
        return (_loads(row[0]), _loads(row[1]))

    def save_settings(
        self, collection: str, shadow: dict[str, Any] | None, interleave: dict[str, Any] | None
    ) -> None:
        with self._tx(fsync=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO settings VALUES (?,?,?,?)",
                (collection, _dumps(shadow), _dumps(interleave), time.time()),
            )

    # -- report queries -------------------------------------------------------------------------

    def request_counts(self, collection: str, experiment: int, mode: Mode | None = None) -> RequestCounts:
        """Requests of one experiment (buffered ones included), per version and per interleaved pair;
        only those of ``mode`` if given."""
        self.flush()
        modes = ("single", "interleaved") if mode is None else (mode,)
        rows = self._db().execute(
            "SELECT mode, version, pair, COUNT(*) FROM assignments WHERE collection=? AND experiment=? "
            f"AND mode IN ({','.join('?' * len(modes))}) GROUP BY mode, version, pair",
            (collection, experiment, *modes),
        )
        counts = RequestCounts({}, {})
        for mode, version, pair, count in rows:
            found = _pair(pair)
            if mode == "interleaved" and found is not None:
                counts.interleaved[found] = counts.interleaved.get(found, 0) + count
            else:
                counts.single[version] = counts.single.get(version, 0) + count
        return counts

    def feedback_rows(self, collection: str, experiment: int, mode: Mode) -> list[FeedbackRow]:
        """Per request of ``mode`` with feedback and per event: best rank and events per credit."""
        self.flush()
        rows = self._db().execute(
            "SELECT f.request_id, f.event, a.version, a.pair, f.credit, MIN(f.rank), COUNT(*) "
            "FROM assignments a JOIN feedback f ON f.request_id = a.request_id "
            "WHERE a.collection=? AND a.experiment=? AND a.mode=? "
            "GROUP BY f.request_id, f.event, f.credit",
            (collection, experiment, mode),
        )
        merged: dict[tuple[str, str], FeedbackRow] = {}
        for request_id, event, version, pair, credit, best, count in rows:
            found = merged.setdefault(
                (request_id, event), FeedbackRow(request_id, event, version, _pair(pair), best, {})
            )
            found.best_rank = min(found.best_rank, best)
            found.credits[credit] = count
        return list(merged.values())

    def shadow_rows(self, collection: str, experiment: int) -> list[ShadowObservation]:
        self.flush()
        rows = self._db().execute(
            "SELECT collection, experiment, candidate, live, latency_ms, live_latency_ms, error, overlap, at "
            "FROM shadow WHERE collection=? AND experiment=? ORDER BY at",
            (collection, experiment),
        )
        return [ShadowObservation(*row) for row in rows]

    # -- maintenance ----------------------------------------------------------------------------

    def prune(self, before: float) -> None:
        """Drop assignments, feedback and shadow observations older than ``before`` (epoch seconds)."""
        with self._tx() as db:
            for table in ("assignments", "feedback", "shadow"):
                db.execute(f"DELETE FROM {table} WHERE at < ?", (before,))

    def forget(self, collection: str) -> None:
        """Everything about ``collection`` (it was deleted)."""
        self.flush()
        with self._tx(fsync=True) as db:
            for table in ("experiments", "settings", "assignments", "feedback", "shadow"):
                db.execute(f"DELETE FROM {table} WHERE collection=?", (collection,))

    def compact(self) -> None:
        """Truncate the write-ahead log (the rows are bounded by the retention)."""
        self._connections.truncate_wal()

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self._stop.set()
        self._flusher.join(timeout=10)
        self.flush()
        self._connections.close()


def _assignment_row(a: Assignment) -> tuple[Any, ...]:
    hits = json.dumps([list(hit) for hit in a.hits], separators=(",", ":"))
    pair = json.dumps(list(a.pair)) if a.pair else None
    return (a.request_id, a.collection, a.experiment, a.op, a.mode, a.version, pair, a.key, hits, a.at)


def _assignment(row: tuple[Any, ...]) -> Assignment:
    request_id, collection, experiment, op, mode, version, pair, key, hits, at = row
    parsed = tuple((str(hit_id), str(credit)) for hit_id, credit in json.loads(hits))
    return Assignment(request_id, collection, experiment, op, mode, version, _pair(pair), key, parsed, at)


def _pair(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    first, second = json.loads(text)
    return (str(first), str(second))


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))
