"""The ``qdrant`` and ``milvus`` indexes through ``engine.search`` against their raw clients.

No Qdrant or Milvus server runs on this machine (neither ships as a Python package), so both run
their embedded modes, the ones the tests use: qdrant-client's local mode on disk (the data dir) and
milvus-lite. Those are the engines' own client code, but not their servers: the absolute figures
say nothing of a server's speed; the ratios measure what embedswitch adds on top of a client.

Each engine holds ``n`` unit vectors of ``bench_index``'s Gaussian mixture, loaded through
``engine.upsert`` (records carrying their vectors, a version of model ``none``: the applier writes
them through the seq-guarded index). Then, one query per call, k=10, interleaved query by query in
a shuffled order after a warm-up:

- ``engine.search on <type>``: the whole search path (request validation, routing, pinning, the
  index, the hits' fields from the store);
- ``<Type>Index.search``: the index alone (the seam);
- ``raw <client>``: the same collection through the same client object, one call as a user of the
  client would write it (Qdrant: ``query_points``; Milvus: ``search``);
- ``engine.search on hnsw``: the embedded default on the same vectors, for scale.

The overhead ratio is ``engine.search / raw client`` at p50. Recall@10 is against exact search.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from embedswitch import Engine, EngineConfig

from ._common import latency_stats, ms, ratio
from .bench_index import clustered, exact_top_k, recall

K = 10
COLLECTION = "bench"
TYPES = ("qdrant", "milvus", "hnsw")


@dataclass(frozen=True)
class Params:
    n: int
    dim: int
    queries: int
    warmup: int
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(n=200, dim=64, queries=30, warmup=5)
        return cls(n=5_000, dim=384, queries=300, warmup=30)  # local mode loads ~50-1,000 points/s


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    p = params or Params.for_mode(quick)
    data, queries = clustered(p.n, p.queries + p.warmup, p.dim, p.seed)
    config = EngineConfig(checkpoint_interval_s=30)
    loads: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        engines = {kind: Engine.open(Path(tmp) / kind, config) for kind in TYPES}
        try:
            for kind, engine in engines.items():
                loads.append(_fill(engine, kind, data))
            rows = _interleaved(_paths(engines), data, queries, p.warmup)
        finally:
            for engine in engines.values():
                engine.close()
    by = {row["path"]: row for row in rows}
    summary: dict[str, Any] = {}
    for kind, raw in (("qdrant", "raw QdrantClient.query_points"), ("milvus", "raw MilvusClient.search")):
        summary[f"{kind}: engine.search / raw client p50"] = ratio(
            by[f"engine.search on {kind}"]["p50_ms"], by[raw]["p50_ms"]
        )
        summary[f"{kind}: index.search / raw client p50"] = ratio(
            by[f"{kind.capitalize()}Index.search"]["p50_ms"], by[raw]["p50_ms"]
        )
        summary[f"{kind}: engine.search p50 ms"] = by[f"engine.search on {kind}"]["p50_ms"]
    summary["hnsw: engine.search p50 ms"] = by["engine.search on hnsw"]["p50_ms"]
    for row in loads:
        summary[f"{row['index']}: load records/s"] = row["records/s"]
    return {
        "params": {
            **p.__dict__,
            "k": K,
            "modes": {"qdrant": "local mode on disk", "milvus": "milvus-lite"},
            "versions": {
                name: metadata.version(name) for name in ("qdrant-client", "pymilvus", "milvus-lite")
            },
        },
        "tables": {f"search, k={K}, one query per call (ms)": rows, "load through engine.upsert": loads},
        "summary": summary,
        "notes": [
            "embedded modes only: qdrant-client's local mode (Python, exact search, one SQLite commit "
            "per point) and milvus-lite (a Python reimplementation of Milvus); no server was measured",
            "the raw client paths call the same client object the index holds, on the same collection",
        ],
    }


def _fill(engine: Engine, kind: str, data: np.ndarray, batch: int = 1000) -> dict[str, Any]:
    dim = data.shape[1]
    engine.create_collection(
        COLLECTION, {"name": "v1", "model": {"type": "none", "dim": dim}, "index": {"type": kind}}
    )
    started = time.perf_counter()
    seq = 0
    for start in range(0, len(data), batch):
        rows = [
            {"id": f"d{i}", "vector": data[i].tolist(), "fields": {"n": i}}
            for i in range(start, min(len(data), start + batch))
        ]
        seq = engine.upsert(COLLECTION, rows).seq
    assert engine.collection(COLLECTION).get_version("v1").wait_applied(seq, 3600)
    seconds = time.perf_counter() - started
    return {
        "index": kind,
        "records": len(data),
        "s": round(seconds, 2),
        "records/s": round(len(data) / seconds),
    }


def _paths(engines: dict[str, Engine]) -> dict[str, Callable[[np.ndarray], list[str]]]:
    indexes = {
        kind: engine.collection(COLLECTION).get_version("v1").index("doc") for kind, engine in engines.items()
    }
    qdrant, milvus = indexes["qdrant"], indexes["milvus"]
    assert qdrant is not None and milvus is not None

    def via_engine(engine: Engine) -> Callable[[np.ndarray], list[str]]:
        return lambda q: [hit.id for hit in engine.search(COLLECTION, vector=q.tolist(), k=K).hits]

    def via_index(index: Any) -> Callable[[np.ndarray], list[str]]:
        return lambda q: [id_ for id_, _ in index.search(q[None, :], K)[0]]

    def raw_qdrant(q: np.ndarray) -> list[str]:
        client: Any = qdrant._client  # type: ignore[attr-defined]
        found = client.query_points(qdrant.name, query=q.tolist(), using="v", limit=K, with_payload=["id"])  # type: ignore[attr-defined]
        return [p.payload["id"] for p in found.points]

    def raw_milvus(q: np.ndarray) -> list[str]:
        client: Any = milvus._client  # type: ignore[attr-defined]
        found = client.search(
            milvus.name,  # type: ignore[attr-defined]
            data=[q],
            limit=K,
            anns_field="v",
            search_params={"metric_type": "IP"},
            output_fields=["rid"],
        )
        return [h["entity"]["rid"] for h in found[0]]

    return {
        "engine.search on qdrant": via_engine(engines["qdrant"]),
        "QdrantIndex.search": via_index(qdrant),
        "raw QdrantClient.query_points": raw_qdrant,
        "engine.search on milvus": via_engine(engines["milvus"]),
        "MilvusIndex.search": via_index(milvus),
        "raw MilvusClient.search": raw_milvus,
        "engine.search on hnsw": via_engine(engines["hnsw"]),
    }


def _interleaved(
    paths: dict[str, Callable[[np.ndarray], list[str]]], data: np.ndarray, queries: np.ndarray, warmup: int
) -> list[dict[str, Any]]:
    """Each query through every path, in a shuffled order per query."""
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    found: dict[str, list[list[int]]] = {name: [] for name in paths}
    order, rnd = list(paths), random.Random(0)
    for i, q in enumerate(queries):
        rnd.shuffle(order)
        for name in order:
            start = time.perf_counter()
            hits = paths[name](q)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                seconds[name].append(elapsed)
                found[name].append([int(id_[1:]) for id_ in hits])
    truth = exact_top_k(data, queries[warmup:], K)
    rows = []
    for name in paths:
        stats = latency_stats(seconds[name])
        row = {"path": name, **{key: stats[key] for key in ("n", "p50_ms", "p99_ms", "mean_ms")}}
        row["p95_ms"] = ms(float(np.percentile(seconds[name], 95)))
        row["recall@10"] = round(recall(np.array(found[name]), truth), 4)
        rows.append(row)
    return rows
