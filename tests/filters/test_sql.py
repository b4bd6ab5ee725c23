"""The SQL translations agree with the Python one (``match.py``) on records of every JSON type, in
SQLite and in a real PostgreSQL: the same ids for the same filter."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import psycopg
import pytest
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch.filters import matches, parse_filter, predicate

VALUES: list[Any] = [None, True, False, 0, 1, 1.0, 2.5, -3, 2020, "1", "en", "nl", "", [1, 2], {"x": 1}]
RECORDS = {
    f"r{i}": {
        **({"v": VALUES[i % len(VALUES)]} if i % 7 else {}),
        "w": VALUES[(i * 5) % len(VALUES)],
        "it's": i % 3,
    }
    for i in range(60)
}
FILTERS: list[dict[str, Any]] = [
    {"v": 1},
    {"v": 1.0},
    {"v": True},
    {"v": False},
    {"v": "1"},
    {"v": "en"},
    {"v": ""},
    {"v": {"in": [1, "en", False]}},
    {"v": {"gt": 0}},
    {"v": {"gte": 1, "lt": 2020}},
    {"v": {"lte": -3}},
    {"v": {"exists": True}},
    {"v": {"exists": False}},
    {"not": {"v": 1}},
    {"or": [{"v": "nl"}, {"w": {"gte": 2}}]},
    {"and": [{"v": {"exists": True}}, {"not": {"w": {"in": ["en", 0]}}}]},
    {"it's": 2},
    {"missing": 1},
    {"not": {"missing": {"gt": 1}}},
    {"w": {"eq": 2.5}, "v": {"exists": False}},
]


def expected(raw: dict[str, Any]) -> set[str]:
    tree = parse_filter(raw)
    return {rid for rid, fields in RECORDS.items() if matches(tree, fields)}


def test_python_semantics() -> None:
    assert expected({"v": 1}) == expected({"v": 1.0})
    assert not expected({"v": 1}) & expected({"v": True})
    assert not expected({"v": "1"}) & expected({"v": 1})
    assert expected({"missing": 1}) == set()
    assert expected({"not": {"missing": {"gt": 1}}}) == set(RECORDS)


@pytest.mark.parametrize("raw", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_sqlite_agrees_with_python(raw: dict[str, Any]) -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE records(id TEXT, fields TEXT)")
    db.executemany("INSERT INTO records VALUES (?, ?)", [(k, json.dumps(v)) for k, v in RECORDS.items()])
    found = predicate(parse_filter(raw), "sqlite", "fields")
    got = {rid for (rid,) in db.execute(f"SELECT id FROM records WHERE {found.sql}", found.params)}
    assert got == expected(raw)


def test_postgres_agrees_with_python(pg_uri: str) -> None:  # noqa: F811 - fixture
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE records(id text, fields text)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO records VALUES (%s, %s)", [(k, json.dumps(v)) for k, v in RECORDS.items()]
            )
        for raw in FILTERS:
            found = predicate(parse_filter(raw), "postgres", "fields::jsonb")
            rows = conn.execute(f"SELECT id FROM records WHERE {found.sql}", found.params).fetchall()
            assert {rid for (rid,) in rows} == expected(raw), raw
