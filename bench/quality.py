"""Retrieval quality on SciFact through embedswitch, next to the published figure.

The corpus goes into a collection whose version ``v1`` uses the model; the 300 test queries go
through ``engine.search(k=100)`` and are scored with ``embedswitch.evaluation.metrics`` (nDCG@10,
recall@100, MRR@10, as MTEB/BEIR compute them). MTEB publishes nDCG@10 = 0.64508 for
all-MiniLM-L6-v2 on SciFact; for the distilled static model there is no published figure and about
0.40 is expected. As a check of the search path itself, the same queries are also run as an exact
dot-product search over the vectors the version stored (``exact over stored``): the two should
agree unless the index is approximate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedswitch import Engine, EngineConfig
from embedswitch.evaluation.metrics import evaluate_run
from embedswitch.models import load_model

from ._common import Scifact, load_scifact, stopwatch, temp_engine, upsert_all, wait_applied

COLLECTION = "quality"
K_VALUES = (10, 100)
MTEB_MINILM_NDCG10 = 0.64508
"""MTEB leaderboard, all-MiniLM-L6-v2, SciFact test, main score nDCG@10."""


@dataclass(frozen=True)
class Target:
    model: str
    reference_ndcg10: float | None
    reference: str


@dataclass(frozen=True)
class Params:
    targets: tuple[Target, ...]
    docs: int | None = None  # None: the whole corpus (anything less lowers the scores)
    k: int = 100

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(targets=(Target("hashing", None, "no reference (a baseline, not a model)"),))
        return cls(
            targets=(
                Target("minilm", MTEB_MINILM_NDCG10, "MTEB all-MiniLM-L6-v2 SciFact nDCG@10"),
                Target("minilm-static", 0.40, "expected, approximately (no published figure)"),
            )
        )


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    rows = [_evaluate(target, data, params) for target in params.targets]
    return {
        "params": {
            **asdict(params),
            "docs": params.docs or len(data.doc_ids),
            "queries": len(data.query_ids),
            "data": "SciFact test split; documents as '{title} {text}'",
        },
        "tables": {"SciFact retrieval quality": rows},
        "summary": {f"{row['model']} nDCG@10": row["nDCG@10"] for row in rows},
    }


def _evaluate(target: Target, data: Scifact, params: Params) -> dict[str, Any]:
    ids, texts = data.docs(params.docs if params.docs is not None else len(data.doc_ids))
    with temp_engine(EngineConfig()) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": target.model})
        with stopwatch() as ingest:
            wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        with stopwatch() as searching:
            run = {
                qid: [hit.id for hit in engine.search(COLLECTION, text, k=params.k, version="v1").hits]
                for qid, text in zip(data.query_ids, data.query_texts, strict=True)
            }
        exact = _exact_over_stored(engine, target.model, data, params.k)
    scores = evaluate_run(run, data.qrels, K_VALUES)
    exact_scores = evaluate_run(exact, data.qrels, K_VALUES)
    ndcg = round(scores["ndcg@10"], 5)
    reference = target.reference_ndcg10
    return {
        "model": target.model,
        "docs": len(ids),
        "nDCG@10": ndcg,
        "recall@100": round(scores["recall@100"], 5),
        "MRR@10": round(scores["mrr@10"], 5),
        "reference nDCG@10": reference,
        "ours - reference": round(ndcg - reference, 5) if reference is not None else None,
        "reference source": target.reference,
        "exact over stored nDCG@10": round(exact_scores["ndcg@10"], 5),
        "ingest_s": round(ingest.s, 2),
        "search_s": round(searching.s, 2),
    }


def _exact_over_stored(engine: Engine, model_name: str, data: Scifact, k: int) -> dict[str, list[str]]:
    """Top-``k`` by exact inner product over the vectors ``v1`` holds, queries embedded directly."""
    index = engine.collection(COLLECTION).get_version("v1").index("doc")
    assert index is not None
    stored = index.get(index.ids())
    doc_ids = list(stored)
    matrix = np.stack([stored[i] for i in doc_ids])
    queries = load_model(model_name).encode(data.query_texts, purpose="query")
    scores = queries @ matrix.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return {qid: [doc_ids[j] for j in row] for qid, row in zip(data.query_ids, top, strict=True)}
