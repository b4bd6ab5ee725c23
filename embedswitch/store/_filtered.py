"""The records queries that take a filter, for both stores: the matching ids (what an in-process
index searches among) and a page of records in id order (the records API's scroll)."""

from __future__ import annotations

from typing import Any

from ..filters import Filter, Predicate, predicate
from ..filters.sql import Dialect

_TABLE = {"sqlite": "records", "postgres": "es_records"}
_FIELDS = {"sqlite": "fields", "postgres": "fields::jsonb"}


def _mark(dialect: Dialect, name: str) -> str:
    return f":{name}" if dialect == "sqlite" else f"%({name})s"


def _where(dialect: Dialect, collection: str, kind: str, where: Filter | None) -> Predicate:
    found = predicate(where, dialect, _FIELDS[dialect]) if where is not None else None
    conds = [f"collection = {_mark(dialect, 'collection')}", f"kind = {_mark(dialect, 'kind')}"]
    if found is not None:
        conds.append(found.sql)
    params: dict[str, Any] = {"collection": collection, "kind": kind, **(found.params if found else {})}
    return Predicate(" AND ".join(conds), params)


def ids_query(dialect: Dialect, collection: str, kind: str, where: Filter) -> tuple[str, dict[str, Any]]:
    """``SELECT id`` of the live records of ``kind`` matching ``where``."""
    found = _where(dialect, collection, kind, where)
    return f"SELECT id FROM {_TABLE[dialect]} WHERE {found.sql}", found.params


def page_query(
    dialect: Dialect, collection: str, kind: str, after: str | None, limit: int, where: Filter | None
) -> tuple[str, dict[str, Any]]:
    """``SELECT kind, id, text, fields, seq, vector`` of up to ``limit`` live records of ``kind``
    matching ``where``, ids after ``after``, in id order."""
    found = _where(dialect, collection, kind, where)
    after_sql = f" AND id > {_mark(dialect, 'after')}" if after is not None else ""
    text = (
        f"SELECT kind, id, text, fields, seq, vector FROM {_TABLE[dialect]} WHERE {found.sql}{after_sql} "
        f"ORDER BY id LIMIT {_mark(dialect, 'limit')}"
    )
    return text, {**found.params, "after": after, "limit": limit}
