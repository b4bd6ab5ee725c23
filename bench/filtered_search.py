"""Filtered search: latency and recall at 1%, 10% and 50% selectivity against unfiltered search, with
raw hnswlib and the same filter function beside it; and batch search against single calls.

One collection of precomputed vectors (``bench_index``'s clustered unit vectors; 100,000 x 384 in
the full run) in an ``hnsw`` version (M=16, ef_construction=128, ef_search=64), each record with a
field ``bucket`` in 0-99, drawn at random: ``{"bucket": 0}`` allows 1% of the records,
``{"bucket": {"lt": 10}}`` 10%, ``{"bucket": {"lt": 50}}`` 50%.

- ``embedswitch``: ``Engine.search`` in process with a query vector, ``k`` 10, the filter in the
  request: the index searches among the matching records (hnswlib's ``filter=``, a set lookup of
  the label, the same function as the raw case), and the hits' fields are read and checked. The
  whole request, one at a time. The matching ids are kept from the previous search of the same
  filter (no write between).
- ``embedswitch (after a write)``: the same, each search first asking the store which records
  match (SQLite ``json_type``/``json_extract`` over the kind's records), as the first search of a
  filter does. (Once a filter has been searched, a write costs its next search only a read of the
  records the change log names since: ``search.Filters``.)
- ``hnswlib (raw)``: the same graph parameters built on the same vectors, ``knn_query`` with
  ``filter=`` a Python function of the label (a set lookup, the matching labels precomputed), the
  graph search alone: no ids, no store, no fields.

Recall@10 is against the exact filtered ranking. The batch table embeds text queries with a hashing
model (``minilm-static`` in the full run): ``search_batch`` of 64 searches against 64 ``search`` calls.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from embedswitch import Engine, EngineConfig

from ._common import latency_stats, ratio
from .bench_index import clustered

K = 10
BATCH = 64
LOAD_BATCH = 10_000
HNSW = {"M": 16, "ef_construction": 128, "ef_search": 64}
SELECTIVITY: dict[str, dict[str, Any] | None] = {
    "unfiltered": None,
    "1%": {"bucket": 0},
    "10%": {"bucket": {"lt": 10}},
    "50%": {"bucket": {"lt": 50}},
}


@dataclass(frozen=True)
class Params:
    n: int
    dim: int
    queries: int
    batch_docs: int
    batch_model: str
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(n=3_000, dim=64, queries=40, batch_docs=500, batch_model="hashing")
        return cls(n=100_000, dim=384, queries=300, batch_docs=5_000, batch_model="minilm-static")


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data, queries = clustered(params.n, params.queries, params.dim, params.seed)
    buckets = np.random.default_rng(params.seed + 1).integers(0, 100, params.n)
    limits = {"unfiltered": 100, "1%": 1, "10%": 10, "50%": 50}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-filtered-") as tmp:
        with Engine.open(Path(tmp) / "data", EngineConfig(max_apply_lag=None)) as engine:
            _load(engine, data, buckets)
            for name, where in SELECTIVITY.items():
                allowed = np.flatnonzero(buckets < limits[name])
                truth = _exact(data, queries, allowed)
                rows.append(_engine_row(engine, queries, name, where, truth, len(allowed)))
                if where is not None:
                    rows.append(_engine_row(engine, queries, name, where, truth, len(allowed), cold=True))
        graph = _raw_graph(data)
        for name in SELECTIVITY:
            allowed = np.flatnonzero(buckets < limits[name])
            rows.append(_raw_row(graph, queries, name, allowed, _exact(data, queries, allowed)))
        batch_rows = _batch(params, Path(tmp) / "batch")
    by = {(row["case"], row["selectivity"]): row for row in rows}
    base = by[("embedswitch", "unfiltered")]["p50_ms"]
    for row in rows:
        if row["case"].startswith("embedswitch"):
            row["p50 / unfiltered"] = ratio(row["p50_ms"], base)
            raw = by[("hnswlib (raw)", row["selectivity"])]
            row["p50 / raw"] = ratio(row["p50_ms"], raw["p50_ms"])
    summary: dict[str, Any] = {}
    for name in SELECTIVITY:
        row = by[("embedswitch", name)]
        summary[f"{name} p50 ms"] = row["p50_ms"]
        summary[f"{name} p99 ms"] = row["p99_ms"]
        summary[f"{name} recall@10"] = row["recall_at_10"]
        summary[f"{name} raw hnswlib p50 ms"] = by[("hnswlib (raw)", name)]["p50_ms"]
        if ("embedswitch (after a write)", name) in by:
            summary[f"{name} p50 ms after a write"] = by[("embedswitch (after a write)", name)]["p50_ms"]
    summary["batch of 64 / 64 single calls (queries/s)"] = batch_rows[-1]["speedup"]
    return {
        "params": {**params.__dict__, "k": K, "hnsw": HNSW, "batch": BATCH},
        "tables": {"filtered search": rows, "batch search": batch_rows},
        "summary": summary,
        "notes": [
            "embedswitch times the whole in-process request (store filter, index search, fields); raw "
            "hnswlib the graph search alone, with the matching labels precomputed",
            "hnswlib's filter function runs in Python, under the GIL, once per node visited",
        ],
    }


def _load(engine: Engine, data: np.ndarray, buckets: np.ndarray) -> None:
    spec = {"name": "v1", "model": {"type": "none", "dim": data.shape[1]}, "index": {"type": "hnsw"}}
    engine.create_collection("c", spec)
    for start in range(0, len(data), LOAD_BATCH):
        stop = min(start + LOAD_BATCH, len(data))
        engine.upsert(
            "c",
            [
                {"id": f"r{i}", "vector": data[i].tolist(), "fields": {"bucket": int(buckets[i])}}
                for i in range(start, stop)
            ],
        )
    target = engine.collection("c")
    assert target.get_version("v1").wait_applied(target.head_seq(), 3600)


def _exact(data: np.ndarray, queries: np.ndarray, allowed: np.ndarray) -> list[set[int]]:
    scores = queries @ data[allowed].T
    top = np.argsort(-scores, axis=1)[:, :K]
    return [set(allowed[row].tolist()) for row in top]


def _recall(found: list[set[int]], truth: list[set[int]]) -> float:
    return round(float(np.mean([len(f & t) / len(t) for f, t in zip(found, truth, strict=True)])), 4)


def _engine_row(
    engine: Engine,
    queries: np.ndarray,
    name: str,
    where: dict[str, Any] | None,
    truth: list[set[int]],
    n: int,
    cold: bool = False,
) -> dict[str, Any]:
    """``cold``: every search asks the store which records match (as the first search of a filter
    does); else the matching ids are those kept from the previous search."""
    bodies = [{"vector": q.tolist(), "k": K, **({"filter": where} if where else {})} for q in queries]
    for body in bodies[:5]:
        engine.search("c", body)  # warm up
    filters = engine.collection("c").filters
    times, found = [], []
    for body in bodies:
        if cold:
            filters.clear()
        start = time.perf_counter()
        result = engine.search("c", body)
        times.append(time.perf_counter() - start)
        found.append({int(hit.id[1:]) for hit in result.hits})
    full = sum(len(f) == min(K, n) for f in found) / len(found)
    stats = latency_stats(times)
    return {
        "case": "embedswitch (after a write)" if cold else "embedswitch",
        "selectivity": name,
        "matching": n,
        **stats,
        "recall_at_10": _recall(found, truth),
        "k hits": full,
    }


def _raw_graph(data: np.ndarray) -> hnswlib.Index:
    graph = hnswlib.Index(space="ip", dim=data.shape[1])
    graph.init_index(max_elements=len(data), ef_construction=HNSW["ef_construction"], M=HNSW["M"])
    graph.add_items(data, np.arange(len(data)), num_threads=-1)
    graph.set_ef(HNSW["ef_search"])
    return graph


def _raw_row(
    graph: hnswlib.Index, queries: np.ndarray, name: str, allowed: np.ndarray, truth: list[set[int]]
) -> dict[str, Any]:
    members = frozenset(allowed.tolist())
    keep = None if name == "unfiltered" else members.__contains__
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        try:
            labels, _ = graph.knn_query(q[None, :], k=K, num_threads=1, filter=keep)
            got = set(labels[0].tolist())
        except RuntimeError:  # hnswlib found fewer than k: what a caller gets is an error
            got = set()
        times.append(time.perf_counter() - start)
        found.append(got)
    full = sum(len(f) == K for f in found) / len(found)
    stats = latency_stats(times)
    return {
        "case": "hnswlib (raw)",
        "selectivity": name,
        "matching": len(allowed),
        **stats,
        "recall_at_10": _recall(found, truth),
        "k hits": full,
    }


def _batch(params: Params, where: Path) -> list[dict[str, Any]]:
    words = ["protein", "cell", "gene", "cancer", "virus", "brain", "heart", "drug", "trial", "risk"]
    rng = np.random.default_rng(params.seed)
    docs = [
        {"id": f"d{i}", "text": " ".join(rng.choice(words, 8).tolist()), "fields": {"bucket": i % 10}}
        for i in range(params.batch_docs)
    ]
    texts = [" ".join(rng.choice(words, 3).tolist()) for _ in range(BATCH)]
    searches = [{"text": text, "k": K} for text in texts]
    with Engine.open(where, EngineConfig(max_apply_lag=None)) as engine:
        engine.create_collection("b", {"name": "v1", "model": params.batch_model, "index": {"type": "hnsw"}})
        for start in range(0, len(docs), LOAD_BATCH):
            engine.upsert("b", docs[start : start + LOAD_BATCH])
        target = engine.collection("b")
        assert target.get_version("v1").wait_applied(target.head_seq(), 3600)
        engine.search_batch("b", {"searches": searches})  # warm up
        single_s, batch_s = [], []
        for _ in range(5):
            start = time.perf_counter()
            for body in searches:
                engine.search("b", body)
            single_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.search_batch("b", {"searches": searches})
            batch_s.append(time.perf_counter() - start)
    single, batch = float(np.median(single_s)), float(np.median(batch_s))
    return [
        {"way": "64 single calls", "model": params.batch_model, "queries_per_s": round(BATCH / single, 1)},
        {
            "way": "one batch of 64",
            "model": params.batch_model,
            "queries_per_s": round(BATCH / batch, 1),
            "speedup": ratio(single, batch),
        },
    ]
