"""Routed requests per version counted in the shared store's PostgreSQL database, so that the
rollout gates of whichever process drives a rollout see the traffic of every process.

Each process counts in memory and adds its counts to ``es_reqstats_counts`` (running totals per
collection and version) every ``FLUSH_INTERVAL_S``, with the latencies of that interval as one row
of ``es_reqstats_latencies``. A collection's flushes take turns (an advisory lock), so their rows'
ids follow their commits: a mark is the totals and the last latency row id, read at one instant,
and a window is the totals now less those, with the latency rows after the id. Latency rows are
pruned to the newest ``SAMPLES`` per version and to ``LATENCY_RETENTION_S``; the totals are one
row per version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from .._pg import Host, create_tables
from .base import SAMPLES, Counts, Mark, Window, is_server_error, windows

log = logging.getLogger("embedswitch")

FLUSH_INTERVAL_S = 0.25
PRUNE_INTERVAL_S = 60.0
LATENCY_RETENTION_S = 8 * 86_400.0
"""Latency rows older than this are dropped: longer than the longest rollout step (7 days)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS es_reqstats_counts(
  collection TEXT NOT NULL, version TEXT NOT NULL, requests BIGINT NOT NULL, errors BIGINT NOT NULL,
  PRIMARY KEY(collection, version));
CREATE TABLE IF NOT EXISTS es_reqstats_latencies(
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection TEXT NOT NULL, version TEXT NOT NULL,
  n INTEGER NOT NULL, latencies_s DOUBLE PRECISION[] NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS es_reqstats_latencies_by_collection ON es_reqstats_latencies(collection, id);
CREATE INDEX IF NOT EXISTS es_reqstats_latencies_by_time ON es_reqstats_latencies(at);
"""
_FLUSH_LOCK = "embedswitch: request stats of "  # + collection: its flushes take turns
_ADD_COUNTS = (
    "INSERT INTO es_reqstats_counts(collection, version, requests, errors) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (collection, version) DO UPDATE SET requests = es_reqstats_counts.requests + "
    "excluded.requests, errors = es_reqstats_counts.errors + excluded.errors"
)
_NEWEST = (  # the latency rows after an id that hold the newest SAMPLES latencies of each version
    "SELECT id, version, latencies_s FROM (SELECT id, version, latencies_s, SUM(n) OVER "
    "(PARTITION BY version ORDER BY id DESC) - n AS newer FROM es_reqstats_latencies "
    "WHERE collection = %s AND id > %s) w WHERE newer < %s ORDER BY id"
)
_PRUNE = (
    "DELETE FROM es_reqstats_latencies l USING (SELECT id FROM (SELECT id, SUM(n) OVER "
    "(PARTITION BY version ORDER BY id DESC) - n AS newer FROM es_reqstats_latencies "
    "WHERE collection = %s) w WHERE newer >= %s) old WHERE l.id = old.id"
)


class _Pending:
    """One version's requests not written yet."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: deque[float] = deque(maxlen=SAMPLES)


class PostgresRequestStats:
    """``RequestStats`` of one collection in a database that several processes share."""

    def __init__(self, host: Host, collection: str, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.collection = collection
        self._host = host
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._seen = _Seen()
        create_tables(host, SCHEMA)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(flush_interval_s,), name=f"reqstats-{collection}", daemon=True
        )
        self._thread.start()

    def record(self, version: str, seconds: float, error: BaseException | None) -> None:
        failed = is_server_error(error)
        with self._lock:
            pending = self._pending.get(version)
            if pending is None:
                pending = self._pending[version] = _Pending()
            pending.requests += 1
            if failed:
                pending.errors += 1
            else:
                pending.latencies.append(seconds)

    def mark(self) -> Mark:
        """This process's requests so far and every other's written so far."""
        self.flush()
        with self._host.connection() as conn:
            rows = conn.execute(
                "SELECT top.id, c.version, c.requests, c.errors FROM (SELECT COALESCE(MAX(id), 0) AS id "
                "FROM es_reqstats_latencies WHERE collection = %s) top "
                "LEFT JOIN es_reqstats_counts c ON c.collection = %s",
                (self.collection, self.collection),
            ).fetchall()
        counts = {version: (int(r), int(e)) for _, version, r, e in rows if version is not None}
        return Mark(int(rows[0][0]), counts)

    def since(self, mark: Mark) -> dict[str, Window]:
        self.flush()
        with self._host.connection() as conn:
            rows = conn.execute(
                "SELECT version, requests, errors FROM es_reqstats_counts WHERE collection = %s",
                (self.collection,),
            ).fetchall()
            counts: Counts = {version: (int(r), int(e)) for version, r, e in rows}
            latencies = self._seen.after(conn, self.collection, mark.seq)
        return windows(mark, counts, latencies)

    # -- writing --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Add what this process counted since the last flush to the shared totals."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return
            try:
                self._write(pending)
            except BaseException:
                self._restore(pending)
                raise

    def _write(self, pending: dict[str, _Pending]) -> None:
        order = sorted(pending)
        with self._host.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_FLUSH_LOCK + self.collection,))
            cur.executemany(
                _ADD_COUNTS, [(self.collection, v, pending[v].requests, pending[v].errors) for v in order]
            )
            cur.executemany(
                "INSERT INTO es_reqstats_latencies(collection, version, n, latencies_s) "
                "VALUES (%s, %s, %s, %s)",
                [
                    (self.collection, v, len(pending[v].latencies), list(pending[v].latencies))
                    for v in order
                    if pending[v].latencies
                ],
            )

    def _restore(self, pending: dict[str, _Pending]) -> None:
        """Put back counts a failed flush did not write, before those recorded meanwhile."""
        with self._lock:
            for version, failed in pending.items():
                now = self._pending.get(version)
                if now is not None:
                    failed.requests += now.requests
                    failed.errors += now.errors
                    failed.latencies.extend(now.latencies)
                self._pending[version] = failed

    def prune(self) -> None:
        """Drop latency rows past the newest ``SAMPLES`` of each version, or past the retention."""
        with self._host.connection() as conn:
            conn.execute(
                "DELETE FROM es_reqstats_latencies WHERE at < now() - make_interval(secs => %s)",
                (LATENCY_RETENTION_S,),
            )
            conn.execute(_PRUNE, (self.collection, SAMPLES))

    def _run(self, interval_s: float) -> None:
        last_prune = time.monotonic()
        while not self._stop.wait(interval_s):
            try:
                self.flush()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                    self.prune()
                    last_prune = time.monotonic()
            except Exception:
                log.exception("writing the request counts of %s failed; retrying", self.collection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self.flush()
        except Exception:
            log.exception("writing the last request counts of %s failed", self.collection)


class _Seen:
    """The latencies after one mark, read incrementally: a rollout asks for the same window every
    tick, and only the rows written since the last look are fetched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mark = -1
        self._top = -1
        self._latencies: dict[str, deque[float]] = {}

    def after(self, conn: Any, collection: str, mark: int) -> dict[str, np.ndarray]:
        with self._lock:
            if mark != self._mark:
                self._mark, self._top, self._latencies = mark, mark, {}
            rows: Iterable[tuple[int, str, list[float]]] = conn.execute(
                _NEWEST, (collection, self._top, SAMPLES)
            ).fetchall()
            for id, version, latencies in rows:
                self._latencies.setdefault(version, deque(maxlen=SAMPLES)).extend(latencies)
                self._top = max(self._top, id)
            return {v: np.fromiter(found, dtype=np.float64) for v, found in self._latencies.items()}
