"""The seq ledger of an index whose engine has no conditional write (``milvus``): the last seq
applied per id, deletes included, and the position up to which the engine confirmed the writes.
``SeqLedger`` keeps it in a SQLite file beside the index (the embedded store); ``PgSeqLedger`` in
the shared PostgreSQL store's database (tables ``es_ledger_seqs``, ``es_ledger_positions``, made by
the store's migration 2), so any process that takes over the version's lease finds it.

A write goes in three steps, under the index's write lock: ``record`` commits the rows whose seq is
above their id's (each keeps the state it replaces) at the next position and says which those
were, the engine takes them, ``confirm`` moves the confirmed position to it. ``record`` is the seq
guard: its check and its write are one transaction (PostgreSQL re-checks a row another
transaction changed meanwhile). A crash between the first step and the last leaves rows past the
confirmed position: ``pending`` says so, ``unconfirmed`` lists them and ``settle`` sets each to what
the engine holds, so the replay of the change log from the version's applied position (all of it
after the last confirmed write) passes the guard again where the engine missed a write.

``PgSeqLedger`` commits each step in a transaction of its own (``IndexHost.own_transaction``), even
inside ``Store.together``: a record must be durable before the engine write it guards, and no
ledger row stays locked by a transaction still open around other writes. Each step is fenced
(``IndexHost.check_fence``): a process that lost the version's lease records nothing more.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedswitch._errors import Unavailable
from embedswitch._sqlite import Connections
from embedswitch.index._engines import Seen, batches, passes
from embedswitch.index.base import IndexHost, IndexMeta

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
_CONFIRM = (
    "UPDATE positions SET lsn = (SELECT lsn FROM positions WHERE name = 'written') WHERE name = 'confirmed'"
)
_MAX_VARS = 500
"""Ids per ``IN (...)`` list, below SQLite's limit on bound parameters."""

Row = tuple[str, int, bool]
"""(id, seq, live) of a write."""


@dataclass(frozen=True)
class Unconfirmed:
    """A row written past the confirmed position: the write, and the state it replaced."""

    id: str
    seq: int
    live: bool
    prev: Seen | None


class SeqLedger:
    """The seqs of one index in ``path`` (created if missing); safe to call from several threads."""

    shared = False
    """Whether other processes write it too (they don't: one process serves a data dir)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Connections(path, synchronous="NORMAL")
        with self._db.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def record(self, rows: Sequence[Row]) -> dict[str, Seen | None]:
        """Commit the rows whose seq is above their id's at the next position; id -> the state
        each replaced (None: never seen), for those rows only. ``rows`` name each id once."""
        with self._db.transaction() as db:
            stored: dict[str, Seen] = {}
            for chunk in batches([id_ for id_, _, _ in rows], _MAX_VARS):
                marks = ",".join("?" * len(chunk))
                found = db.execute(f"SELECT id, seq, live FROM seqs WHERE id IN ({marks})", list(chunk))
                stored.update({id_: (int(seq), bool(live)) for id_, seq, live in found})
            passing = [row for row in rows if passes(stored.get(row[0]), row[1])]
            if passing:
                (lsn,) = db.execute(
                    "UPDATE positions SET lsn = lsn + 1 WHERE name = 'written' RETURNING lsn"
                ).fetchone()
                db.executemany(_RECORD, [(id_, seq, int(live), lsn) for id_, seq, live in passing])
        return {id_: stored.get(id_) for id_, _, _ in passing}

    def confirm(self) -> None:
        """The engine holds every write recorded so far."""
        with self._db.transaction() as db:
            db.execute(_CONFIRM)

    def pending(self) -> bool:
        """Whether rows were written past the confirmed position (a write cut short)."""
        (found,) = (
            self._db.get()
            .execute(
                "SELECT (SELECT lsn FROM positions WHERE name = 'written') > "
                "(SELECT lsn FROM positions WHERE name = 'confirmed')"
            )
            .fetchone()
        )
        return bool(found)

    def unconfirmed(self) -> list[Unconfirmed]:
        """The rows written past the confirmed position (a write cut short)."""
        rows = self._db.get().execute(
            "SELECT id, seq, live, prev_seq, prev_live FROM seqs "
            "WHERE lsn > (SELECT lsn FROM positions WHERE name = 'confirmed')"
        )
        return [_unconfirmed(*row) for row in rows]

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
            db.execute(_CONFIRM)

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

    def destroy(self) -> None:
        """Close; the file goes with the index's directory."""
        self.close()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # closing twice, or a file already gone
            self._db.close()


_KEY = "collection = %(collection)s AND version = %(version)s AND kind = %(kind)s"
_PG_RECORD = """
INSERT INTO es_ledger_seqs AS s (collection, version, kind, id, seq, live, lsn)
SELECT %(collection)s, %(version)s, %(kind)s, r.id, r.seq, r.live, %(lsn)s
FROM unnest(%(ids)s::text[], %(seqs)s::bigint[], %(lives)s::boolean[]) AS r(id, seq, live)
ON CONFLICT (collection, version, kind, id) DO UPDATE
SET prev_seq = s.seq, prev_live = s.live, seq = excluded.seq, live = excluded.live, lsn = excluded.lsn
WHERE s.seq < excluded.seq
RETURNING s.id, s.prev_seq, s.prev_live"""
_PG_CONFIRM = f"UPDATE es_ledger_positions SET confirmed = written WHERE {_KEY}"


class PgSeqLedger:
    """The seqs of one index (``meta``'s collection, version and kind) in ``host``'s database,
    shared by every process of the cluster; safe to call from several threads."""

    shared = True
    """Whether other processes write it too (each in turn, as the version's leader)."""

    def __init__(self, host: IndexHost, meta: IndexMeta) -> None:
        self._host = host
        self._key = {"collection": meta.collection, "version": meta.version, "kind": meta.kind}
        with host.own_transaction() as conn:
            conn.execute(
                "INSERT INTO es_ledger_positions (collection, version, kind) "
                "VALUES (%(collection)s, %(version)s, %(kind)s) ON CONFLICT DO NOTHING",
                self._key,
            )

    @classmethod
    def stored_kinds(cls, host: IndexHost, collection: str, version: str) -> list[str]:
        """The kinds of ``version`` that have a ledger in ``host``'s database."""
        with host.reader() as conn:
            rows = conn.execute(
                "SELECT kind FROM es_ledger_positions WHERE collection = %s AND version = %s ORDER BY kind",
                [collection, version],
            ).fetchall()
        return [kind for (kind,) in rows]

    def record(self, rows: Sequence[Row]) -> dict[str, Seen | None]:
        """As ``SeqLedger.record``, fenced; the check and the write are one statement."""
        with self._writing() as (conn, written):
            params = {
                **self._key,
                "lsn": int(written) + 1,
                "ids": [id_ for id_, _, _ in rows],
                "seqs": [seq for _, seq, _ in rows],
                "lives": [live for _, _, live in rows],
            }
            landed = conn.execute(_PG_RECORD, params).fetchall()
            if landed:
                conn.execute(f"UPDATE es_ledger_positions SET written = written + 1 WHERE {_KEY}", self._key)
        return {id_: None if ps is None else (int(ps), bool(pl)) for id_, ps, pl in landed}

    def confirm(self) -> None:
        with self._writing() as (conn, _):
            conn.execute(_PG_CONFIRM, self._key)

    def pending(self) -> bool:
        with self._host.reader() as conn:
            row = conn.execute(
                f"SELECT written > confirmed FROM es_ledger_positions WHERE {_KEY}", self._key
            ).fetchone()
        return bool(row and row[0])

    def unconfirmed(self) -> list[Unconfirmed]:
        with self._host.reader() as conn:
            rows = conn.execute(
                f"SELECT id, seq, live, prev_seq, prev_live FROM es_ledger_seqs WHERE {_KEY} AND lsn > "
                f"(SELECT confirmed FROM es_ledger_positions WHERE {_KEY})",
                self._key,
            ).fetchall()
        return [_unconfirmed(*row) for row in rows]

    def settle(self, states: dict[str, Seen | None]) -> None:
        gone = [id_ for id_, state in states.items() if state is None]
        kept = {id_: state for id_, state in states.items() if state is not None}
        with self._writing() as (conn, _):
            conn.execute(
                f"DELETE FROM es_ledger_seqs WHERE {_KEY} AND id = ANY(%(ids)s)", {**self._key, "ids": gone}
            )
            conn.execute(
                "UPDATE es_ledger_seqs AS s SET seq = r.seq, live = r.live "
                "FROM unnest(%(ids)s::text[], %(seqs)s::bigint[], %(lives)s::boolean[]) AS r(id, seq, live) "
                "WHERE s.collection = %(collection)s AND s.version = %(version)s AND s.kind = %(kind)s "
                "AND s.id = r.id",
                {
                    **self._key,
                    "ids": list(kept),
                    "seqs": [s[0] for s in kept.values()],
                    "lives": [s[1] for s in kept.values()],
                },
            )
            conn.execute(_PG_CONFIRM, self._key)

    def seq_of(self, id: str) -> int | None:
        row = self._read(f"SELECT seq FROM es_ledger_seqs WHERE {_KEY} AND id = %(id)s", id=id)
        return None if not row else int(row[0][0])

    def live_ids(self) -> list[str]:
        return [id_ for (id_,) in self._read(f"SELECT id FROM es_ledger_seqs WHERE {_KEY} AND live")]

    def live(self) -> int:
        return int(self._read(f"SELECT count(*) FROM es_ledger_seqs WHERE {_KEY} AND live")[0][0])

    def forget(self, upto_seq: int) -> int:
        with self._writing() as (conn, _):
            done = conn.execute(
                f"DELETE FROM es_ledger_seqs WHERE {_KEY} AND NOT live AND seq <= %(upto)s",
                {**self._key, "upto": int(upto_seq)},
            )
            return int(done.rowcount)

    def destroy(self) -> None:
        """Delete this index's rows (fenced)."""
        with self._writing() as (conn, _):
            conn.execute(f"DELETE FROM es_ledger_seqs WHERE {_KEY}", self._key)
            conn.execute(f"DELETE FROM es_ledger_positions WHERE {_KEY}", self._key)

    def close(self) -> None:
        """Nothing to release: the connections are the host's."""

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tuple[Any, int]]:
        """A fenced transaction of its own holding this ledger's turn (its position row, locked),
        and the written position."""
        with self._host.own_transaction() as conn:
            found = conn.execute(
                f"SELECT written FROM es_ledger_positions WHERE {_KEY} FOR UPDATE", self._key
            )
            (written,) = _one(found)
            self._host.check_fence(conn)  # after the wait for the turn
            yield conn, int(written)

    def _read(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        with self._host.reader() as conn:
            return list(conn.execute(sql, {**self._key, **params}).fetchall())


def _unconfirmed(id_: str, seq: int, live: Any, prev_seq: int | None, prev_live: Any) -> Unconfirmed:
    prev = None if prev_seq is None else (int(prev_seq), bool(prev_live))
    return Unconfirmed(id_, int(seq), bool(live), prev)


def _one(cursor: Any) -> tuple[Any, ...]:
    row = cursor.fetchone()
    if row is None:
        raise Unavailable(
            "the index's seq ledger is gone (destroyed, by this or another process); reopen the version"
        )
    return tuple(row)
