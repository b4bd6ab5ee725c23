"""The compiled form of a record filter: a small typed tree, easy to walk.

Every backend translates this tree (never the JSON it came from): ``sql.py`` into a predicate of
SQLite's ``json_type``/``json_extract`` or PostgreSQL's ``jsonb``, ``match.py`` into a Python
check. A later backend (Qdrant, Milvus) adds its own walk over the same seven node types.

Semantics, the same in every translation:

- a field is a path into a record's ``fields``: keys joined by dots, each one level down through
  JSON objects (``"meta.lang"`` is ``fields["meta"]["lang"]``; as in Qdrant, a dot always separates,
  so a key that itself holds a dot can't be named). A path never steps into an array (a key is
  never an index) or through a scalar: there the field is missing;
- ``Eq`` matches a field holding a JSON value of the same type that is equal (numbers by value,
  so ``1`` equals ``1.0``; ``true`` never equals ``1``); ``In`` matches when one of its values does;
- ``Range`` matches a field holding a number (never a string or a boolean) within every bound given;
- ``Exists`` matches a field that is present and not ``null``;
- an array or object held in a field is matched by no ``Eq``/``In``/``Range`` (``"tags": "x"``
  never matches ``["x"]``), only by ``Exists``;
- a field no record has matches no ``Eq``/``In``/``Range``/``Exists`` (and so every ``Not`` of one);
- ``And``/``Or``/``Not`` are two-valued: no "unknown" ever leaks out of a missing field.
"""

from __future__ import annotations

from dataclasses import dataclass

Scalar = str | int | float | bool
"""A value a field may be compared with for equality (JSON ``null`` is not one: use ``exists``)."""


@dataclass(frozen=True)
class Eq:
    field: str
    value: Scalar


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """At least one bound; bounds are numbers."""

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def bounds(self) -> list[tuple[str, float]]:
        """The bounds given, as ``(operator, number)``: ``gt``, ``gte``, ``lt``, ``lte``."""
        found = [("gt", self.gt), ("gte", self.gte), ("lt", self.lt), ("lte", self.lte)]
        return [(op, value) for op, value in found if value is not None]


@dataclass(frozen=True)
class Exists:
    field: str


@dataclass(frozen=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    part: Filter


Filter = Eq | In | Range | Exists | And | Or | Not
"""A compiled record filter; hashable, so it may key a cache."""

SEPARATOR = "."
"""What separates the keys of a nested field's path (``"meta.lang"``)."""


def path_of(field: str) -> tuple[str, ...]:
    """The keys, outermost first, that ``field`` (a dotted path the grammar accepted) steps through."""
    return tuple(field.split(SEPARATOR))


def fields_of(node: Filter) -> set[str]:
    """Every field ``node`` reads."""
    if isinstance(node, And | Or):
        return set().union(*(fields_of(part) for part in node.parts))
    if isinstance(node, Not):
        return fields_of(node.part)
    return {node.field}
