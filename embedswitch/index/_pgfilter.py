"""The SQL of a restricted ``pgvector`` search: a filter, exclusions, exact scoring, a wider ``ef``.

The filter is pushed down into the search itself: a ``jsonb`` predicate on the fields of the row's
record in the store's records table (``es_records``, in the same database, looked up by primary
key) in the ``WHERE`` of the ranked query. With the HNSW index PostgreSQL runs it as an iterative
index scan (pgvector >= 0.8, ``hnsw.iterative_scan``): rows come in distance order, the predicate
drops those not allowed, and the scan goes on until ``k`` rows pass or ``hnsw.max_scan_tuples``
rows were read. When it stops short of ``k`` the
search runs again exactly (``exact``): every allowed row scored and sorted, so a search returns
``k`` hits whenever ``k`` allowed rows exist. An index whose database holds no records table (an
index host that is not a store), or a caller that knows only ids, restricts by id instead.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from embedswitch.filters import Filter, predicate

RECORDS = "es_records"
"""The PostgreSQL store's records table: ``(collection, kind, id, text, fields, seq, vector)``, the
fields a JSON text (cast to ``jsonb`` here)."""
HAS_RECORDS = f"SELECT to_regclass('{RECORDS}') IS NOT NULL"


def statement(
    table: str,
    *,
    where: Filter | None,
    by_ids: bool,
    excluding: bool,
    exact: bool,
) -> tuple[str, dict[str, Any]]:
    """The ranked query on ``table`` and the filter's own parameters; the caller adds ``q``, ``k``,
    and ``collection``/``kind`` (``where``), ``allowed`` (``by_ids``) and ``excluded``.

    Searching the HNSW index, the filter is a correlated subquery on the row's record (a primary
    key lookup): PostgreSQL never turns that into a join, so the index scan always drives, in
    distance order, and stops once ``k`` rows passed. (As a join, with no statistics to estimate a
    ``jsonb`` predicate by, the planner may put the records outside and run one index scan per
    matching record.) An exact search joins the records and lets the planner order the join."""
    t = sql.Identifier(table).as_string(None)
    conds = ["t.embedding IS NOT NULL"]
    joins, params = "", {}
    if where is not None:
        found = predicate(where, "postgres", "r.fields::jsonb")
        params = found.params
        mine = "r.collection = %(collection)s AND r.kind = %(kind)s AND r.id = t.id"
        if exact:
            joins = f" JOIN {RECORDS} r ON {mine}"
            conds.append(found.sql)
        else:
            conds.append(f"COALESCE((SELECT {found.sql} FROM {RECORDS} r WHERE {mine}), false)")
    if by_ids:
        conds.append("t.id = ANY(%(allowed)s)")
    if excluding:
        conds.append("t.id <> ALL(%(excluded)s)")
    # ``+ 0`` keeps the HNSW index out of an exact search: it orders by an expression it can't serve
    order = "(t.embedding <#> %(q)b) + 0" if exact else "distance"
    text = (
        f"SELECT t.id, t.embedding <#> %(q)b AS distance FROM {t} t{joins} "
        f"WHERE {' AND '.join(conds)} ORDER BY {order} LIMIT %(k)s"
    )
    return text, params


EXACT_SETTINGS = "SELECT set_config('enable_seqscan', 'on', true)"
"""Before an exact search: a sequential scan may serve it (the search settings turn it off once
the HNSW index is built)."""
