"""A filter checked in Python against one record's fields (what the SQL translations compute)."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from .ast import And, Eq, Exists, Filter, In, Not, Or, Range, Scalar, path_of

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(held: object, value: Scalar) -> bool:
    """``held`` (a field's JSON value) equals ``value`` as the filter grammar defines it."""
    if isinstance(value, bool) or isinstance(held, bool):
        return isinstance(value, bool) and isinstance(held, bool) and held is value
    if isinstance(value, str):
        return isinstance(held, str) and held == value
    return is_number(held) and held == value


def held_at(fields: Mapping[str, Any], field: str) -> Any:
    """The value at the dotted path ``field`` in ``fields``: None where the path is missing or
    steps into anything but an object (an array, a scalar)."""
    held: Any = fields
    for key in path_of(field):
        if not isinstance(held, Mapping):
            return None
        held = held.get(key)
    return held


def matches(node: Filter, fields: Mapping[str, Any]) -> bool:
    """Whether a record with these ``fields`` matches ``node``."""
    if isinstance(node, And):
        return all(matches(part, fields) for part in node.parts)
    if isinstance(node, Or):
        return any(matches(part, fields) for part in node.parts)
    if isinstance(node, Not):
        return not matches(node.part, fields)
    held = held_at(fields, node.field)
    if isinstance(node, Eq):
        return same(held, node.value)
    if isinstance(node, In):
        return any(same(held, value) for value in node.values)
    if isinstance(node, Range):
        return is_number(held) and all(_COMPARE[op](held, bound) for op, bound in node.bounds())
    assert isinstance(node, Exists)
    return held is not None
