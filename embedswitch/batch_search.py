"""Batch search: many searches in one request. Searches that name the same ``version`` and ``key``
(or neither) are pinned to one version together, and that group's texts are embedded in one call
of its model (one batch instead of one per query), then each is searched with its own ``k``,
filter and knobs.

A routed search of a batch is recorded like a single one (an experiment assignment, the query
log), its ``request_id`` that of the request with ``.<position>`` appended. A batch is never
interleaved or mirrored to a shadow version: send single searches for that.
"""

from __future__ import annotations

from .evaluation.querylog import QueryLog
from .experiments import Experiment
from .results import BatchSearchResult, SearchResult
from .specs import BatchSearchRequest


def search_batch(
    experiment: Experiment, request: BatchSearchRequest, query_log: QueryLog, min_seq_timeout_s: float
) -> BatchSearchResult:
    collection = experiment.collection
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for i, one in enumerate(request.searches):
        groups.setdefault((one.version, one.key), []).append(i)
    results: dict[int, SearchResult] = {}
    for (version, key), positions in groups.items():
        with collection.pinned(version, key) as pinned:
            texts = [i for i in positions if request.searches[i].text is not None]
            vectors = pinned.embed_queries([request.searches[i].text or "" for i in texts]) if texts else None
            by_position = dict(zip(texts, vectors, strict=True)) if vectors is not None else {}
            for i in positions:
                one = request.searches[i]
                answer = collection.answer(pinned, one, min_seq_timeout_s, by_position.get(i))
                results[i] = answer.model_copy(update={"request_id": f"{answer.request_id}.{i}"})
        if version is None:
            for i in positions:
                experiment.record("search", key, results[i])
                if request.searches[i].vector is None:
                    query_log.record(collection.name, request.searches[i], results[i].version)
    return BatchSearchResult(results=[results[i] for i in range(len(request.searches))])
