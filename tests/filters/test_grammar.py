"""The filter grammar: JSON in, the typed tree out, and a message naming the field and the fix for
every mistake."""

from __future__ import annotations

from typing import Any

import pytest

from embedswitch.filters import And, Eq, Exists, In, Not, Or, Range, parse_filter, to_json
from embedswitch.filters.ast import path_of
from embedswitch.filters.grammar import MAX_DEPTH, SCHEMA


def test_the_issue_example() -> None:
    found = parse_filter({"team": "security", "year": {"gte": 2020}, "lang": {"in": ["en", "nl"]}})
    assert found == And((Eq("team", "security"), Range("year", gte=2020), In("lang", ("en", "nl"))))


def test_every_operator_and_connective() -> None:
    raw = {
        "or": [{"a": {"eq": 1}}, {"b": True}],
        "not": {"c": {"exists": True}},
        "d": {"gt": 1, "lte": 5.5},
        "e": {"exists": False},
    }
    assert parse_filter(raw) == And(
        (
            Or((Eq("a", 1), Eq("b", True))),
            Not(Exists("c")),
            Range("d", gt=1, lte=5.5),
            Not(Exists("e")),
        )
    )


def test_a_dotted_field_is_a_path_into_nested_objects() -> None:
    found = parse_filter({"meta.lang": "en", "meta.year": {"gte": 2020}})
    assert found == And((Eq("meta.lang", "en"), Range("meta.year", gte=2020)))
    assert path_of("meta.lang") == ("meta", "lang") and path_of("team") == ("team",)


@pytest.mark.parametrize(
    "raw",
    [
        {"team": "security"},
        {"meta.lang": {"in": ["en"]}, "not": {"a.b.c": {"exists": True}}},
        {"year": {"gte": 2020, "lt": 2030}},
        {"and": [{"a": 1}, {"or": [{"b": "x"}, {"not": {"c": {"in": [1, "two", False]}}}]}]},
    ],
)
def test_json_round_trips(raw: dict[str, Any]) -> None:
    tree = parse_filter(raw)
    assert parse_filter(to_json(tree)) == tree


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        ({"year": {"gtee": 2020}}, ("year", "unknown operator 'gtee'", "gte")),
        ({"year": {"gte": "2020"}}, ("year.gte", "numbers", "a string", "epoch")),
        ({"year": {"lt": True}}, ("year.lt", "a boolean")),
        ({"team": None}, ("team", '"exists": false')),
        ({"team": ["a", "b"]}, ("team", '"in"')),
        ({"team": {}}, ("team", "operator")),
        ({"lang": {"in": []}}, ("lang.in", "list of 1")),
        ({"lang": {"in": "en"}}, ("lang.in", "list")),
        ({"flag": {"exists": 1}}, ("flag.exists", "true or false")),
        ({"and": {"a": 1}}, ("and", "list of filters")),
        ({"or": []}, ("or", "list of filters")),
        ({"not": [{"a": 1}]}, ("not", "JSON object")),
        ({}, ("empty", 'leave "filter" out')),
        ([{"a": 1}], ("JSON object", "a list")),
        ({'bad"name': 1}, ("bad", "quotes")),
        ({"n": 2**70}, ("n", "2^63")),
        ({"a..b": 1}, ("'a..b'", "empty key", "two dots")),
        ({"or": [{".a": 1}]}, ("or[0]..a", "'.a'", "empty key")),
        ({"a.": {"gte": 1}}, ("'a.'", "empty key")),
    ],
)
def test_mistakes_name_the_field_and_the_fix(raw: Any, mentions: tuple[str, ...]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_filter(raw)
    for word in mentions:
        assert word in str(caught.value), (word, str(caught.value))


def test_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH + 1):
        deep = {"not": deep}
    with pytest.raises(ValueError, match="nest at most"):
        parse_filter(deep)


def test_the_schema_documents_every_operator() -> None:
    condition = SCHEMA["additionalProperties"]["anyOf"][1]
    assert set(condition["properties"]) == {"eq", "in", "gt", "gte", "lt", "lte", "exists"}
    assert set(SCHEMA["properties"]) == {"and", "or", "not"}
