"""Search latency at two collection sizes, along the three paths a query can take.

- (a) ``index``: the version's ``VectorIndex.search`` with a precomputed query vector;
- ``encode``: the query embedding alone (``model.encode([text], purpose="query")``);
- (b) ``engine``: in-process ``engine.search``, which embeds the query, routes, searches and reads
  the hits' fields from the store;
- (c) ``http``: ``Client.search`` against a real uvicorn server for the same engine, in a thread of
  this process (so client and server share the interpreter, as a sidecar would not).

The four are measured interleaved, query by query (SciFact's test queries, cycled), after a warm-up,
so a change in machine load hits them alike. ``overhead = (b) - encode - (a)`` at p50 is what the
engine adds around the embedding and the index. The larger size is SciFact plus numbered variants
of its documents; the index type serving each size (``auto``: exact, then HNSW past 20,000) is
reported with it. Each path also reports whether it returned the same ids as the index path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedswitch import Client, Engine, EngineConfig
from embedswitch.index import VectorIndex
from embedswitch.models import load_model

from ._common import (
    cycled,
    latency_stats,
    load_scifact,
    ratio,
    serve,
    synthetic_corpus,
    temp_engine,
    upsert_all,
    wait_applied,
)

COLLECTION = "latency"
PATHS = ("index", "encode", "engine", "http")


@dataclass(frozen=True)
class Params:
    model: str
    sizes: tuple[int, ...]
    queries: int  # measured per path and size
    warmup: int
    k: int = 10
    index: dict[str, Any] = field(default_factory=dict)  # the version's index spec; {}: the default

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(model="hashing", sizes=(2_000, 10_000), queries=200, warmup=20)
        return cls(model="minilm-static", sizes=(5_000, 100_000), queries=500, warmup=50)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    latency_rows: list[dict[str, Any]] = []
    ratio_rows: list[dict[str, Any]] = []
    for size in params.sizes:
        stats, info = _measure_size(params, size)
        for path in PATHS:
            latency_rows.append({"records": size, "index": info["index"], "path": path, **stats[path]})
        ratio_rows.append(_ratios(size, stats, info))
    summary: dict[str, Any] = {}
    for row in ratio_rows:
        summary[f"engine/index p50 @{row['records']}"] = row["engine/index p50"]
        summary[f"http/engine p50 @{row['records']}"] = row["http/engine p50"]
    return {
        "params": {**asdict(params), "data": "SciFact corpus + '(variant N)' copies; SciFact test queries"},
        "tables": {"search latency (ms)": latency_rows, "ratios": ratio_rows},
        "summary": summary,
    }


def _ratios(size: int, stats: dict[str, dict[str, Any]], info: dict[str, Any]) -> dict[str, Any]:
    a, e, b, c = (stats[p] for p in PATHS)
    return {
        "records": size,
        "index": info["index"],
        "engine/index p50": ratio(b["p50_ms"], a["p50_ms"]),
        "engine/index p99": ratio(b["p99_ms"], a["p99_ms"]),
        "http/engine p50": ratio(c["p50_ms"], b["p50_ms"]),
        "http/engine p99": ratio(c["p99_ms"], b["p99_ms"]),
        "overhead p50 ms": round(b["p50_ms"] - e["p50_ms"] - a["p50_ms"], 3),
        "engine same ids as index": info["engine_same"],
        "http same ids as index": info["http_same"],
        "load_s": info["load_s"],
    }


def _measure_size(params: Params, size: int) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    data = load_scifact()
    model = load_model(params.model)
    queries = cycled(data.query_texts, params.warmup + params.queries)
    vectors = [model.encode([q], purpose="query") for q in queries]
    with temp_engine(EngineConfig()) as engine:
        index, load_s = _fill(engine, params, size)
        with serve(engine) as url, Client(url) as client:

            def by_index(i: int) -> list[str]:
                return [hit[0] for hit in index.search(vectors[i], params.k)[0]]

            def encode_only(i: int) -> list[str]:
                model.encode([queries[i]], purpose="query")
                return []

            def by_engine(i: int) -> list[str]:
                return [hit.id for hit in engine.search(COLLECTION, queries[i], k=params.k).hits]

            def by_http(i: int) -> list[str]:
                return [hit.id for hit in client.search(COLLECTION, queries[i], k=params.k).hits]

            calls = {"index": by_index, "encode": encode_only, "engine": by_engine, "http": by_http}
            samples, same = _interleaved(calls, params.warmup, len(queries))
    info = {
        "index": getattr(index, "index_type", type(index).__name__),
        "engine_same": round(same["engine"], 3),
        "http_same": round(same["http"], 3),
        "load_s": load_s,
    }
    return {path: latency_stats(samples[path]) for path in PATHS}, info


def _fill(engine: Engine, params: Params, size: int) -> tuple[VectorIndex, float]:
    """Load ``size`` records into v1 and wait until they are applied; the index and the seconds."""
    ids, texts = synthetic_corpus(load_scifact(), size)
    engine.create_collection(COLLECTION, {"name": "v1", "model": params.model, "index": params.index})
    started = time.perf_counter()
    wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
    version = engine.collection(COLLECTION).get_version("v1")
    version.checkpoint()  # an ``auto`` index past its threshold turns into HNSW here, not mid-run
    index = version.index("doc")
    if index is None or len(index) != size:
        raise RuntimeError(f"v1 holds {0 if index is None else len(index)} records, not {size}")
    return index, round(time.perf_counter() - started, 1)


def _interleaved(
    calls: dict[str, Callable[[int], list[str]]], warmup: int, total: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Every path on query i, then on query i + 1; latencies (s) after warm-up and the share of
    queries on which the engine and HTTP paths returned the index path's ids."""
    samples: dict[str, list[float]] = {path: [] for path in calls}
    agree: dict[str, list[bool]] = {"engine": [], "http": []}
    for i in range(total):
        found: dict[str, list[str]] = {}
        for path, call in calls.items():
            start = time.perf_counter()
            found[path] = call(i)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                samples[path].append(elapsed)
        for path in agree:
            agree[path].append(found[path] == found["index"])
    return samples, {path: float(np.mean(values)) for path, values in agree.items()}
