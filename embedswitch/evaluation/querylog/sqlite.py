"""The query log's rows in ``querylog.db`` of the data dir, for the embedded store. Its commits are
not fsynced (``synchronous=NORMAL``): the log is best effort (``buffered.py``)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from .base import COLUMNS, LoggedQuery

log = logging.getLogger("embedswitch")

FILE_NAME = "querylog.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS queries(
  id INTEGER PRIMARY KEY AUTOINCREMENT, collection TEXT NOT NULL, ts REAL NOT NULL,
  kind TEXT NOT NULL, k INTEGER NOT NULL, version TEXT NOT NULL,
  text TEXT, like_kind TEXT, like_id TEXT);
CREATE INDEX IF NOT EXISTS queries_by_collection ON queries(collection, id);
CREATE INDEX IF NOT EXISTS queries_by_ts ON queries(ts);
"""


class SqliteQueryRows:
    """``QueryRows`` in ``querylog.db`` of ``data_dir``, one connection behind a lock."""

    def __init__(self, data_dir: Path) -> None:
        self._db = sqlite3.connect(data_dir / FILE_NAME, check_same_thread=False, isolation_level=None)
        self._db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;" + SCHEMA)
        self._lock = threading.Lock()

    def append(self, queries: Sequence[LoggedQuery], before: float, size: int) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany(
                    f"INSERT INTO queries({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", [q.row() for q in queries]
                )
                db.execute("DELETE FROM queries WHERE ts < ?", (before,))
                for collection in {q.collection for q in queries}:
                    db.execute(
                        "DELETE FROM queries WHERE collection = ? AND id <= "
                        "(SELECT id FROM queries WHERE collection = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                        (collection, collection, size),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def count(self, collection: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM queries WHERE collection = ?", (collection,))
            return int(row.fetchone()[0])

    def ids(self, collection: str) -> list[int]:
        with self._lock:
            found = self._db.execute("SELECT id FROM queries WHERE collection = ? ORDER BY id", (collection,))
            return [row[0] for row in found]

    def get(self, ids: Sequence[int]) -> dict[int, LoggedQuery]:
        sql = f"SELECT id, {COLUMNS} FROM queries WHERE id IN ({','.join('?' * len(ids))})"
        with self._lock:
            return {row[0]: LoggedQuery(*row[1:]) for row in self._db.execute(sql, list(ids))}

    def forget(self, collection: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM queries WHERE collection = ?", (collection,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def erase(data_dir: Path) -> None:
    """Delete ``querylog.db`` of ``data_dir`` and its write-ahead log, if there."""
    path = data_dir / FILE_NAME
    for suffix in ("", "-wal", "-shm"):
        found = path.with_name(path.name + suffix)
        if found.exists():
            log.info("query logging is off; deleting the query log %s", found)
            with contextlib.suppress(OSError):
                found.unlink()
