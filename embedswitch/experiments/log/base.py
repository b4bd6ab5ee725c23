"""What the experiment log holds (assignments, feedback, shadow observations, experiment starts,
settings) and the seam where its rows live: ``ExperimentTables``, with one backend per store kind
(``sqlite.py``: ``experiments.db`` in the data dir; ``postgres.py``: the shared store's database)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Mode = Literal["single", "interleaved"]
Op = Literal["search", "recommend"]


@dataclass(frozen=True)
class Assignment:
    """Which version(s) answered a routed request, and what it showed."""

    request_id: str
    collection: str
    experiment: int
    op: Op
    mode: Mode
    version: str  # the answering version; for an interleaved answer, the first of ``pair``
    pair: tuple[str, str] | None  # the two interleaved versions
    key: str | None
    hits: tuple[tuple[str, str], ...]  # (id, contributing version), by rank
    at: float


@dataclass(frozen=True)
class Feedback:
    request_id: str
    collection: str
    id: str
    event: str
    value: float | None
    rank: int  # 1-based position of the hit in the response
    credit: str  # the version that contributed the hit
    at: float


@dataclass(frozen=True)
class ShadowObservation:
    collection: str
    experiment: int
    candidate: str
    live: str
    latency_ms: float
    live_latency_ms: float
    error: str | None
    overlap: float | None  # Jaccard of the top-10 ids with the live answer's; None on error
    at: float


@dataclass(frozen=True)
class ExperimentRow:
    id: int
    started_at: float
    control: str | None


@dataclass(frozen=True)
class RequestCounts:
    single: dict[str, int]  # routed requests per answering version
    interleaved: dict[tuple[str, str], int]  # interleaved impressions per pair


@dataclass
class FeedbackRow:
    """Per (request, event): the version, the best rank fed back and the credited versions' counts."""

    request_id: str
    event: str
    version: str
    pair: tuple[str, str] | None
    best_rank: int
    credits: dict[str, int]


Settings = tuple[dict[str, Any] | None, dict[str, Any] | None]
"""``(shadow, interleave)`` of a collection as stored, None where off."""


class ExperimentTables(Protocol):
    """Where the experiment log's rows live. ``ExperimentLog`` buffers assignments and shadow
    observations in front of it and writes them in batches; everything else goes straight through.

    Callers may rely on: every method is safe to call from several threads; ``write`` stores a
    batch in one transaction and skips an assignment whose request id is already stored;
    ``first`` and ``start`` number a collection's experiments 1, 2, ... without gaps or repeats,
    even when several processes share the tables; what one process writes, every process sharing
    the tables reads once the call returns.
    """

    def write(self, assignments: Sequence[Assignment], observations: Sequence[ShadowObservation]) -> None: ...

    def find(self, collection: str, request_id: str) -> Assignment | None: ...

    def add_feedback(self, feedback: Feedback) -> bool:
        """Store one event; False if the same (request_id, id, event) is already stored."""
        ...

    def current(self, collection: str) -> ExperimentRow | None:
        """The latest experiment of ``collection``."""
        ...

    def first(self, collection: str, control: str | None) -> ExperimentRow:
        """The latest experiment of ``collection``, or number 1 started now when it has none."""
        ...

    def start(self, collection: str, control: str | None) -> ExperimentRow:
        """A new experiment of ``collection`` (number latest + 1), starting now."""
        ...

    def settings(self, collection: str) -> Settings: ...

    def save_settings(
        self, collection: str, shadow: dict[str, Any] | None, interleave: dict[str, Any] | None
    ) -> None: ...

    def request_counts(self, collection: str, experiment: int, modes: Sequence[Mode]) -> RequestCounts: ...

    def feedback_rows(self, collection: str, experiment: int, mode: Mode) -> list[FeedbackRow]: ...

    def shadow_rows(self, collection: str, experiment: int) -> list[ShadowObservation]: ...

    def prune(self, before: float) -> None:
        """Drop assignments, feedback and shadow observations older than ``before`` (epoch seconds)."""
        ...

    def forget(self, collection: str) -> None:
        """Every row of ``collection``."""
        ...

    def compact(self) -> None:
        """Give back space the backend no longer needs (SQLite: truncate the write-ahead log)."""
        ...

    def close(self) -> None: ...


def counts_of(rows: Sequence[tuple[str, str, str | None, int]]) -> RequestCounts:
    """``RequestCounts`` from (mode, version, pair as stored, count) rows."""
    counts = RequestCounts({}, {})
    for mode, version, pair, count in rows:
        found = pair_of(pair)
        if mode == "interleaved" and found is not None:
            counts.interleaved[found] = counts.interleaved.get(found, 0) + count
        else:
            counts.single[version] = counts.single.get(version, 0) + count
    return counts


def feedback_of(rows: Sequence[tuple[str, str, str, str | None, str, int, int]]) -> list[FeedbackRow]:
    """``FeedbackRow``s from (request_id, event, version, pair, credit, best rank, count) rows."""
    merged: dict[tuple[str, str], FeedbackRow] = {}
    for request_id, event, version, pair, credit, best, count in rows:
        found = merged.setdefault(
            (request_id, event), FeedbackRow(request_id, event, version, pair_of(pair), best, {})
        )
        found.best_rank = min(found.best_rank, best)
        found.credits[credit] = count
    return list(merged.values())


def assignment_row(a: Assignment) -> tuple[Any, ...]:
    """An assignment as stored: pair and hits as JSON text."""
    hits = json.dumps([list(hit) for hit in a.hits], separators=(",", ":"))
    pair = json.dumps(list(a.pair)) if a.pair else None
    return (a.request_id, a.collection, a.experiment, a.op, a.mode, a.version, pair, a.key, hits, a.at)


def assignment_of(row: Sequence[Any]) -> Assignment:
    request_id, collection, experiment, op, mode, version, pair, key, hits, at = row
    parsed = tuple((str(hit_id), str(credit)) for hit_id, credit in json.loads(hits))
    return Assignment(request_id, collection, experiment, op, mode, version, pair_of(pair), key, parsed, at)


def observation_row(o: ShadowObservation) -> tuple[Any, ...]:
    return (o.collection, o.experiment, o.candidate, o.live, o.latency_ms, o.live_latency_ms) + (
        o.error,
        o.overlap,
        o.at,
    )


def feedback_row(f: Feedback) -> tuple[Any, ...]:
    return (f.request_id, f.id, f.event, f.collection, f.value, f.rank, f.credit, f.at)


def pair_of(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    first, second = json.loads(text)
    return (str(first), str(second))


def dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))
