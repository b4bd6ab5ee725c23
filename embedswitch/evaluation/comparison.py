"""Judging a candidate version on real traffic while it loads: a sample of logged queries replayed
on the candidate and on the live version, over the records both have embedded.

Fairness at any moment of a backfill: when the comparison starts, the ids each version holds are
read per kind, and both versions answer every query from the *shared* records only. Each version
searches its own serving index (the same ``search_vector`` that ``/search`` runs, so an HNSW
version stays approximate exactly as it serves) with the records outside the shared set excluded,
and ids that arrived after the start are filtered out (searching again without them if too few
are left). Both rankings are therefore over one candidate set, and differences come from the
models alone, not from how far the backfill has got.

``backfill_sample`` first embeds a random sample of records the candidate lacks, out of the
backfill's order, through the same seq-guarded index writes as the backfill and the applier: each
vector carries the record's seq, so a later update or delete always wins, and the backfill skips a
record already held at its seq.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .._errors import Conflict, InvalidRequest, NoLoggedQueries, RecordNotFound
from ..collection import Collection
from ..index.base import Hit
from ..models import LexicalSpec
from ..request_stats import percentile_ms
from ..results import (
    BackfillSampleInfo,
    CandidateEvaluation,
    Coverage,
    Distribution,
    LatencyMs,
    Overlap,
    SampleInfo,
    SampleScores,
)
from ..specs import CandidateEvaluateRequest
from ..store.base import Record, RecordKey
from ..version import Version
from .metrics import RBO_P, jaccard, ndcg_at_k, rank_biased_overlap
from .offline import building_warning, distribution
from .querylog import LoggedQuery, QueryLog

SAMPLE_BATCH = 64
"""Records per encode call when embedding ``backfill_sample``."""
MAX_REFILTER = 8
"""How many times a search is repeated when ids that arrived after the start push shared ones out."""
LOW_COVERAGE = 0.05


@dataclass
class _Side:
    """What one version answered, query by query."""

    latencies: list[float] = field(default_factory=list)
    top1: list[float] = field(default_factory=list)
    topk: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Scope:
    """Per kind: the ids both versions held at the start, and what each must leave out."""

    shared: dict[str, set[str]]
    excluded: dict[str, dict[str, set[str]]]  # version -> kind -> ids it holds outside ``shared``
    held: dict[str, dict[str, int]]  # version -> kind -> ids held


def compare(
    collection: Collection, name: str, request: CandidateEvaluateRequest, query_log: QueryLog, workers: int
) -> CandidateEvaluation:
    """Compare version ``name`` with the live one (``request.against``, default: the other version
    with the most traffic) on ``request.sample`` logged queries; see the module docstring."""
    candidate = collection.get_version(name)
    against = _against(collection, name, request.against)
    seed = request.seed if request.seed is not None else random.SystemRandom().randrange(2**31)
    queries, logged = _sample(collection.name, query_log, request.sample, seed)
    kinds = sorted({q.kind for q in queries})
    filled = None
    if request.backfill_sample:
        live = collection.get_version(against)
        embedded = backfill_sample(collection, candidate, live, kinds, request.backfill_sample, seed, workers)
        filled = BackfillSampleInfo(requested=request.backfill_sample, embedded=embedded)
    scope = _scope(collection, (name, against), kinds)
    replay = _replay(collection, (name, against), queries, request.k, scope, _judgments(request))
    coverage = _coverage(collection, scope, name, against, kinds)
    skipped = len(queries) - len(replay.jaccards)
    return CandidateEvaluation(
        collection=collection.name,
        candidate=name,
        against=against,
        sample=SampleInfo(
            requested=request.sample, logged=logged, used=len(replay.jaccards), skipped=skipped, seed=seed
        ),
        coverage=coverage,
        overlap=Overlap(k=request.k, jaccard=_mean(replay.jaccards), rbo=_mean(replay.rbos), p=RBO_P),
        versions={v: _scores(collection, v, side) for v, side in replay.sides.items()},
        judged=replay.judged,
        backfill_sample=filled,
        warnings=_warnings(collection, name, coverage, request.sample, len(queries), skipped),
    )


@dataclass
class _Replay:
    sides: dict[str, _Side]
    jaccards: list[float] = field(default_factory=list)
    rbos: list[float] = field(default_factory=list)
    judged: int = 0


def _replay(
    collection: Collection,
    names: tuple[str, str],
    queries: list[LoggedQuery],
    k: int,
    scope: _Scope,
    judgments: dict[str, dict[str, int]],
) -> _Replay:
    """Every query on both versions; a query one of them can't answer is left out."""
    name, against = names
    replay = _Replay(sides={name: _Side(), against: _Side()})
    for query in queries:
        mine = _answer(collection, name, query, k, scope)
        theirs = _answer(collection, against, query, k, scope) if mine is not None else None
        if mine is None or theirs is None:
            continue
        answers = {name: mine, against: theirs}
        rankings = {v: [hit_id for hit_id, _ in hits] for v, (_, hits) in answers.items()}
        replay.jaccards.append(jaccard(rankings[name], rankings[against]))
        replay.rbos.append(rank_biased_overlap(rankings[name], rankings[against], RBO_P))
        rels = _rels(judgments, query, scope)
        replay.judged += rels is not None
        for v, answer in answers.items():
            _note(replay.sides[v], answer, rankings[v], rels, k)
    if not replay.jaccards:
        raise NoLoggedQueries(
            f"none of the {len(queries)} sampled queries could be replayed on both versions (each asks "
            f"for a record {name!r} has no vector for yet); try again later or pass backfill_sample",
            collection=collection.name,
            version=name,
        )
    return replay


# -- the sample and the scope --------------------------------------------------------------------


def _against(collection: Collection, name: str, against: str | None) -> str:
    if against is not None:
        collection.get_version(against)
        if against == name:
            raise InvalidRequest(
                f"against names the candidate {name!r} itself; name the live version, or leave it out",
                collection=collection.name,
                version=name,
            )
        return against
    weights = {v: w for v, w in collection.router.weights.items() if v != name and w > 0}
    if not weights:
        raise Conflict(
            f'no version other than {name!r} has traffic to compare with; pass "against" to name one',
            collection=collection.name,
            version=name,
        )
    return max(sorted(weights), key=lambda v: weights[v])


def _sample(collection: str, query_log: QueryLog, n: int, seed: int) -> tuple[list[LoggedQuery], int]:
    if not query_log.enabled:
        raise NoLoggedQueries(
            "query logging is off, so there are no live queries to compare on; turn it on with "
            "EMBEDSWITCH_QUERY_LOG_SIZE=10000 (EngineConfig.query_log_size), let searches come in, "
            "then ask again (see docs/operations.md on retention and privacy)",
            collection=collection,
        )
    queries, logged = query_log.sample(collection, n, seed)
    if not queries:
        raise NoLoggedQueries(
            f"the query log of {collection!r} is empty (nothing searched within the retention of "
            f"{query_log.retention_s:g} s); send searches to the collection, then ask again",
            collection=collection,
        )
    return queries, logged


def _ids(version: Version, kind: str) -> set[str]:
    index = version.index(kind)
    return set(index.ids()) if index is not None else set()


def _scope(collection: Collection, names: tuple[str, str], kinds: Sequence[str]) -> _Scope:
    versions = [collection.get_version(v) for v in names]
    for version in versions:
        if isinstance(version.spec.model, LexicalSpec):
            raise InvalidRequest(
                f"version {version.name!r} is {version.spec.model.type}: a comparison on logged queries "
                "replays them by vector over the records both versions hold, which a lexical version "
                "can't do yet; judge it with evaluate (judged queries), A/B or interleaving",
                collection=collection.name,
                version=version.name,
            )
    shared: dict[str, set[str]] = {}
    excluded: dict[str, dict[str, set[str]]] = {v: {} for v in names}
    held: dict[str, dict[str, int]] = {v: {} for v in names}
    for kind in kinds:
        ids = {version.name: _ids(version, kind) for version in versions}
        shared[kind] = set.intersection(*ids.values())
        for v in names:
            excluded[v][kind] = ids[v] - shared[kind]
            held[v][kind] = len(ids[v])
    return _Scope(shared, excluded, held)


# -- replaying one query -------------------------------------------------------------------------


def _answer(
    collection: Collection, name: str, query: LoggedQuery, k: int, scope: _Scope
) -> tuple[float, list[Hit]] | None:
    """(seconds of the serving search, hits over the shared records) from version ``name``, or None
    for a ``like`` query whose record the version has no vector for."""
    shared, excluded = scope.shared[query.kind], scope.excluded[name][query.kind]
    with collection.pinned(name, None) as pinned:
        start = time.perf_counter()
        if query.text is not None:
            vector = pinned.embed_query(query.text)
            own: set[str] = set()
        else:
            assert query.like_kind is not None and query.like_id is not None
            try:
                vector = pinned.vector(query.like_kind, query.like_id)
            except RecordNotFound:
                return None
            own = {query.like_id} if query.like_kind == query.kind else set()
        pinned.search_vector(vector, k, query.kind, collection.kinds, own or None)  # as /search does
        elapsed = time.perf_counter() - start
        hits = _restricted(pinned, vector, k, query.kind, collection.kinds, shared, excluded | own)
    return elapsed, hits


def _restricted(
    version: Version,
    vector: np.ndarray,
    k: int,
    kind: str,
    known: set[str],
    shared: set[str],
    excluded: set[str],
) -> list[Hit]:
    """The top ``k`` of ``shared`` by ``version``'s serving index: ``excluded`` left out by the
    index itself, ids that arrived since the start filtered (and the search repeated without them)."""
    want = min(k, len(shared))
    if want == 0:
        return []
    strays: set[str] = set()
    kept: list[Hit] = []
    for _ in range(MAX_REFILTER):
        skip = excluded | strays if strays else excluded
        hits = version.search_vector(vector, k, kind, known, skip or None)
        kept = [hit for hit in hits if hit[0] in shared]
        new = {hit[0] for hit in hits if hit[0] not in shared}
        if len(kept) >= want or len(hits) < k or not new:
            break
        strays |= new
    return kept


def _judgments(request: CandidateEvaluateRequest) -> dict[str, dict[str, int]]:
    """Judgments keyed by query text (logged queries have no id)."""
    if request.queries is None or request.qrels is None:
        return {}
    return {request.queries[qid]: rels for qid, rels in request.qrels.items()}


def _rels(judgments: dict[str, dict[str, int]], query: LoggedQuery, scope: _Scope) -> dict[str, int] | None:
    """The query's judgments on the shared records, or None when it has no relevant one there."""
    if query.text is None or query.text not in judgments:
        return None
    shared = scope.shared[query.kind]
    rels = {doc: grade for doc, grade in judgments[query.text].items() if doc in shared}
    return rels if any(grade > 0 for grade in rels.values()) else None


def _note(
    side: _Side, answer: tuple[float, list[Hit]], ranking: list[str], rels: dict[str, int] | None, k: int
) -> None:
    elapsed, hits = answer
    side.latencies.append(elapsed)
    if hits:
        side.top1.append(hits[0][1])
        side.topk.extend(score for _, score in hits)
    if rels is not None:
        side.ndcg.append(ndcg_at_k(ranking, rels, k))


# -- the report ----------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _scores(collection: Collection, name: str, side: _Side) -> SampleScores:
    info = collection.version_info(name)
    return SampleScores(
        state=info.state,
        model_label=info.model_label,
        latency_ms=LatencyMs(
            p50=percentile_ms(side.latencies, 50) or 0.0, p99=percentile_ms(side.latencies, 99) or 0.0
        ),
        top1=Distribution.model_validate(distribution(side.top1)),
        topk=Distribution.model_validate(distribution(side.topk)),
        ndcg=_mean(side.ndcg) if side.ndcg else None,
    )


def _coverage(
    collection: Collection, scope: _Scope, name: str, against: str, kinds: Sequence[str]
) -> Coverage:
    counts = collection.store.count_records(collection.name)
    shared = sum(len(scope.shared[kind]) for kind in kinds)
    records = sum(counts.get(kind, 0) for kind in kinds)
    return Coverage(
        shared=shared,
        records=records,
        ratio=shared / records if records else 0.0,
        candidate=sum(scope.held[name].values()),
        against=sum(scope.held[against].values()),
    )


def _warnings(
    collection: Collection, name: str, coverage: Coverage, requested: int, sampled: int, skipped: int
) -> list[str]:
    found = []
    building = building_warning(collection.version_info(name), coverage.candidate)
    if building is not None:
        found.append(f"{building}; both versions were compared on the {coverage.shared} records both hold")
    if coverage.ratio < LOW_COVERAGE:
        found.append(
            f"only {coverage.shared} of {coverage.records} records are shared; the overlap is over few "
            "candidates: pass backfill_sample to embed a random sample into the candidate first"
        )
    if sampled < requested:
        found.append(f"the query log holds only {sampled} queries; all of them were used")
    if skipped:
        found.append(
            f"{skipped} sampled queries were skipped: their 'like' record has no vector in a version"
        )
    return found


# -- embedding a random sample first -------------------------------------------------------------


def backfill_sample(
    collection: Collection,
    candidate: Version,
    live: Version,
    kinds: Sequence[str],
    size: int,
    seed: int,
    workers: int,
) -> int:
    """Embed up to ``size`` random records that ``live`` holds and ``candidate`` does not, into
    ``candidate``; returns how many vectors were written. Each write carries the record's seq and
    goes through the index's seq guard, under the candidate's apply lock and after re-reading the
    record, so a newer update or delete always wins (see the module docstring)."""
    pool: list[RecordKey] = []
    for kind in kinds:
        if candidate.embeds(kind):
            pool.extend((kind, rid) for rid in sorted(_ids(live, kind) - _ids(candidate, kind)))
    chosen = random.Random(seed).sample(pool, min(size, len(pool)))
    batches = [chosen[i : i + SAMPLE_BATCH] for i in range(0, len(chosen), SAMPLE_BATCH)]
    written = 0
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix=f"sample-{candidate.name}") as pool_:
        for records, vectors in pool_.map(lambda keys: _embed(collection, candidate, keys), batches):
            written += _write(collection, candidate, records, vectors)
    return written


def _embed(
    collection: Collection, candidate: Version, keys: list[RecordKey]
) -> tuple[list[Record], np.ndarray]:
    found = collection.store.get_records(collection.name, keys)
    records = [found[key] for key in keys if key in found]
    if not records:
        return [], np.zeros((0, candidate.model.dim), dtype=np.float32)
    return records, candidate.model.encode([r.text for r in records], purpose="document")


def _write(collection: Collection, candidate: Version, records: list[Record], vectors: np.ndarray) -> int:
    """Write the vectors of the records unchanged since they were read. Under the apply lock the
    applier cannot apply a newer change in between; one it applies afterwards has a higher seq."""
    if not records:
        return 0
    written = 0
    with candidate.applier.lock:
        now = collection.store.get_records(collection.name, [(r.kind, r.id) for r in records])
        by_kind: dict[str, list[int]] = {}
        for row, record in enumerate(records):
            current = now.get((record.kind, record.id))
            if current is not None and current.seq == record.seq:
                by_kind.setdefault(record.kind, []).append(row)
        for kind, rows in by_kind.items():
            ids = [records[r].id for r in rows]
            written += candidate.write(kind, ids, vectors[rows], [records[r].seq for r in rows])
    return written
