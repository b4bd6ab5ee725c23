"""The SQLite store's quarantined records: one row per (collection, version, kind, id).

A part of ``SqliteStore`` (a mixin over its connections), kept apart so that each module stays
one noun: records a version's model rejected, with the seq and error of the rejection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from .base import QuarantineRow, RecordKey

QUARANTINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine(
  collection TEXT NOT NULL, version TEXT NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL,
  seq INTEGER NOT NULL, error TEXT NOT NULL, at REAL NOT NULL, skipped INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(collection, version, kind, id)) WITHOUT ROWID;
"""


class SqliteQuarantine:
    """``ControlStore``'s quarantine methods over the store's connections."""

    _db: Callable[[], sqlite3.Connection]
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def quarantine(self, collection: str, version: str, rows: Sequence[QuarantineRow]) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO quarantine(collection, version, kind, id, seq, error, at, skipped) "
                "VALUES (?,?,?,?,?,?,?,?)",
                [
                    (collection, version, r.kind, r.id, r.seq, r.error, r.at or now, int(r.skipped))
                    for r in rows
                ],
            )

    def quarantined(self, collection: str, version: str) -> list[QuarantineRow]:
        rows = self._db().execute(
            "SELECT kind, id, seq, error, at, skipped FROM quarantine WHERE collection=? AND version=? "
            "ORDER BY kind, id",
            (collection, version),
        )
        return [QuarantineRow(k, i, seq, error, at, bool(skipped)) for k, i, seq, error, at, skipped in rows]

    def unquarantine(self, collection: str, version: str, keys: Sequence[tuple[str, str, int]]) -> int:
        with self._tx() as db:
            return sum(
                db.execute(
                    "DELETE FROM quarantine WHERE collection=? AND version=? AND kind=? AND id=? AND seq<=?",
                    (collection, version, kind, rid, seq),
                ).rowcount
                for kind, rid, seq in keys
            )

    def skip_quarantined(self, collection: str, version: str, keys: Sequence[RecordKey]) -> int:
        with self._tx() as db:
            return sum(
                db.execute(
                    "UPDATE quarantine SET skipped=1 WHERE collection=? AND version=? AND kind=? AND id=? "
                    "AND skipped=0",
                    (collection, version, kind, rid),
                ).rowcount
                for kind, rid in keys
            )
