"""Retrieval quality: BEIR data sets and the standard ranking metrics, in pure Python and numpy.

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
    qrels = _qrels(root / "qrels" / f"{split}.tsv")
    all_queries = {str(row["_id"]): str(row["text"]) for row in _jsonl(root / "queries.jsonl")}
    missing = sorted(set(qrels) - set(all_queries))
    if missing:
        raise ValueError(
            f"{len(missing)} queries judged in qrels/{split}.tsv are not in queries.jsonl "
            f"(e.g. {', '.join(missing[:3])}); the data set is incomplete"
        )
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return corpus, queries, qrels


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
