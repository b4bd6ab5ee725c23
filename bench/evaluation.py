"""Offline evaluation throughput on SciFact: ``engine.evaluate`` next to raw ``model.encode``.

For each model the corpus goes into a collection whose ``v1`` uses it, then the 300 judged test
queries go through ``engine.evaluate`` (each query through ``v1``'s serving search, 100 deep,
fields looked up, scored) and through ``Client.evaluate`` over HTTP. In the same run, on the same
model instance, the same query texts are embedded raw: in one ``encode`` call with torch on every
core (the fastest way to embed them), and one query per call with one torch thread (how the
serving path embeds each query; the engine sets torch to one thread per call). The ratios say how
far evaluation is from the raw encode time, and how much of the gap is embedding queries one at a
time rather than the engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import Client, EngineConfig
from embedswitch.models import EmbeddingModel

from ._common import (
    Scifact,
    load_scifact,
    ratio,
    serve,
    stopwatch,
    temp_engine,
    torch_on_all_cores,
    upsert_all,
    wait_applied,
)

COLLECTION = "evaluation"


@dataclass(frozen=True)
class Params:
    models: tuple[str, ...]
    docs: int | None  # None: the whole corpus
    k: int = 10
    rounds: int = 3  # each path is timed this many times, interleaved; the fastest round counts

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(models=("hashing", "minilm-static"), docs=1000, rounds=2)
        return cls(models=("minilm-static", "minilm"), docs=None)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    rows = [_measure(model, data, params) for model in params.models]
    return {
        "params": {
            **asdict(params),
            "docs": params.docs or len(data.doc_ids),
            "queries": len(data.query_ids),
            "data": "SciFact test split; documents as '{title} {text}'",
        },
        "tables": {"offline evaluation throughput (queries/s)": rows},
        "summary": {f"{row['model']} evaluate/raw encode": row["evaluate/raw batch"] for row in rows},
        "notes": [
            "evaluate: Engine.evaluate over the 300 queries, one version, k=10 and 100 deep for recall",
            "raw batch: one model.encode call over the 300 query texts, torch on every core",
            "raw one by one: model.encode per query, one torch thread, as the serving path embeds",
            "each path is timed `rounds` times, the paths interleaved, and the fastest round kept, "
            "so that other load on the machine distorts the ratios less",
            "nDCG@10 is lower than the published figure in quick mode: the corpus is cut",
        ],
    }


def _measure(model_name: str, data: Scifact, params: Params) -> dict[str, Any]:
    ids, texts = data.docs(params.docs if params.docs is not None else len(data.doc_ids))
    queries = dict(zip(data.query_ids, data.query_texts, strict=True))
    body = {"versions": ["v1"], "queries": queries, "qrels": data.qrels, "k": params.k}
    n = len(queries)
    with temp_engine(EngineConfig()) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": model_name})
        wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        model = engine.collection(COLLECTION).get_version("v1").model
        engine.search(COLLECTION, data.query_texts[0], version="v1")  # warm up the model
        times: dict[str, list[float]] = {"evaluate": [], "http": [], "batch": [], "single": []}
        with serve(engine) as url, Client(url) as client:
            for _ in range(params.rounds):
                with stopwatch() as evaluating:
                    result = engine.evaluate(COLLECTION, body)
                times["evaluate"].append(evaluating.s)
                with stopwatch() as over_http:
                    client.evaluate(COLLECTION, body)
                times["http"].append(over_http.s)
                times["batch"].append(_raw_batch(model, data.query_texts))
                times["single"].append(_raw_single(model, data.query_texts))
    qps = {path: n / min(seconds) for path, seconds in times.items()}
    scores = result.versions["v1"]
    return {
        "model": model_name,
        "docs": len(ids),
        "queries": n,
        "evaluate_qps": round(qps["evaluate"], 1),
        "evaluate over HTTP_qps": round(qps["http"], 1),
        "raw batch encode_qps": round(qps["batch"], 1),
        "raw one-by-one encode_qps": round(qps["single"], 1),
        "evaluate/raw batch": ratio(qps["evaluate"], qps["batch"]),
        "evaluate/raw one-by-one": ratio(qps["evaluate"], qps["single"]),
        "search p50_ms": scores.latency_ms.p50,
        "search p99_ms": scores.latency_ms.p99,
        "nDCG@10": round(scores["ndcg@10"], 5),
        "recall@100": round(scores["recall@100"], 5),
        "MRR@10": round(scores["mrr@10"], 5),
    }


def _raw_batch(model: EmbeddingModel, texts: list[str]) -> float:
    """Seconds to embed ``texts`` in one call, torch on every core."""
    with torch_on_all_cores():
        model.encode(texts[:8], purpose="query")  # warm up with this thread setting
        with stopwatch() as t:
            model.encode(texts, purpose="query")
    return t.s


def _raw_single(model: EmbeddingModel, texts: list[str]) -> float:
    """Seconds to embed ``texts`` one per call, with the engine's torch setting (one thread)."""
    with stopwatch() as t:
        for text in texts:
            model.encode([text], purpose="query")
    return t.s
