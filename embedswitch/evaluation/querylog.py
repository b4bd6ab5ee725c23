"""The query log: an opt-in, bounded, best-effort record of the searches each collection answered,
so that a candidate version can be judged on real traffic (``comparison.py``).

Promises:
- off (``size`` 0, the default) nothing is recorded, and a log left by an earlier run is deleted
  when the engine opens, so turning it off also erases what was kept;
- ``record`` never touches the disk and never blocks on it: it appends to an in-memory buffer of at
  most ``MAX_BUFFER`` entries (the oldest is dropped if the writer falls behind) that a background
  thread writes to ``querylog.db`` in the data dir about every ``flush_interval_s``;
- at most ``size`` queries per collection are kept (the newest), and none older than
  ``retention_s``; both are enforced at every flush and before every read;
- only routed searches are kept, not those that name a ``version``; of each: the query text (or
  the ``like`` record's kind and id), the kind searched, ``k``, the version that answered and the
  time. Query texts are user data: see docs/operations.md.

Not durable on purpose: the log is not part of the change log, its commits are not fsynced
(``synchronous=NORMAL``), and up to ``flush_interval_s`` of queries are lost on ``kill -9``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..specs import SearchRequest

log = logging.getLogger("embedswitch")

FILE_NAME = "querylog.db"
MAX_BUFFER = 10_000
"""Queries held in memory between flushes, at most; past it the oldest are dropped (and counted)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queries(
  id INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, ts REAL NOT NULL,
  kind TEXT NOT NULL, k INTEGER NOT NULL, version TEXT NOT NULL,
  text TEXT, like_kind TEXT, like_id TEXT);
CREATE INDEX IF NOT EXISTS queries_by_collection ON queries(collection, id);
CREATE INDEX IF NOT EXISTS queries_by_ts ON queries(ts);
"""
_COLUMNS = "collection, ts, kind, k, version, text, like_kind, like_id"


@dataclass(frozen=True)
class LoggedQuery:
    """One answered search: exactly one of ``text`` or (``like_kind``, ``like_id``) is set."""

    collection: str
    ts: float
    kind: str
    k: int
    version: str
    text: str | None
    like_kind: str | None
    like_id: str | None


class QueryLog:
    """The query log of one engine (all its collections), in ``querylog.db`` of the data dir."""

    def __init__(
        self,
        data_dir: Path,
        size: int,
        retention_s: float,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.size = size
        self.retention_s = retention_s
        self.dropped = 0
        self._clock = clock
        self._path = data_dir / FILE_NAME
        self._buffer: deque[LoggedQuery] = deque()
        self._buffer_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._stop = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        if not self.enabled:
            self._erase()
            return
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + _SCHEMA)
        self._thread = threading.Thread(
            target=self._run, args=(flush_interval_s,), name="querylog", daemon=True
        )
        self._thread.start()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    # -- the search path ----------------------------------------------------------------------

    def record(self, collection: str, request: SearchRequest, version: str) -> None:
        """Remember one answered search; O(1), in memory only (see the module docstring). A
        search that named its ``version`` (debugging, a look at a candidate) is not live traffic
        and is not recorded."""
        if not self.enabled or request.version is not None:
            return
        like = request.like
        entry = LoggedQuery(
            collection=collection,
            ts=self._clock(),
            kind=request.kind,
            k=request.k,
            version=version,
            text=request.text if like is None else None,
            like_kind=like.kind if like is not None else None,
            like_id=like.id if like is not None else None,
        )
        with self._buffer_lock:
            if len(self._buffer) >= min(MAX_BUFFER, self.size):
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(entry)

    # -- reading --------------------------------------------------------------------------------

    def count(self, collection: str) -> int:
        """Queries of ``collection`` kept now (buffered ones included, expired ones not)."""
        if self._db is None:
            return 0
        self.flush()
        with self._db_lock:
            row = self._db.execute("SELECT COUNT(*) FROM queries WHERE collection = ?", (collection,))
            return int(row.fetchone()[0])

    def sample(self, collection: str, n: int, seed: int) -> tuple[list[LoggedQuery], int]:
        """Up to ``n`` kept queries of ``collection``, drawn uniformly without replacement (a query
        asked often is drawn as often as it was asked), and how many were kept to draw from."""
        db = self._db
        if db is None:
            return [], 0
        self.flush()
        with self._db_lock:
            found = db.execute("SELECT id FROM queries WHERE collection = ?", (collection,))
            ids = [row[0] for row in found]
            chosen = random.Random(seed).sample(ids, min(n, len(ids)))
            rows: dict[int, LoggedQuery] = {}
            for start in range(0, len(chosen), 500):
                part = chosen[start : start + 500]
                sql = f"SELECT id, {_COLUMNS} FROM queries WHERE id IN ({','.join('?' * len(part))})"
                for row in db.execute(sql, part):
                    rows[row[0]] = LoggedQuery(*row[1:])
        return [rows[i] for i in chosen], len(ids)

    # -- writing --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered queries, then drop what is past the size bound or the retention."""
        db = self._db
        if db is None:
            return
        with self._buffer_lock:
            batch = list(self._buffer)
            self._buffer.clear()
        rows = [(q.collection, q.ts, q.kind, q.k, q.version, q.text, q.like_kind, q.like_id) for q in batch]
        with self._db_lock:
            db.execute("BEGIN")
            try:
                db.executemany(f"INSERT INTO queries({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.execute("DELETE FROM queries WHERE ts < ?", (self._clock() - self.retention_s,))
                for collection in {q.collection for q in batch}:
                    db.execute(
                        "DELETE FROM queries WHERE collection = ? AND id <= "
                        "(SELECT id FROM queries WHERE collection = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (collection, collection, self.size),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def forget(self, collection: str) -> None:
        """Delete every query of ``collection`` (the collection was deleted)."""
        if self._db is None:
            return
        with self._buffer_lock:
            kept = [q for q in self._buffer if q.collection != collection]
            self._buffer = deque(kept)
        with self._db_lock:
            self._db.execute("DELETE FROM queries WHERE collection = ?", (collection,))

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # best effort: the next flush retries; searches are unaffected
                log.exception("writing the query log failed")

    def _erase(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            path = self._path.with_name(self._path.name + suffix)
            if path.exists():
                log.info("query logging is off; deleting the query log %s", path)
                with contextlib.suppress(OSError):
                    path.unlink()

    def close(self) -> None:
        """Write what is buffered and close the file."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._db is not None:
            self.flush()
            with self._db_lock:
                self._db.close()
            self._db = None
