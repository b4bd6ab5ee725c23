"""The records API of one collection: pages in id order behind a cursor, batch get, batch delete
and delete by filter. Every delete is a write to the change log, like ``DELETE .../records/{id}``,
so every version (building ones included) applies it in seq order.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence

from ._errors import InvalidRequest, RecordNotFound
from .collection import Collection
from .results import DeletedAck, RecordOut, RecordsOut, RecordsPageOut
from .specs import MAX_BATCH, DeleteWhere, KindArg, RecordIds, RecordsPage, parse
from .store.base import Record

_CURSOR = "r1"
"""The cursor format: base64url of JSON ``["r1", kind, last id]``."""


def encode_cursor(kind: str, last_id: str) -> str:
    raw = json.dumps([_CURSOR, kind, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> str:
    """The last id of the page ``cursor`` ends; ``InvalidRequest`` for one this API did not give
    for records of ``kind``."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raw = None
    if not (isinstance(raw, list) and len(raw) == 3 and raw[0] == _CURSOR and isinstance(raw[2], str)):
        raise InvalidRequest(
            'cursor is not one this API returned; pass the "cursor" of the previous page as it came, '
            "or leave it out to start from the first record"
        )
    if raw[1] != kind:
        raise InvalidRequest(
            f'cursor pages through records of kind {raw[1]!r}, not {kind!r}; send "kind": {raw[1]!r} '
            "with it, or leave the cursor out to start over"
        )
    return str(raw[2])


def record_out(record: Record, fields: Sequence[str] | None) -> RecordOut:
    shown = record.fields if fields is None else {f: record.fields[f] for f in fields if f in record.fields}
    return RecordOut(id=record.id, kind=record.kind, text=record.text, fields=shown, seq=record.seq)


class Records:
    """The records API of ``collection``; ``admit`` is the engine's backpressure check, run before
    each delete (``Overloaded`` while a serving version lags too far)."""

    def __init__(self, collection: Collection, admit: Callable[[], None]) -> None:
        self.collection = collection
        self._admit = admit
        self._store = collection.store

    def one(self, id: str, kind: str) -> RecordOut:
        parse(KindArg, {"kind": kind})
        found = self._store.get_records(self.collection.name, [(kind, id)]).get((kind, id))
        if found is None:
            raise self._missing(kind, id)
        return record_out(found, None)

    def page(self, request: RecordsPage) -> RecordsPageOut:
        """Up to ``limit`` records of ``kind`` matching ``filter``, in id order, after ``cursor``;
        the answer's ``cursor`` continues (None on the last page)."""
        after = decode_cursor(request.cursor, request.kind) if request.cursor is not None else None
        name, kind = self.collection.name, request.kind
        rows = self._store.list_records(name, kind, after, request.limit + 1, request.filter)
        more = len(rows) > request.limit
        rows = rows[: request.limit]
        cursor = encode_cursor(kind, rows[-1].id) if more else None
        return RecordsPageOut(records=[record_out(r, request.fields) for r in rows], cursor=cursor)

    def get(self, request: RecordIds) -> RecordsOut:
        """The records asked for, in the order asked; ``missing``: the ids not stored."""
        keys = [(request.kind, id_) for id_ in dict.fromkeys(request.ids)]
        found = self._store.get_records(self.collection.name, keys)
        return RecordsOut(
            records=[record_out(found[key], None) for key in keys if key in found],
            missing=[id_ for kind, id_ in keys if (kind, id_) not in found],
        )

    def delete(self, request: RecordIds) -> DeletedAck:
        """Delete the records of ``ids`` that are stored, in one write (all or none); ``count``: how many."""
        keys = [(request.kind, id_) for id_ in dict.fromkeys(request.ids)]
        present = self._store.get_records(self.collection.name, keys)
        return self._delete([key for key in keys if key in present], more=False)

    def delete_where(self, request: DeleteWhere) -> DeletedAck:
        """Delete the records of ``kind`` matching ``filter``, at most ``MAX_BATCH`` in one write (those
        first in id order); ``more``: whether matching records remain (call again)."""
        name, kind = self.collection.name, request.kind
        rows = self._store.list_records(name, kind, None, MAX_BATCH + 1, request.filter)
        keys = [(kind, r.id) for r in rows[:MAX_BATCH]]
        return self._delete(keys, more=len(rows) > MAX_BATCH)

    def _delete(self, keys: list[tuple[str, str]], more: bool) -> DeletedAck:
        if not keys:
            return DeletedAck(count=0, seq=self.collection.head_seq(), more=more)
        self._admit()
        result = self._store.write(self.collection.name, [], keys)
        return DeletedAck(count=len(keys), seq=result.seq, more=more)

    def _missing(self, kind: str, id: str) -> RecordNotFound:
        name = self.collection.name
        return RecordNotFound(
            f"collection {name!r} has no {kind!r} record {id!r}", collection=name, kind=kind, id=id
        )
