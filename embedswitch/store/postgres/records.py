"""The PostgreSQL store's records, change log and interactions (``RecordStore``).

A part of ``PostgresStore`` (a mixin over its pool), kept apart so that each module stays one
noun. The log order rests on one rule: a write locks its collection's row before it reads
anything, and takes its seqs from that row's ``head_seq`` (``UPDATE ... RETURNING``) in the same
transaction, so writes to one collection commit one after another in seq order, and a reader never
sees seq ``n + 1`` before seq ``n``. (A SEQUENCE would hand out seqs in one order and let the
transactions commit in another: a reader past ``n + 1`` would never see ``n``.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from ... import _json
from ..._errors import CollectionNotFound, InvalidRequest, RecordNotFound
from ...filters import Filter
from .._filtered import ids_query, page_query
from ..base import Change, Interaction, NewInteraction, NewRecord, Record, RecordKey, WriteResult
from .listener import LOG, Wakeups

Conn = Any  # a psycopg connection
Stored = tuple[str, str, bytes | None]  # a record's (text, fields as JSON, vector)

_IN_KEYS = "(kind, id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"


def _no_nul(rec: NewRecord, text: str) -> None:
    if "\x00" in text or "\x00" in rec.id or "\x00" in rec.kind:
        raise InvalidRequest(
            f"record {rec.kind!r}/{rec.id!r} holds a NUL character, which PostgreSQL cannot store "
            "in text; remove it (nothing was stored)",
            kind=rec.kind,
            id=rec.id,
        )


def _keys(keys: Sequence[RecordKey]) -> tuple[list[str], list[str]]:
    return [kind for kind, _ in keys], [rid for _, rid in keys]


class PostgresRecords:
    """``RecordStore`` over the store's connections."""

    _tx: Callable[[], AbstractContextManager[Conn]]
    _fetch: Callable[[str, Sequence[Any] | Mapping[str, Any]], list[tuple[Any, ...]]]
    _wakeups: Wakeups

    # -- the log's order: overridden only by a test that shows what breaks without it ---------

    def _lock_head(self, conn: Conn, collection: str) -> int:
        """Lock the collection's row for this transaction; its head seq."""
        row = conn.execute(
            "SELECT head_seq FROM es_collections WHERE name = %s FOR NO KEY UPDATE", (collection,)
        ).fetchone()
        if row is None:
            raise CollectionNotFound(collection)
        return int(row[0])

    def _allocate(self, conn: Conn, collection: str, count: int) -> int:
        """Take ``count`` seqs under the row lock; the last of them (the new head)."""
        (head,) = conn.execute(
            "UPDATE es_collections SET head_seq = head_seq + %s WHERE name = %s RETURNING head_seq",
            (count, collection),
        ).fetchone()
        return int(head)

    # -- writes -----------------------------------------------------------------------------------

    def write(
        self, collection: str, upserts: Sequence[NewRecord], deletes: Sequence[RecordKey]
    ) -> WriteResult:
        rows = []
        for rec in upserts:
            text = rec.text or ""
            _no_nul(rec, text)
            fields = json.dumps(dict(rec.fields), separators=(",", ":"), sort_keys=True)
            vector = None if rec.vector is None else np.asarray(rec.vector, np.float32).tobytes()
            rows.append((rec.kind, rec.id, (text, fields, vector)))
        with self._tx() as conn:
            head = self._lock_head(conn, collection)
            state: dict[RecordKey, Stored | None] = dict(
                self._stored(conn, collection, [(k, i) for k, i, _ in rows] + list(deletes))
            )
            changes: list[tuple[str, str, str, Stored | None]] = []  # (op, kind, id, new state)
            for kind, rid, new in rows:
                if state.get((kind, rid)) != new:
                    state[(kind, rid)] = new
                    changes.append(("upsert", kind, rid, new))
            for kind, rid in deletes:
                if state.get((kind, rid)) is None:
                    raise RecordNotFound(
                        f"collection {collection!r} has no {kind!r} record {rid!r}; nothing was deleted",
                        collection=collection,
                        kind=kind,
                        id=rid,
                    )
                state[(kind, rid)] = None
                changes.append(("delete", kind, rid, None))
            if changes:
                head = self._allocate(conn, collection, len(changes))
                self._apply(conn, collection, head - len(changes) + 1, changes, state)
                conn.execute("SELECT pg_notify(%s, %s)", (LOG, collection))
        if changes:
            self._wakeups.log_changed(collection)
        return WriteResult(count=len(upserts) + len(deletes), changed=len(changes), seq=head)

    @staticmethod
    def _stored(conn: Conn, collection: str, keys: Sequence[RecordKey]) -> Iterator[tuple[RecordKey, Stored]]:
        if not keys:
            return
        kinds, ids = _keys(keys)
        for kind, rid, text, fields, vector in conn.execute(
            f"SELECT kind, id, text, fields, vector FROM es_records WHERE collection = %s AND {_IN_KEYS}",
            (collection, kinds, ids),
        ):
            yield (kind, rid), (text, fields, vector)

    @staticmethod
    def _apply(
        conn: Conn,
        collection: str,
        first: int,
        changes: list[tuple[str, str, str, Stored | None]],
        state: dict[RecordKey, Stored | None],
    ) -> None:
        """Log ``changes`` from seq ``first`` on, and store each changed record's last state."""
        seqs = list(range(first, first + len(changes)))
        conn.execute(
            "INSERT INTO es_log(collection, seq, op, kind, id, text, vector) SELECT %s, * FROM "
            "unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[])",
            (
                collection,
                seqs,
                [op for op, *_ in changes],
                [kind for _, kind, _, _ in changes],
                [rid for _, _, rid, _ in changes],
                [None if new is None else new[0] for *_, new in changes],
                [None if new is None else new[2] for *_, new in changes],
            ),
        )
        last = {(kind, rid): seq for seq, (_, kind, rid, _) in zip(seqs, changes, strict=True)}
        gone = [key for key in last if state[key] is None]
        kept = [
            (kind, rid, *new, seq)
            for (kind, rid), seq in last.items()
            if (new := state[(kind, rid)]) is not None
        ]
        if gone:
            conn.execute(
                f"DELETE FROM es_records WHERE collection = %s AND {_IN_KEYS}", (collection, *_keys(gone))
            )
        if kept:
            conn.execute(
                "INSERT INTO es_records(collection, kind, id, text, fields, vector, seq) SELECT %s, * FROM "
                "unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[], %s::bigint[]) "
                "ON CONFLICT (collection, kind, id) DO UPDATE SET text = EXCLUDED.text, "
                "fields = EXCLUDED.fields, seq = EXCLUDED.seq, vector = EXCLUDED.vector",
                (collection, *(list(column) for column in zip(*kept, strict=True))),
            )

    def add_interactions(self, collection: str, rows: Sequence[NewInteraction]) -> WriteResult:
        now = time.time()
        with self._tx() as conn:
            head = self._lock_head(conn, collection)
            items = sorted({r.item for r in rows})
            found = {
                rid
                for (rid,) in conn.execute(
                    "SELECT id FROM es_records WHERE collection = %s AND kind = 'item' "
                    "AND id = ANY(%s::text[])",
                    (collection, items),
                )
            }
            missing = [i for i in items if i not in found]
            if missing:
                raise RecordNotFound(
                    f"{len(missing)} interactions name items that do not exist "
                    f"(e.g. {', '.join(missing[:3])}); upsert them as records of kind 'item' first. "
                    "Nothing was stored",
                    collection=collection,
                )
            if rows:
                head = self._allocate(conn, collection, len(rows))
                seqs = list(range(head - len(rows) + 1, head + 1))
                users = [r.user for r in rows]
                conn.execute(
                    "INSERT INTO es_log(collection, seq, op, kind, id) "
                    "SELECT %s, seq, 'interact', 'user', id "
                    "FROM unnest(%s::bigint[], %s::text[]) AS u(seq, id)",
                    (collection, seqs, users),
                )
                conn.execute(
                    "INSERT INTO es_interactions(collection, seq, user_id, item, weight, ts) SELECT %s, * "
                    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::float8[])",
                    (
                        collection,
                        seqs,
                        users,
                        [r.item for r in rows],
                        [float(r.weight) for r in rows],
                        [now if r.ts is None else float(r.ts) for r in rows],
                    ),
                )
                conn.execute("SELECT pg_notify(%s, %s)", (LOG, collection))
        if rows:
            self._wakeups.log_changed(collection)
        return WriteResult(count=len(rows), changed=len(rows), seq=head)

    def prune_log(self, collection: str, upto_seq: int) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM es_log WHERE collection = %s AND seq <= %s", (collection, upto_seq)
            )
            return int(cur.rowcount)

    # -- reads ------------------------------------------------------------------------------------

    def head_seq(self, collection: str) -> int:
        rows = self._fetch("SELECT head_seq FROM es_collections WHERE name = %s", (collection,))
        return int(rows[0][0]) if rows else 0

    def get_records(self, collection: str, keys: Sequence[RecordKey]) -> dict[RecordKey, Record]:
        if not keys:
            return {}
        rows = self._fetch(
            "SELECT kind, id, text, fields, seq, vector FROM es_records "
            f"WHERE collection = %s AND {_IN_KEYS}",
            (collection, *_keys(keys)),
        )
        return {(k, i): Record(k, i, t, _json.loads(f), s, v) for k, i, t, f, s, v in rows}

    def get_fields(self, collection: str, kind: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        rows = self._fetch(
            "SELECT id, fields FROM es_records WHERE collection = %s AND kind = %s AND id = ANY(%s)",
            (collection, kind, list(ids)),
        )
        return {rid: _json.loads(fields) for rid, fields in rows}

    def count_records(self, collection: str) -> dict[str, int]:
        rows = self._fetch(
            "SELECT kind, COUNT(*) FROM es_records WHERE collection = %s GROUP BY kind", (collection,)
        )
        return {kind: int(n) for kind, n in rows}

    def record_ids(self, collection: str, kind: str, where: Filter) -> set[str]:
        return {rid for (rid,) in self._fetch(*ids_query("postgres", collection, kind, where))}

    def list_records(
        self, collection: str, kind: str, after: str | None, limit: int, where: Filter | None = None
    ) -> list[Record]:
        rows = self._fetch(*page_query("postgres", collection, kind, after, limit, where))
        return [Record(k, i, t, _json.loads(f), s, v) for k, i, t, f, s, v in rows]

    def read_log(self, collection: str, after: int, limit: int) -> list[Change]:
        rows = self._fetch(
            "SELECT seq, op, kind, id, text, vector FROM es_log WHERE collection = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (collection, after, limit),
        )
        return [Change(*row) for row in rows]

    def scan_records(
        self, collection: str, upto_seq: int, after: RecordKey | None, limit: int
    ) -> list[Record]:
        kind, rid = after if after else ("", "")
        rows = self._fetch(
            "SELECT kind, id, text, fields, seq, vector FROM es_records WHERE collection = %s "
            "AND (kind, id) > (%s, %s) AND seq <= %s ORDER BY kind, id LIMIT %s",
            (collection, kind, rid, upto_seq, limit),
        )
        return [Record(k, i, t, _json.loads(f), s, v) for k, i, t, f, s, v in rows]

    def seen_items(self, collection: str, user: str) -> set[str]:
        rows = self._fetch(
            "SELECT DISTINCT item FROM es_interactions WHERE collection = %s AND user_id = %s",
            (collection, user),
        )
        return {item for (item,) in rows}

    def user_histories(
        self, collection: str, users: Sequence[str]
    ) -> dict[str, list[tuple[str, float, float]]]:
        out: dict[str, list[tuple[str, float, float]]] = {}
        for user, item, weight, ts in self._fetch(
            "SELECT user_id, item, weight, ts FROM es_interactions "
            "WHERE collection = %s AND user_id = ANY(%s::text[]) ORDER BY seq",
            (collection, list(users)),
        ):
            out.setdefault(user, []).append((item, weight, ts))
        return out

    def users_of_items(self, collection: str, items: Sequence[str]) -> set[str]:
        rows = self._fetch(
            "SELECT DISTINCT user_id FROM es_interactions WHERE collection = %s AND item = ANY(%s::text[])",
            (collection, list(items)),
        )
        return {user for (user,) in rows}

    def interaction_users(self, collection: str) -> list[str]:
        rows = self._fetch(
            "SELECT DISTINCT user_id FROM es_interactions WHERE collection = %s ORDER BY user_id",
            (collection,),
        )
        return [user for (user,) in rows]

    def scan_interactions(self, collection: str, upto_seq: int) -> list[Interaction]:
        rows = self._fetch(
            "SELECT i.user_id, i.item, i.weight, i.ts FROM es_interactions i JOIN es_records r "
            "ON r.collection = i.collection AND r.kind = 'item' AND r.id = i.item "
            "WHERE i.collection = %s AND i.seq <= %s ORDER BY i.seq",
            (collection, upto_seq),
        )
        return [Interaction(user, item, weight, ts) for user, item, weight, ts in rows]

    def popular_items(self, collection: str, limit: int) -> list[str]:
        rows = self._fetch(
            "SELECT i.item FROM es_interactions i JOIN es_records r ON r.collection = i.collection "
            "AND r.kind = 'item' AND r.id = i.item WHERE i.collection = %s "
            "GROUP BY i.item ORDER BY SUM(i.weight) DESC, i.item LIMIT %s",
            (collection, limit),
        )
        return [item for (item,) in rows]
