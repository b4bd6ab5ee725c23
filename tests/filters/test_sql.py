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
ODD_KEYS = ["it's", "0", "-1", " 1", "x[0]", "$", "a b", "*"]
"""Keys that must stay keys in every translation: quotes, integers an array index would take,
JSON path syntax."""


def nested(i: int) -> Any:
    """What ``"m"`` holds: objects (with odd keys), arrays (of objects too) and scalars, nested."""
    k = i // 5
    inner = {"lang": VALUES[k % len(VALUES)], ODD_KEYS[k % len(ODD_KEYS)]: k % 4}
    shapes = [
        {"a": inner, "n": i % 5},
        {"a": [inner], "0": {"b": i % 2}},
        [{"a": inner}, 1, 2],
        {"a": {"a": inner}},
        VALUES[i % len(VALUES)],
    ]
    return shapes[i % len(shapes)]


RECORDS = {
    f"r{i}": {
        **({"v": VALUES[i % len(VALUES)]} if i % 7 else {}),
        "w": VALUES[(i * 5) % len(VALUES)],
        "it's": i % 3,
        **({"m": nested(i)} if i % 11 else {}),
        "d.k": i % 2,  # a key holding a dot: a filter can't name it
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
    {"m.a.lang": "en"},
    {"m.a.lang": {"in": [1, "nl", True]}},
    {"m.a.lang": {"gte": 0, "lt": 2.6}},
    {"m.a.lang": {"exists": True}},
    {"not": {"m.a.lang": {"exists": True}}},
    {"m.a": {"exists": True}},
    {"m.n": {"gt": 1}},
    {"m.0.b": 1},
    {"m.0": {"exists": True}},
    {"m.0.a.lang": {"exists": True}},
    {"m.a.0.lang": {"exists": True}},
    {"m.a.0": {"exists": True}},
    {"m.a.a.lang": "nl"},
    {"or": [{"m.a.a.lang": {"exists": True}}, {"m.a.lang": False}]},
    *({f"m.a.{key}": {"gte": 2}} for key in ODD_KEYS),
    {"d.k": 1},
    {"d": {"exists": True}},
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
    assert expected({"m.a.lang": "en"}) and expected({"m.a.a.lang": {"exists": True}})
    assert expected({"m.0.b": 1})  # a key "0" of an object is a key
    assert not expected({"m.a.0.lang": {"exists": True}})  # never an index into an array
    assert not expected({"m.0.a.lang": {"exists": True}})
    assert not expected({"d.k": 1})  # a dot separates: the key "d.k" is not reached
    for key in ODD_KEYS:
        assert expected({f"m.a.{key}": {"exists": True}}), key


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
