"""Offline evaluation of versions on judged queries, each query through a version's serving search
(``evaluate_versions``, behind ``Engine.evaluate``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..collection import Collection
from ..request_stats import percentile_ms
from ..results import EvaluateResult, VersionInfo, VersionScores
from ..specs import EvaluateRequest
from .metrics import RECALL_DEPTH, metric_names, score_query


def evaluate_versions(collection: Collection, request: EvaluateRequest) -> EvaluateResult:
    """Every judged query of ``request`` through each version's serving search, scored against
    the judgments. Each query pins the version with ``Collection.pinned`` and runs
    ``Version.search`` on it, the query embedding and index search that ``POST /search`` runs
    (``max(k, 100)`` deep); only the lookup of the hits' fields, which never changes a ranking, is
    left out, and the latency is that of the embedding and the search. A ``building`` version is
    evaluated over the records it holds so far, with a warning. ``VersionNotFound`` comes before
    any query is run, ``UnknownKind`` at the first query."""
    for name in request.versions:
        collection.get_version(name)
    return EvaluateResult(
        k=request.k,
        kind=request.kind,
        versions={name: _evaluate_version(collection, name, request) for name in request.versions},
    )


def _evaluate_version(collection: Collection, name: str, request: EvaluateRequest) -> VersionScores:
    info = collection.version_info(name)
    depth = max(request.k, RECALL_DEPTH)
    per_query: dict[str, dict[str, float]] = {}
    for qid, rels in request.qrels.items():
        with collection.pinned(name, None) as pinned:
            start = time.perf_counter()
            hits = pinned.search(request.queries[qid], depth, request.kind, collection.kinds)
            elapsed = time.perf_counter() - start
        row = score_query([hit_id for hit_id, _ in hits], rels, request.k)
        row["latency_ms"] = elapsed * 1000
        per_query[qid] = row
    records = info.records_by_kind.get(request.kind, 0)
    return VersionScores.model_validate(
        {
            **summarize(per_query, request.k),
            "state": info.state,
            "model_label": info.model_label,
            "records": records,
            "warning": building_warning(info, records),
            "per_query": per_query if request.per_query else None,
        }
    )


def building_warning(info: VersionInfo, records: int) -> str | None:
    """Says that a ``building`` version answers over part of the records; None when it is ready."""
    if info.state != "building":
        return None
    progress = info.progress
    done = f" ({100 * progress.done // max(1, progress.total)}% backfilled)" if progress else ""
    return (
        f"version {info.name!r} is building{done}: its results cover only the {records} records it "
        "holds so far; evaluate again once it is ready"
    )


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``p10``, ``p50`` and ``p90`` of ``values`` (None but ``n`` when empty)."""
    if not values:
        return {"n": 0, "mean": None, "p10": None, "p50": None, "p90": None}
    array = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = (float(v) for v in np.percentile(array, [10, 50, 90]))
    return {"n": len(values), "mean": float(array.mean()), "p10": p10, "p50": p50, "p90": p90}


def summarize(per_query: Mapping[str, Mapping[str, float]], k: int) -> dict[str, Any]:
    """Per-query rows (``score_query`` keys plus ``latency_ms``) averaged: each metric's mean,
    ``latency_ms`` as ``{"p50", "p99"}`` and the number of ``queries``."""
    if not per_query:
        raise ValueError("no queries to summarize")
    rows = list(per_query.values())
    summary: dict[str, Any] = {name: sum(row[name] for row in rows) / len(rows) for name in metric_names(k)}
    latencies = [row["latency_ms"] / 1000 for row in rows]
    summary["latency_ms"] = {"p50": percentile_ms(latencies, 50), "p99": percentile_ms(latencies, 99)}
    summary["queries"] = len(rows)
    return summary
