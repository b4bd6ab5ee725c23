"""A filter as a SQL predicate over a column of JSON fields: SQLite (``json_type``/``json_extract``
on text) or PostgreSQL (``jsonb``). Values travel as parameters, never in the SQL text.

Each leaf is wrapped in ``COALESCE(..., false)``, so a missing field gives false, never NULL, and
``NOT`` keeps the meaning ``ast.py`` states. A field's path is a parameter too: a SQLite JSON path
of quoted keys (``$."meta"."lang"``; the grammar lets no quote or backslash into a key) or a
PostgreSQL ``text[]`` for ``#>``/``#>>``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from .ast import And, Eq, Exists, Filter, In, Not, Or, Range, Scalar, path_of

Dialect = Literal["sqlite", "postgres"]
_SQL_OP = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True)
class Predicate:
    """A boolean SQL expression and its named parameters (``:f0`` for SQLite, ``%(f0)s`` for
    psycopg), named ``f0``, ``f1``, ... so they never clash with the query's own."""

    sql: str
    params: dict[str, Any]


def predicate(node: Filter, dialect: Dialect, fields: str) -> Predicate:
    """``node`` as a predicate on ``fields``, the SQL expression of a record's fields (text JSON
    for SQLite, ``jsonb`` for PostgreSQL)."""
    params: dict[str, Any] = {}
    build = _Sqlite(fields, params) if dialect == "sqlite" else _Postgres(fields, params)
    return Predicate(build.node(node), params)


class _Build(ABC):
    def __init__(self, fields: str, params: dict[str, Any]) -> None:
        self.f, self.params = fields, params

    def p(self, value: Any) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return self.mark(name)

    @staticmethod
    def mark(name: str) -> str:
        return f":{name}"

    def node(self, node: Filter) -> str:
        if isinstance(node, And):
            return "(" + " AND ".join(self.node(part) for part in node.parts) + ")"
        if isinstance(node, Or):
            return "(" + " OR ".join(self.node(part) for part in node.parts) + ")"
        if isinstance(node, Not):
            return f"(NOT {self.node(node.part)})"
        if isinstance(node, Eq):
            return f"COALESCE({self.eq(node.field, node.value)}, false)"
        if isinstance(node, In):
            return f"COALESCE({self.in_(node.field, node.values)}, false)"
        if isinstance(node, Range):
            return f"COALESCE({self.range(node)}, false)"
        assert isinstance(node, Exists)
        return f"COALESCE({self.exists(node.field)}, false)"

    @abstractmethod
    def eq(self, field: str, value: Scalar) -> str: ...

    @abstractmethod
    def in_(self, field: str, values: tuple[Scalar, ...]) -> str: ...

    @abstractmethod
    def range(self, node: Range) -> str: ...

    @abstractmethod
    def exists(self, field: str) -> str: ...


class _Sqlite(_Build):
    def path(self, field: str) -> str:
        return self.p("$" + "".join(f'."{key}"' for key in path_of(field)))

    def type_(self, field: str) -> str:
        return f"json_type({self.f}, {self.path(field)})"

    def value(self, field: str) -> str:
        return f"json_extract({self.f}, {self.path(field)})"

    def eq(self, field: str, value: Scalar) -> str:
        if isinstance(value, bool):
            return f"{self.type_(field)} = '{'true' if value else 'false'}'"
        types = "'text'" if isinstance(value, str) else "'integer', 'real'"
        return f"({self.type_(field)} IN ({types}) AND {self.value(field)} = {self.p(value)})"

    def in_(self, field: str, values: tuple[Scalar, ...]) -> str:
        return "(" + " OR ".join(f"COALESCE({self.eq(field, v)}, false)" for v in values) + ")"

    def range(self, node: Range) -> str:
        kind = self.type_(node.field)
        value = self.value(node.field)
        checks = " AND ".join(f"{value} {_SQL_OP[op]} {self.p(b)}" for op, b in node.bounds())
        return f"({kind} IN ('integer', 'real') AND {checks})"

    def exists(self, field: str) -> str:
        return f"{self.type_(field)} <> 'null'"


class _Postgres(_Build):
    @staticmethod
    def mark(name: str) -> str:
        return f"%({name})s"

    def get(self, field: str, op: str = "#>") -> str:
        return self.at(path_of(field), op)

    def at(self, keys: tuple[str, ...], op: str = "#>") -> str:
        return f"({self.f} {op} {self.p(list(keys))}::text[])"

    def leaf(self, field: str, test: str) -> str:
        """``test`` where every step of ``field``'s path is into an object: ``#>`` reads a key
        that looks like an integer as an index into an array, which a path never is (``ast.py``)."""
        keys = path_of(field)
        objects = [
            f"jsonb_typeof({self.at(keys[:i])}) = 'object'"
            for i in range(1, len(keys))
            if any(c.isdigit() for c in keys[i])
        ]
        return f"({' AND '.join([*objects, test])})" if objects else test

    def eq(self, field: str, value: Scalar) -> str:
        return self.leaf(field, f"{self.get(field)} = {self.p(json.dumps(value))}::jsonb")

    def in_(self, field: str, values: tuple[Scalar, ...]) -> str:
        test = f"{self.get(field)} = ANY({self.p([json.dumps(v) for v in values])}::jsonb[])"
        return self.leaf(field, test)

    def range(self, node: Range) -> str:
        # CASE: the cast to numeric runs only on numbers (AND may evaluate in any order)
        kind = f"jsonb_typeof({self.get(node.field)})"
        value = f"{self.get(node.field, '#>>')}::numeric"
        checks = " AND ".join(f"{value} {_SQL_OP[op]} {self.p(b)}::numeric" for op, b in node.bounds())
        return self.leaf(node.field, f"CASE WHEN {kind} = 'number' THEN {checks} ELSE false END")

    def exists(self, field: str) -> str:
        return self.leaf(field, f"jsonb_typeof({self.get(field)}) <> 'null'")
