"""Retrieval quality: BEIR data sets, the standard ranking metrics, agreement between rankings
(Jaccard, rank-biased overlap), and offline evaluation of versions on judged queries through their
serving search (``evaluate_versions``, behind ``Engine.evaluate``).

The metrics follow the definitions of ``pytrec_eval`` (trec_eval) as used by BEIR and MTEB, so a
score computed here can be compared with published figures:

- ``ndcg_at_k``: graded gains (the judged relevance itself), discount ``1 / log2(rank + 1)``, and
  the ideal DCG taken over the judged documents sorted by relevance, both cut at ``k``;
- ``recall_at_k``: the share of the relevant documents (relevance > 0) found in the top ``k``;
- ``mrr_at_k``: ``1 / rank`` of the first relevant document in the top ``k``, else 0.

Rankings are lists of document ids, best first; a repeated id counts only where it first appears.
Judgments of 0 or below count as not relevant. A query with no relevant document scores 0.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .results import EvaluateResult, VersionInfo, VersionScores
from .specs import EvaluateRequest

if TYPE_CHECKING:
    from .collection import Collection

Corpus = dict[str, dict[str, str]]
Queries = dict[str, str]
Qrels = dict[str, dict[str, int]]

METRICS = ("ndcg", "recall", "mrr")


def load_beir(directory: str | Path, split: str = "test") -> tuple[Corpus, Queries, Qrels]:
    """Read a BEIR data set: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Returns ``(corpus, queries, qrels)``: ``corpus`` maps a document id to ``{"title", "text"}``
    (in file order), ``queries`` maps a query id to its text and holds only the queries judged in
    ``split``, and ``qrels`` maps a query id to ``{doc_id: relevance}``. The qrels file has a header
    line; its line endings may be ``\\n`` or ``\\r\\n``. Raises ``FileNotFoundError`` naming the
    missing file, and ``ValueError`` for a qrels query that ``queries.jsonl`` lacks.
    """
    root = Path(directory)
    corpus: Corpus = {}
    for row in _jsonl(root / "corpus.jsonl"):
        corpus[str(row["_id"])] = {"title": row.get("title") or "", "text": row.get("text") or ""}
    queries, qrels = load_judgments(root, split)
    return corpus, queries, qrels


def load_judgments(directory: str | Path, split: str = "test") -> tuple[Queries, Qrels]:
    """The judged queries of a BEIR data set without its corpus: ``(queries, qrels)`` as
    ``load_beir`` returns them, with the same errors."""
    root = Path(directory)
    qrels = _qrels(root / "qrels" / f"{split}.tsv")
    all_queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(root / "queries.jsonl")}
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise ValueError(
            f"{len(missing)} queries judged in qrels/{split}.tsv are not in queries.jsonl "
            f"(e.g. {', '.join(missing[:3])}); the data set is incomplete"
        )
    return {qid: text for qid, text in all_queries.items() if qid in qrels}, qrels


def document_text(doc: Mapping[str, str]) -> str:
    """The text embedded for a BEIR document: ``"{title} {text}"``, or the text alone without a title."""
    title, text = doc.get("title") or "", doc.get("text") or ""
    return f"{title} {text}" if title else text


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _qrels(path: Path) -> Qrels:
    qrels: Qrels = {}
    with path.open(encoding="utf-8", newline="") as handle:
        next(handle, None)  # header: query-id, corpus-id, score
        for number, line in enumerate(handle, start=2):
            fields = line.rstrip("\r\n").split("\t")
            if fields == [""]:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{number}: expected query-id, corpus-id and score, got {line!r}")
            qid, doc_id, score = fields
            qrels.setdefault(qid, {})[doc_id] = int(score)
    return qrels


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    """The first ``k`` distinct ids of ``ranked``."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    seen: set[str] = set()
    top: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            top.append(doc_id)
            if len(top) == k:
                break
    return top


def _discount(rank: int) -> float:
    """The DCG discount of 1-based ``rank``."""
    return 1.0 / math.log2(rank + 1)


def ndcg_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain of the top ``k`` of ``ranked`` (see the module docstring)."""
    dcg = sum(
        max(rels.get(doc_id, 0), 0) * _discount(rank)
        for rank, doc_id in enumerate(_top_k(ranked, k), start=1)
    )
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(gain * _discount(rank) for rank, gain in enumerate(ideal, start=1))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """The share of relevant documents (relevance > 0) that appear in the top ``k`` of ``ranked``."""
    relevant = {doc_id for doc_id, r in rels.items() if r > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_top_k(ranked, k))) / len(relevant)


def mrr_at_k(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top ``k`` of ``ranked``, else 0."""
    for rank, doc_id in enumerate(_top_k(ranked, k), start=1):
        if rels.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


_FUNCTIONS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def evaluate_run(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]], k_values: Iterable[int]
) -> dict[str, float]:
    """Every metric at every ``k``, averaged over the queries of ``qrels``.

    ``run`` maps a query id to its ranking, best first. A query of ``qrels`` missing from ``run``
    scores 0; queries of ``run`` that ``qrels`` does not judge are ignored. Keys are
    ``"ndcg@10"``, ``"recall@100"``, ``"mrr@10"`` and so on, for each metric and each ``k``.
    """
    ks = sorted(set(k_values))
    if not ks:
        raise ValueError("k_values is empty; pass e.g. [10, 100]")
    if not qrels:
        raise ValueError("qrels is empty; there are no queries to average over")
    scores: dict[str, float] = {}
    for metric in METRICS:
        function = _FUNCTIONS[metric]
        for k in ks:
            total = sum(function(run.get(qid, []), rels, k) for qid, rels in qrels.items())
            scores[f"{metric}@{k}"] = total / len(qrels)
    return scores


# -- agreement between two rankings --------------------------------------------------------------

RBO_P = 0.9
"""Persistence of rank-biased overlap: the top 10 ranks carry about 65% of the weight."""


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """``|A ∩ B| / |A ∪ B|`` of the two rankings' id sets; 1.0 when both are empty."""
    left, right = set(a), set(b)
    union = left | right
    return len(left & right) / len(union) if union else 1.0


def rank_biased_overlap(a: Sequence[str], b: Sequence[str], p: float = RBO_P) -> float:
    """Extrapolated rank-biased overlap of two rankings of distinct ids (Webber, Moffat and Zobel,
    "A similarity measure for indefinite rankings", TOIS 2010, equation 32, which also covers lists
    of different lengths). 1.0 for identical lists, 0.0 for disjoint ones, and 1.0 when both are
    empty; agreement near the top weighs more, ``p`` being the weight kept from one rank to the next.
    """
    if not 0 < p < 1:
        raise ValueError(f"p must be between 0 and 1, exclusive, got {p}")
    short, long_ = (list(a), list(b)) if len(a) <= len(b) else (list(b), list(a))
    s, length = len(short), len(long_)
    if s == 0:
        return 1.0 if length == 0 else 0.0
    seen_short: set[str] = set()
    seen_long: set[str] = set()
    overlap = 0
    overlaps = [0]  # overlaps[d]: ids in common between the first d of each list (short one cut at s)
    for d in range(1, length + 1):
        x = long_[d - 1]
        if x in seen_short:
            overlap += 1
        seen_long.add(x)
        if d <= s:
            y = short[d - 1]
            if y in seen_long:
                overlap += 1
            seen_short.add(y)
        overlaps.append(overlap)
    x_s, x_l = overlaps[s], overlaps[length]
    total = sum(overlaps[d] / d * p**d for d in range(1, length + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, length + 1))
    return (1 - p) / p * total + ((x_l - x_s) / length + x_s / s) * p**length


# -- per-query scores and summaries --------------------------------------------------------------

RECALL_DEPTH = 100
"""Recall is always reported at 100, whatever the cutoff ``k`` of nDCG and MRR."""


def metric_names(k: int) -> tuple[str, str, str]:
    """The keys of ``score_query``: ``("ndcg@k", "recall@100", "mrr@k")``."""
    return f"ndcg@{k}", f"recall@{RECALL_DEPTH}", f"mrr@{k}"


def score_query(ranked: Sequence[str], rels: Mapping[str, int], k: int) -> dict[str, float]:
    """nDCG@k, recall@100 and MRR@k of one ranking, keyed as ``metric_names(k)`` says."""
    ndcg, recall, mrr = metric_names(k)
    return {
        ndcg: ndcg_at_k(ranked, rels, k),
        recall: recall_at_k(ranked, rels, RECALL_DEPTH),
        mrr: mrr_at_k(ranked, rels, k),
    }


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (linear interpolation) of durations in seconds, in milliseconds."""
    return round(float(np.percentile(np.asarray(seconds, dtype=np.float64), q)) * 1000, 3)


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


# -- offline evaluation of versions --------------------------------------------------------------


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
