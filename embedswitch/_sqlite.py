"""Per-thread SQLite connections to one file, shared by the store, the experiment log and the query log.

The write-ahead log of a busy file grows to its high-water mark and stays there (SQLite's automatic
checkpoints reuse it but never shrink it): ``journal_size_limit`` cuts it back after each
checkpoint, and ``truncate_wal`` empties it when no reader holds it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

WAL_LIMIT_BYTES = 64 * 1024 * 1024


class Connections:
    """One connection per thread to ``path`` (WAL, autocommit, 30 s busy timeout), at the given
    ``synchronous`` level, and one writer at a time (``write_lock``); ``close`` closes them all."""

    def __init__(
        self, path: Path, synchronous: Literal["FULL", "NORMAL"], wal_limit_bytes: int = WAL_LIMIT_BYTES
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.wal_limit_bytes = wal_limit_bytes
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.write_lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA busy_timeout=30000")
            db.execute(f"PRAGMA journal_size_limit={int(self.wal_limit_bytes)}")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    @contextmanager
    def transaction(self, fsync: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, rolled back if the block raises. ``fsync`` makes this commit
        durable against a power cut too on a file opened with ``synchronous=NORMAL``."""
        db = self.get()
        with self.write_lock:
            relax = fsync and self.synchronous != "FULL"
            if relax:
                db.execute("PRAGMA synchronous=FULL")
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            finally:
                if relax:
                    db.execute(f"PRAGMA synchronous={self.synchronous}")

    def truncate_wal(self) -> None:
        """Checkpoint the write-ahead log into the database and truncate it (a no-op while a
        reader still needs it; the next call gets it)."""
        with self.write_lock:
            self.get().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()
