"""The seq ledger of an index whose engine has no conditional write (``milvus``): the last seq
applied per id, deletes included, in a SQLite file beside the index, and the position up to which
the engine confirmed the writes.

A write goes in three steps, under the index's write lock: ``record`` commits the new seqs (each row
keeps the one it replaces) at the next position, the engine takes the vectors, ``confirm`` moves the
confirmed position to it. A crash between the first and the last leaves rows past the confirmed
position; ``unconfirmed`` lists them and ``settle`` sets each to what the engine holds, so the
replay of the change log from the version's applied position (all of it after the last confirmed
write) passes the guard again where the engine missed a write.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedswitch._sqlite import Connections
from embedswitch.index._engines import Seen, batches

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS seqs (
        id TEXT PRIMARY KEY, seq INTEGER NOT NULL, live INTEGER NOT NULL, lsn INTEGER NOT NULL,
        prev_seq INTEGER, prev_live INTEGER
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS seqs_lsn ON seqs (lsn)",
    "CREATE TABLE IF NOT EXISTS positions (name TEXT PRIMARY KEY, lsn INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO positions VALUES ('written', 0), ('confirmed', 0)",
)
_RECORD = """
INSERT INTO seqs (id, seq, live, lsn, prev_seq, prev_live) VALUES (?, ?, ?, ?, NULL, NULL)
ON CONFLICT (id) DO UPDATE SET prev_seq = seqs.seq, prev_live = seqs.live,
    seq = excluded.seq, live = excluded.live, lsn = excluded.lsn"""
_MAX_VARS = 500
"""Ids per ``IN (...)`` list, below SQLite's limit on bound parameters."""


@dataclass(frozen=True)
class Unconfirmed:
    """A row written past the confirmed position: the write, and the state it replaced."""

    id: str
    seq: int
    live: bool
    prev: Seen | None


class SeqLedger:
    """The seqs of one index in ``path`` (created if missing); safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Connections(path, synchronous="NORMAL")
        with self._db.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def seqs(self, ids: Sequence[str]) -> dict[str, Seen]:
        """id -> (seq, live) of those ids seen (written or deleted, tombstone not forgotten)."""
        found: dict[str, Seen] = {}
        db = self._db.get()
        for chunk in batches(ids, _MAX_VARS):
            marks = ",".join("?" * len(chunk))
            for id_, seq, live in db.execute(f"SELECT id, seq, live FROM seqs WHERE id IN ({marks})", chunk):
                found[id_] = (int(seq), bool(live))
        return found

    def record(self, rows: Sequence[tuple[str, int, bool]]) -> None:
        """Commit ``(id, seq, live)`` rows at the next position, past the confirmed one."""
        with self._db.transaction() as db:
            (lsn,) = db.execute(
                "UPDATE positions SET lsn = lsn + 1 WHERE name = 'written' RETURNING lsn"
            ).fetchone()
            db.executemany(_RECORD, [(id_, seq, int(live), lsn) for id_, seq, live in rows])

    def confirm(self) -> None:
        """The engine holds every write recorded so far."""
        with self._db.transaction() as db:
            db.execute(
                "UPDATE positions SET lsn = (SELECT lsn FROM positions WHERE name = 'written') "
                "WHERE name = 'confirmed'"
            )

    def unconfirmed(self) -> list[Unconfirmed]:
        """The rows written past the confirmed position (a write cut short)."""
        rows = self._db.get().execute(
            "SELECT id, seq, live, prev_seq, prev_live FROM seqs "
            "WHERE lsn > (SELECT lsn FROM positions WHERE name = 'confirmed')"
        )
        return [
            Unconfirmed(id_, int(seq), bool(live), None if ps is None else (int(ps), bool(pl)))
            for id_, seq, live, ps, pl in rows
        ]

    def settle(self, states: dict[str, Seen | None]) -> None:
        """Set each id to ``(seq, live)`` (None: forget it) and confirm the whole ledger."""
        with self._db.transaction() as db:
            for id_, state in states.items():
                if state is None:
                    db.execute("DELETE FROM seqs WHERE id = ?", [id_])
                else:
                    db.execute(
                        "UPDATE seqs SET seq = ?, live = ? WHERE id = ?", [state[0], int(state[1]), id_]
                    )
            db.execute(
                "UPDATE positions SET lsn = (SELECT lsn FROM positions WHERE name = 'written') "
                "WHERE name = 'confirmed'"
            )

    def seq_of(self, id: str) -> int | None:
        row = self._db.get().execute("SELECT seq FROM seqs WHERE id = ?", [id]).fetchone()
        return None if row is None else int(row[0])

    def live_ids(self) -> list[str]:
        return [id_ for (id_,) in self._db.get().execute("SELECT id FROM seqs WHERE live = 1")]

    def live(self) -> int:
        (count,) = self._db.get().execute("SELECT count(*) FROM seqs WHERE live = 1").fetchone()
        return int(count)

    def forget(self, upto_seq: int) -> int:
        """Drop the tombstones with seq <= ``upto_seq``; how many."""
        with self._db.transaction() as db:
            return db.execute("DELETE FROM seqs WHERE live = 0 AND seq <= ?", [int(upto_seq)]).rowcount

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # closing twice, or a file already gone
            self._db.close()
