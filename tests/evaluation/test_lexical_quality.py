"""Lexical and hybrid versions on SciFact through ``Engine.evaluate``, against the published BM25
figure and against their own parts.

BEIR publishes nDCG@10 = 0.665 for BM25 (Elasticsearch) on SciFact; the ``bm25`` version is scored
on the whole corpus and all 300 test queries. The hybrid (BM25 + MiniLM, reciprocal rank fusion)
must beat both of its parts. To embed less with MiniLM, that comparison runs on a cut of SciFact:
all 300 test queries, every document they judge and ``EXTRA_DOCS`` others drawn at random, and
MiniLM embeds it once: the MiniLM version (model ``none``, queries by ``minilm``) is loaded with the
hybrid's own dense vectors, so each part is exactly what the hybrid fuses, searched through its own
serving path (the full-corpus figures are in ``bench/results/lexical.json``). The MiniLM
document vectors are shared with the other SciFact tests (``tests/_encoded.py``).

On a PostgreSQL store the BM25 index is PostgreSQL's (``index/pgbm25.py``); on a cut of SciFact it
must rank as FTS5 does (on the whole corpus both give nDCG@10 0.6695).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _encoded import EncodedCache
from conftest import FAST, SCIFACT, needs_scifact

from embedswitch import Engine
from embedswitch.evaluation.beir import document_text, load_beir
from embedswitch.evaluation.simulation import judged_subset

BEIR_BM25_NDCG10 = 0.665
EXTRA_DOCS = 300


@needs_scifact
def test_bm25_on_scifact_is_within_002_of_the_published_figure(tmp_path: Path) -> None:
    corpus, queries, qrels = load_beir(SCIFACT)
    with Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("scifact", {"name": "bm25", "model": "bm25"})
        ids = list(corpus)
        for start in range(0, len(ids), 1000):
            engine.upsert(
                "scifact", [{"id": i, "text": document_text(corpus[i])} for i in ids[start : start + 1000]]
            )
        engine.wait_ready("scifact", "bm25", 120)
        scores = engine.evaluate(
            "scifact", {"versions": ["bm25"], "queries": queries, "qrels": qrels}
        ).versions["bm25"]
    assert scores.queries == 300 and scores.records == len(corpus)
    assert 0.645 <= scores["ndcg@10"] <= BEIR_BM25_NDCG10 + 0.02, scores["ndcg@10"]
    print(f"\nSciFact BM25 nDCG@10 {scores['ndcg@10']:.4f} (BEIR: {BEIR_BM25_NDCG10})")


@needs_scifact
def test_bm25_on_a_postgresql_store_ranks_scifact_as_fts5_does(tmp_path: Path, pg_uri: str) -> None:
    judged = judged_subset(SCIFACT, queries=100, extra_docs=1500, seed=0)
    ndcg = {}
    for store in ("sqlite", pg_uri):
        with Engine.open(tmp_path / str(len(ndcg)), FAST, store=store) as engine:
            engine.create_collection("sci", {"name": "bm25", "model": "bm25"})
            engine.upsert("sci", judged.records)
            engine.wait_ready("sci", "bm25", 120)
            body = {"versions": ["bm25"], "queries": judged.queries, "qrels": judged.qrels}
            scores = engine.evaluate("sci", body).versions["bm25"]
        assert scores.queries == 100 and scores.records == len(judged.records)
        ndcg["postgres" if store == pg_uri else "fts5"] = scores["ndcg@10"]
    print(f"\nSciFact (100 queries, {len(judged.records)} documents) BM25 nDCG@10: {ndcg}")
    # the same words, the same scores: only ties among equal scores may order differently
    assert abs(ndcg["postgres"] - ndcg["fts5"]) <= 0.001 and ndcg["postgres"] >= 0.7, ndcg


@pytest.mark.slow
@needs_scifact
def test_hybrid_of_bm25_and_minilm_beats_both_parts(tmp_path: Path, encoded: EncodedCache) -> None:
    judged = judged_subset(SCIFACT, extra_docs=EXTRA_DOCS, seed=0)
    hybrid = {"type": "hybrid", "dense": "minilm", "fusion": "rrf"}
    with encoded.installed(), Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("sci", {"name": "hybrid", "model": hybrid})
        engine.upsert("sci", judged.records)
        engine.add_version("sci", {"name": "bm25", "model": "bm25"})
        engine.wait_ready("sci", "hybrid", 1800)
        dense = engine.collection("sci").get_version("hybrid").index("doc")
        assert dense is not None
        vectors = dense.get([r["id"] for r in judged.records])
        minilm = {"type": "none", "dim": 384, "query": "minilm"}
        engine.add_version("sci", {"name": "minilm", "model": minilm, "source": "vectors"})
        rows = [{"id": i, "vector": v.tolist()} for i, v in vectors.items()]
        for start in range(0, len(rows), 500):
            engine.put_vectors("sci", "minilm", rows[start : start + 500])
        engine.commit_vectors("sci", "minilm")
        for name in ("bm25", "minilm"):
            engine.wait_ready("sci", name, 120)
        body = {"versions": ["bm25", "minilm", "hybrid"], "queries": judged.queries, "qrels": judged.qrels}
        result = engine.evaluate("sci", body).versions
    ndcg = {name: scores["ndcg@10"] for name, scores in result.items()}
    print(f"\nSciFact (300 queries, {len(judged.records)} documents) nDCG@10: {ndcg}")
    assert all(scores.queries == 300 and scores.records == len(judged.records) for scores in result.values())
    assert ndcg["hybrid"] > max(ndcg["bm25"], ndcg["minilm"]), ndcg
