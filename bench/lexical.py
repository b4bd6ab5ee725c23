"""Lexical and hybrid versions on SciFact, through ``engine.evaluate``: BM25, MiniLM and their hybrid.

One collection holds every version side by side, fed by one change log: the corpus is upserted
once and each version applies it (BM25 indexes the text in SQLite FTS5, the dense and hybrid
versions embed it with MiniLM). The 300 judged test queries then go through ``engine.evaluate``,
each through the version's serving search (100 deep), scored as BEIR/MTEB score them. BEIR
publishes nDCG@10 = 0.665 for BM25 (Elasticsearch) on SciFact and MTEB 0.645 for MiniLM; a hybrid
must beat both of its parts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import Engine, EngineConfig

from ._common import load_scifact, stopwatch, temp_engine, upsert_all, wait_applied

COLLECTION = "lexical"
BEIR_BM25_NDCG10 = 0.665
"""BEIR (Thakur et al., 2021), Table 2: BM25 (Elasticsearch) on SciFact, nDCG@10."""
MTEB_MINILM_NDCG10 = 0.64508


@dataclass(frozen=True)
class Params:
    dense: str  # the dense model, alone and in the hybrids
    dim: int  # its dimension
    versions: tuple[tuple[str, str], ...]  # (name, model spec as JSON), each embedding the corpus
    docs: int | None = None  # None: the whole corpus
    k: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        dense, dim = ("hashing", 256) if quick else ("minilm", 384)
        convex = f'{{"type": "hybrid", "dense": "{dense}", "fusion": "convex", "weight": 0.5}}'
        versions = (
            ("bm25", '{"type": "bm25"}'),
            ("bm25-porter", '{"type": "bm25", "tokenizer": "porter"}'),
            ("hybrid", f'{{"type": "hybrid", "dense": "{dense}", "fusion": "rrf"}}'),
        )
        # on two cores MiniLM embeds SciFact in tens of minutes: the full run embeds it once
        return cls(
            dense, dim, (*versions, ("hybrid-convex", convex)) if quick else versions, 1000 if quick else None
        )


REFERENCES = {"bm25": BEIR_BM25_NDCG10, "bm25-porter": BEIR_BM25_NDCG10, "minilm": MTEB_MINILM_NDCG10}


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    ids, texts = data.docs(params.docs if params.docs is not None else len(data.doc_ids))
    queries = dict(zip(data.query_ids, data.query_texts, strict=True))
    specs = dict(params.versions)
    with temp_engine(EngineConfig()) as engine:
        first, *rest = params.versions
        engine.create_collection(COLLECTION, {"name": first[0], "model": first[1]})
        for name, model in rest:
            engine.add_version(COLLECTION, {"name": name, "model": model})
        with stopwatch() as ingest:
            seq = upsert_all(engine, COLLECTION, ids, texts)
            for name in specs:
                wait_applied(engine, COLLECTION, name, seq)
        specs[params.dense] = _dense_part(engine, params, ids)
        names = list(specs)
        body = {"versions": names, "queries": queries, "qrels": data.qrels, "k": params.k}
        result = engine.evaluate(COLLECTION, body)
    rows = []
    for name, model in specs.items():
        scores = result.versions[name]
        rows.append(
            {
                "version": name,
                "model": model,
                "nDCG@10": round(scores["ndcg@10"], 4),
                "recall@100": round(scores["recall@100"], 4),
                "MRR@10": round(scores["mrr@10"], 4),
                "published nDCG@10": REFERENCES.get(name),
                "search p50_ms": scores.latency_ms.p50,
                "search p99_ms": scores.latency_ms.p99,
            }
        )
    by_name = {row["version"]: row["nDCG@10"] for row in rows}
    parts = max(by_name["bm25"], by_name[params.dense])
    hybrids = [name for name in by_name if name.startswith("hybrid")]
    return {
        "params": {
            **asdict(params),
            "docs": len(ids),
            "queries": len(queries),
            "ingest_s": round(ingest.s, 1),
            "data": "SciFact test split; documents as '{title} {text}'",
        },
        "tables": {"SciFact nDCG@10 through evaluate": rows},
        "summary": {
            **{f"{name} nDCG@10": score for name, score in by_name.items()},
            **{f"{name} - best part": round(by_name[name] - parts, 4) for name in hybrids},
        },
        "notes": [
            "bm25: SQLite FTS5 bm25() (k1 1.2, b 0.75), unicode61 words; bm25-porter adds Porter stemming",
            "hybrid: the dense model's and BM25's 100 best, fused by reciprocal rank fusion (k 60); "
            "hybrid-convex (quick mode): weight 0.5 on min-max scaled scores",
            f"{params.dense}: a version of model none (queries by {params.dense}) loaded with the hybrid's "
            "own dense vectors: the corpus is embedded once, and each part is exactly what the hybrid fuses",
            "ingest_s: upserting the corpus until every version applied it",
            "quick mode cuts the corpus to 1,000 documents and uses hashing: its scores are not comparable",
        ],
    }


def _dense_part(engine: Engine, params: Params, ids: list[str]) -> str:
    """A version of the hybrid's dense model alone, loaded with the hybrid's own vectors; its spec."""
    index = engine.collection(COLLECTION).get_version("hybrid").index("doc")
    assert index is not None
    vectors = index.get(ids)
    model = f'{{"type": "none", "dim": {params.dim}, "query": "{params.dense}"}}'
    engine.add_version(COLLECTION, {"name": params.dense, "model": model, "source": "vectors"})
    rows = [{"id": i, "vector": vectors[i].tolist()} for i in ids]
    for start in range(0, len(rows), 1000):
        engine.put_vectors(COLLECTION, params.dense, rows[start : start + 1000])
    engine.commit_vectors(COLLECTION, params.dense)
    engine.wait_ready(COLLECTION, params.dense, 600)
    return model
