"""A lexical index: BM25 over the texts of one (collection, version, kind), in SQLite FTS5.

It lives in one file, ``bm25.db``, in the kind's index directory, next to the vector index of a
hybrid version. SQLite FTS5 scores with Okapi BM25 (``bm25()``: k1 = 1.2, b = 0.75, IDF floored
near 0) and takes updates and deletes natively, so the index is never rebuilt: each write is one
transaction, each search reads one committed snapshot. A ``docs`` table keeps each id's last seq
and whether it is live, which gives the seq guard of ``VectorIndex`` (deletes leave tombstones).

Its limits: every write commits (a durable one with fsync), so a write costs ~0.1 ms a record plus
the commit; a search scans the postings of each query word, ~3 ms at SciFact's 5,000 abstracts and
linear in the matches beyond. It is one process's file: with a PostgreSQL store (several
processes) a lexical version keeps its texts in the store's database instead (``index/pgbm25.py``).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from embedswitch._sqlite import Connections
from embedswitch.index._checks import check_k, check_seqs, closed
from embedswitch.index._files import check_meta
from embedswitch.index._ids import IdMap
from embedswitch.index._rwlock import RWLock
from embedswitch.index.base import Allowed, Hit, IndexMeta

FILE = "bm25.db"
MAX_QUERY_TERMS = 1024
"""Distinct words of a query searched, at most (the first ones)."""
Tokenizer = Literal["unicode61", "porter"]

_WORD = re.compile(r"[^\W_]+")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS docs (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
    "seq INTEGER NOT NULL, live INTEGER NOT NULL)",
)
_TOKENIZE = {"unicode61": "unicode61 remove_diacritics 2", "porter": "porter unicode61 remove_diacritics 2"}


def match_expression(text: str) -> str | None:
    """An FTS5 query matching any word of ``text`` (each word quoted, so no word is an operator);
    None when ``text`` has no words."""
    words = list(dict.fromkeys(_WORD.findall(text.lower())))[:MAX_QUERY_TERMS]
    return " OR ".join(f'"{word}"' for word in words) if words else None


class LexicalIndex:
    """A ``Bm25Index`` in one SQLite FTS5 file. Every write is committed when it returns (a
    ``durable`` one fsynced), so ``close`` loses nothing; ``checkpoint`` also makes the others
    survive a power cut."""

    index_type = "bm25"
    precision = "text"

    def __init__(self, directory: Path, meta: IndexMeta, tokenizer: Tokenizer) -> None:
        """Open (or create) ``directory/bm25.db``; ``IndexMismatch`` if it was built for another
        model, version or kind."""
        self.meta = meta
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILE
        self._db = Connections(self.path, "NORMAL")
        self._rw = RWLock()  # reads share it; close takes it alone
        self._closed = False
        self._counting = threading.Lock()
        described = {
            "collection": meta.collection,
            "version": meta.version,
            "kind": meta.kind,
            "fingerprint": meta.fingerprint,
            "dim": meta.dim,
            "index_type": self.index_type,
            "tokenizer": tokenizer,
        }
        with self._db.transaction(fsync=True) as db:
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(body, tokenize='{_TOKENIZE[tokenizer]}')"
            )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('meta', ?)", (json.dumps(described),))
            stored = json.loads(db.execute("SELECT value FROM meta WHERE key = 'meta'").fetchone()[0])
            self._live = int(db.execute("SELECT count(*) FROM docs WHERE live = 1").fetchone()[0])
        try:
            check_meta(stored, meta, self.index_type, self.directory)
        except Exception:
            self._db.close()
            raise

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], texts: Sequence[str], seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Index each text under its id unless the id has seen a seq >= its seq; returns how many
        ids changed."""
        seq_list = check_seqs(ids, seqs)
        if len(texts) != len(ids):
            raise ValueError(f"got {len(ids)} ids but {len(texts)} texts; pass one text per id")
        changed = added = 0
        with self._rw.read, self._db.transaction(fsync=durable) as db:
            self._check_open()
            for id_, (row_of, seq) in IdMap.latest_per_id(ids, seq_list).items():
                text = texts[row_of]
                row = db.execute("SELECT rowid, seq, live FROM docs WHERE id = ?", (id_,)).fetchone()
                if row is not None and row[1] >= seq:
                    continue
                if row is None:
                    rowid = db.execute(
                        "INSERT INTO docs (id, seq, live) VALUES (?, ?, 1)", (id_, seq)
                    ).lastrowid
                    added += 1
                else:
                    rowid = row[0]
                    db.execute("UPDATE docs SET seq = ?, live = 1 WHERE rowid = ?", (seq, rowid))
                    if row[2]:
                        db.execute("DELETE FROM fts WHERE rowid = ?", (rowid,))
                    else:
                        added += 1
                db.execute("INSERT INTO fts (rowid, body) VALUES (?, ?)", (rowid, text))
                changed += 1
        self._count(added)
        return changed

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Remove each id unless it has seen a seq >= its seq (a tombstone is kept either way);
        returns how many texts were removed."""
        seq_list = check_seqs(ids, seqs)
        removed = 0
        with self._rw.read, self._db.transaction() as db:
            self._check_open()
            for id_, seq in zip(ids, seq_list, strict=True):
                row = db.execute("SELECT rowid, seq, live FROM docs WHERE id = ?", (id_,)).fetchone()
                if row is None:
                    db.execute("INSERT INTO docs (id, seq, live) VALUES (?, ?, 0)", (id_, seq))
                elif row[1] < seq:
                    db.execute("UPDATE docs SET seq = ?, live = 0 WHERE rowid = ?", (seq, row[0]))
                    if row[2]:
                        db.execute("DELETE FROM fts WHERE rowid = ?", (row[0],))
                        removed += 1
        self._count(-removed)
        return removed

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        with self._rw.read, self._db.transaction() as db:
            self._check_open()
            return db.execute("DELETE FROM docs WHERE live = 0 AND seq <= ?", (upto_seq,)).rowcount

    # --- reads ----------------------------------------------------------------------------------

    def search(
        self,
        text: str,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
    ) -> list[Hit]:
        """Up to ``k`` hits ``(id, BM25 score)`` for records holding any word of ``text``, best
        first (ties by age in the index), skipping ``exclude`` and, with ``allowed``, every id
        not in ``allowed.ids()``: the ``k`` best allowed matches, whatever ranks above them."""
        check_k(k)
        query = match_expression(text)
        skip = set(exclude or ())
        if query is None or k == 0:
            return []
        permitted = allowed.ids() if allowed is not None else None
        limit = -1 if allowed is not None else k + len(skip)  # FTS5 ranks every match either way
        hits: list[Hit] = []
        with self._rw.read:
            self._check_open()
            rows = self._db.get().execute(
                "SELECT d.id, -r.score FROM (SELECT rowid, rank AS score FROM fts WHERE fts MATCH ? "
                "ORDER BY rank LIMIT ?) r JOIN docs d ON d.rowid = r.rowid ORDER BY r.score, r.rowid",
                (query, limit),
            )
            for id_, score in rows:
                if id_ not in skip and (permitted is None or id_ in permitted):
                    hits.append((id_, float(score)))
                    if len(hits) == k:
                        break
        return hits

    def get(self, ids: Sequence[str]) -> dict[str, str]:
        """The indexed texts of those ids that are present."""
        with self._rw.read:
            self._check_open()
            db = self._db.get()
            found = {}
            for id_ in dict.fromkeys(ids):
                row = db.execute(
                    "SELECT f.body FROM docs d JOIN fts f ON f.rowid = d.rowid WHERE d.id = ? AND d.live = 1",
                    (id_,),
                ).fetchone()
                if row is not None:
                    found[id_] = str(row[0])
            return found

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        with self._rw.read:
            self._check_open()
            row = self._db.get().execute("SELECT seq FROM docs WHERE id = ?", (id,)).fetchone()
            return None if row is None else int(row[0])

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        with self._rw.read:
            self._check_open()
            return [str(r[0]) for r in self._db.get().execute("SELECT id FROM docs WHERE live = 1")]

    def tombstones(self) -> dict[str, int]:
        """Deleted id -> the seq of its delete."""
        with self._rw.read:
            self._check_open()
            rows = self._db.get().execute("SELECT id, seq FROM docs WHERE live = 0")
            return {str(id_): int(seq) for id_, seq in rows}

    def __len__(self) -> int:
        return self._live

    def memory_bytes(self) -> int:
        """0: the index is a file, read through SQLite's page cache (at most ~2 MB a connection)."""
        return 0

    def disk_bytes(self) -> int:
        """Bytes of the database file and its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                total += (self.directory / (FILE + suffix)).stat().st_size
        return total

    # --- lifecycle ------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Make every write so far survive a power cut too (a commit with fsync, which syncs the
        write-ahead log up to it), then move the log into the database file when no reader holds it."""
        with self._rw.read:
            self._check_open()
            with self._db.transaction(fsync=True) as db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint', strftime('%s', 'now'))")
            with contextlib.suppress(sqlite3.OperationalError):  # busy: the next checkpoint does it
                self._db.truncate_wal()

    def close(self) -> None:
        with self._rw.write:
            if not self._closed:
                self._closed = True
                self._db.close()

    def destroy(self) -> None:
        """Close and delete the index's files (and its directory once empty)."""
        self.close()
        for suffix in ("", "-wal", "-shm"):
            (self.directory / (FILE + suffix)).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()

    def _count(self, delta: int) -> None:
        """Add a committed write's change to the number of live texts."""
        with self._counting:
            self._live += delta

    def _check_open(self) -> None:
        if self._closed:
            raise closed(self.meta)

    def __repr__(self) -> str:
        m = self.meta
        return f"LexicalIndex({m.collection!r}/{m.version!r}/{m.kind!r}, n={len(self)})"
