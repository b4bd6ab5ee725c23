"""Record filters: one JSON grammar (``grammar.py``), compiled once into a typed tree (``ast.py``)
that each backend translates: SQL over the stored records (``sql.py``), a Python check (``match.py``)."""

from embedswitch.filters.ast import And, Eq, Exists, Filter, In, Not, Or, Range, Scalar, fields_of
from embedswitch.filters.grammar import RecordFilter, parse_filter, to_json
from embedswitch.filters.match import matches
from embedswitch.filters.sql import Predicate, predicate

__all__ = [
    "And",
    "Eq",
    "Exists",
    "Filter",
    "In",
    "Not",
    "Or",
    "Predicate",
    "Range",
    "RecordFilter",
    "Scalar",
    "fields_of",
    "matches",
    "parse_filter",
    "predicate",
    "to_json",
]
