"""What the query log keeps of a search (``LoggedQuery``) and the seam where it is kept
(``QueryRows``): a SQLite file of the data dir (``sqlite.py``) or the shared store's database
(``postgres.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class LoggedQuery:
    """One answered search: exactly one of ``text`` or (``like_kind``, ``like_id``) is set."""

    collection: str
    ts: float
    kind: str
    k: int
    version: str
    text: str | None
    like_kind: str | None
    like_id: str | None

    def row(self) -> tuple[Any, ...]:
        """The stored columns, in ``COLUMNS`` order."""
        return (
            self.collection,
            self.ts,
            self.kind,
            self.k,
            self.version,
            self.text,
            self.like_kind,
            self.like_id,
        )


COLUMNS = "collection, ts, kind, k, version, text, like_kind, like_id"


class QueryRows(Protocol):
    """Where logged queries are kept, each under an id that grows with the order of ``append``s.

    Callers may rely on: every method is safe to call from several threads; what ``append`` stored
    is read by every process sharing the rows once it returns.
    """

    def append(self, queries: Sequence[LoggedQuery], before: float, size: int) -> None:
        """In one transaction: store ``queries``, drop every query older than ``before`` (epoch
        seconds), and keep only the newest ``size`` of each collection ``queries`` name."""
        ...

    def count(self, collection: str) -> int: ...

    def ids(self, collection: str) -> list[int]:
        """The ids of ``collection``'s queries, ascending."""
        ...

    def get(self, ids: Sequence[int]) -> dict[int, LoggedQuery]:
        """Those of ``ids`` still kept."""
        ...

    def forget(self, collection: str) -> None: ...

    def close(self) -> None: ...
