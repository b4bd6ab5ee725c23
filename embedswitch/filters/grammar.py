"""The JSON filter grammar: parsed into the typed tree of ``ast.py``, written back, documented.

```json
{"team": "security", "year": {"gte": 2020}, "lang": {"in": ["en", "nl"]},
 "or": [{"draft": false}, {"reviewed": {"exists": true}}], "not": {"status": "retired"}}
```

An object's keys are ANDed. A key is a field (a top-level key of a record's fields, or a dotted
path to a nested one: ``"meta.lang"``, ``ast.py`` says how it reads), or ``and``/``or`` (a list of
filters) or ``not`` (one filter). A field's condition is a value (equality: a string, number or
boolean) or an object of operators, ANDed: ``eq``, ``in`` (a list of values),
``gt``/``gte``/``lt``/``lte`` (numbers) and ``exists`` (true or false). Every mistake is a
``ValueError`` naming where it is and the fix.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from .ast import And, Eq, Exists, Filter, In, Not, Or, Range, Scalar, path_of

MAX_DEPTH = 16
MAX_NODES = 256
MAX_IN = 1024
MAX_FIELD_CHARS = 256
MAX_NUMBER = 2**63 - 1
"""The largest integer a filter compares: what SQLite holds."""
RANGES = ("gt", "gte", "lt", "lte")
OPERATORS = ("eq", "in", *RANGES, "exists")
LOGIC = ("and", "or", "not")
EXAMPLE = '{"team": "security", "year": {"gte": 2020}, "lang": {"in": ["en", "nl"]}}'


def parse_filter(raw: Any) -> Filter:
    """The tree of the JSON filter ``raw``; ``ValueError`` naming the field and the fix otherwise."""
    budget = [MAX_NODES]
    return _object(raw, "", 0, budget)


def _object(raw: Any, path: str, depth: int, budget: list[int]) -> Filter:
    if depth >= MAX_DEPTH:
        raise ValueError(f"{_at(path)}filters nest at most {MAX_DEPTH} deep; flatten it")
    if not isinstance(raw, dict):
        raise ValueError(f"{_at(path)}a filter is a JSON object such as {EXAMPLE}, not {_kind(raw)}")
    if not raw:
        raise ValueError(
            f'{_at(path)}empty filter; give at least one condition (e.g. {EXAMPLE}) or leave "filter" out'
        )
    parts: list[Filter] = []
    for key, value in raw.items():
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"{_at(path)}a filter has at most {MAX_NODES} conditions; split the query")
        where = f"{path}.{key}" if path else key
        if key in ("and", "or"):
            if not isinstance(value, list) or not value:
                raise ValueError(
                    f'{where}: "{key}" takes a non-empty list of filters, e.g. [{{"a": 1}}, {{"b": 2}}]'
                )
            found = tuple(_object(item, f"{where}[{i}]", depth + 1, budget) for i, item in enumerate(value))
            parts.append(And(found) if key == "and" else Or(found))
        elif key == "not":
            parts.append(Not(_object(value, where, depth + 1, budget)))
        else:
            parts.extend(_field(key, value, where))
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _field(name: str, value: Any, where: str) -> list[Filter]:
    if not name or len(name) > MAX_FIELD_CHARS or any(c in name for c in '"\\') or not name.isprintable():
        raise ValueError(
            f"{where}: field names in filters have 1 to {MAX_FIELD_CHARS} printable characters, "
            "without quotes or backslashes"
        )
    if "" in path_of(name):
        raise ValueError(
            f"{where}: {name!r} has an empty key; a dot separates the keys of a nested field "
            f'("meta.lang" is fields["meta"]["lang"]), so a field starts and ends with a key and has '
            "no two dots in a row"
        )
    if not isinstance(value, dict):
        return [Eq(name, _scalar(value, where))]
    if not value:
        raise ValueError(f'{where}: give an operator ({", ".join(OPERATORS)}), e.g. {{"gte": 2020}}')
    unknown = [op for op in value if op not in OPERATORS]
    if unknown:
        raise ValueError(
            f"{where}: unknown operator {unknown[0]!r}; use one of {', '.join(OPERATORS)} "
            '(a field that is itself an object is not filterable; "and"/"or"/"not" go outside a field)'
        )
    found: list[Filter] = []
    if "eq" in value:
        found.append(Eq(name, _scalar(value["eq"], f"{where}.eq")))
    if "in" in value:
        values = value["in"]
        if not isinstance(values, list) or not values or len(values) > MAX_IN:
            raise ValueError(f'{where}.in: "in" takes a list of 1 to {MAX_IN} values, e.g. ["en", "nl"]')
        found.append(In(name, tuple(_scalar(v, f"{where}.in[{i}]") for i, v in enumerate(values))))
    bounds = {op: _number(value[op], name, f"{where}.{op}", op) for op in RANGES if op in value}
    if bounds:
        found.append(Range(name, **bounds))
    if "exists" in value:
        exists = value["exists"]
        if not isinstance(exists, bool):
            raise ValueError(f'{where}.exists: "exists" takes true or false, not {_kind(exists)}')
        found.append(Exists(name) if exists else Not(Exists(name)))
    return found


def _scalar(value: Any, where: str) -> Scalar:
    if value is None:
        raise ValueError(
            f'{where}: null matches nothing; for records without the field use {{"exists": false}}'
        )
    if isinstance(value, list | dict):
        raise ValueError(
            f"{where}: compare with a string, number or boolean, not {_kind(value)}"
            + ('; to match one of several values use {"in": [...]}' if isinstance(value, list) else "")
        )
    if isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return _finite(value, where)
    raise ValueError(f"{where}: compare with a string, number or boolean, not {_kind(value)}")


def _number(value: Any, name: str, where: str, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f'{where}: "{op}" compares numbers, not {_kind(value)}; a range on field {name!r} needs a '
            'number (store dates as numbers, e.g. epoch seconds or 20240131), or use "eq"/"in" for strings'
        )
    return _finite(value, where)


def _finite(value: int | float, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number")
    if abs(value) > MAX_NUMBER:
        raise ValueError(f"{where}: {value} is beyond the numbers a filter compares (|n| <= 2^63 - 1)")
    return value


def _at(path: str) -> str:
    return f"{path}: " if path else ""


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else type(value).__name__)


def to_json(node: Filter) -> dict[str, Any]:
    """The JSON of ``node``: ``parse_filter(to_json(f)) == f`` up to how ANDs are grouped."""
    if isinstance(node, And):
        return {"and": [to_json(part) for part in node.parts]}
    if isinstance(node, Or):
        return {"or": [to_json(part) for part in node.parts]}
    if isinstance(node, Not):
        return {"not": to_json(node.part)}
    if isinstance(node, Eq):
        return {node.field: {"eq": node.value}}
    if isinstance(node, In):
        return {node.field: {"in": list(node.values)}}
    if isinstance(node, Range):
        return {node.field: dict(node.bounds())}
    return {node.field: {"exists": True}}


def _validate(value: Any) -> Filter:
    if isinstance(value, Eq | In | Range | Exists | And | Or | Not):
        return value
    return parse_filter(value)


_SCALAR: dict[str, Any] = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
_CONDITION: dict[str, Any] = {
    "type": "object",
    "description": "Operators on one field, ANDed.",
    "properties": {
        "eq": _SCALAR,
        "in": {"type": "array", "items": _SCALAR, "minItems": 1, "maxItems": MAX_IN},
        **{op: {"type": "number"} for op in RANGES},
        "exists": {"type": "boolean"},
    },
    "additionalProperties": False,
    "minProperties": 1,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Filter",
    "description": (
        "Which records may be returned, by their fields. Keys are ANDed; a key is a field "
        "(any top-level key of a record's fields, declared nowhere, or a dotted path to a nested one: "
        '"meta.lang" is fields.meta.lang; a dot always separates keys) with a value (equality) or '
        'an object of operators: eq, in, gt, gte, lt, lte (numbers only), exists; or "and"/"or" '
        '(lists of filters) or "not" (a filter). A field no record has matches nothing. See docs/api.md. '
        f"Example: {EXAMPLE}"
    ),
    "properties": {
        "and": {"type": "array", "items": {"type": "object"}, "minItems": 1},
        "or": {"type": "array", "items": {"type": "object"}, "minItems": 1},
        "not": {"type": "object", "minProperties": 1},
    },
    "additionalProperties": {"anyOf": [_SCALAR, _CONDITION]},
    "minProperties": 1,
}

RecordFilter = Annotated[
    Filter,
    PlainValidator(_validate),
    PlainSerializer(to_json, return_type=dict),
    WithJsonSchema(SCHEMA),
]
"""A request's ``"filter"``: JSON in, the typed tree inside, documented in the OpenAPI schema."""
