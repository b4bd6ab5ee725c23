"""Retrieval quality: the standard ranking metrics, agreement between rankings (Jaccard,
rank-biased overlap) and summaries of per-query scores and latencies. A leaf: it imports nothing
of embedswitch.

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

import math
from collections.abc import Iterable, Mapping, Sequence

METRICS = ("ndcg", "recall", "mrr")


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
