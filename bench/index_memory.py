"""Memory per version, recall@10 and bulk-load speed of embedswitch's indexes against raw hnswlib.

Each case runs in a fresh child process on the same clustered unit vectors (``bench_index``'s
Gaussian mixture; 100,000 x 384 in the full run): it makes the data and the exact top 10 of the
queries first, then measures the process's resident memory (``/proc/self/statm``) before and after
building, so the figure is what the index holds beyond its input arrays. glibc's mmap threshold is
fixed so freed temporaries go back to the system and do not count.

- ``hnswlib (raw)``: ``hnswlib.Index.add_items(data, num_threads=-1)`` in one call, M=16,
  ef_construction=128, ef_search=64: the reference for memory and build time.
- ``embedswitch hnsw``: an ``HnswIndex`` (string ids, seq guards, id map, locks) loaded with
  ``upsert`` in batches of ``LOAD_BATCH`` vectors, as a bulk vector load feeds it.
- ``embedswitch usearch f16`` / ``i8``: the reduced-precision index type, same parameters.

``memory / raw`` is the version's resident memory over raw hnswlib's (target <= 1.3 for f32);
``load speed / raw`` is raw hnswlib's build time over the index's load time (target >= 0.9).

The second table loads the same vectors through the engine, into an ``hnsw`` version, in batches of
``ENGINE_BATCH`` (its limit): into a collection of vectors alone (model "none", records carrying
their vectors: durable write, change log, applier), and with ``put_vectors`` into a
``"source": "vectors"`` version over records ingested first (the ingest is not timed), from rows
(JSON-like dicts, each number validated) and from a float32 array with the ids of its rows, in
batches of ``LOAD_BATCH`` (the Python API's bulk path). The clock
stops once the version has applied every write. Each engine load's reference is a raw hnswlib build
of the same vectors run right after it in the same process, so both see the same load on the host.
Recall@10 is against exact inner-product search, queries one at a time (``search`` of one row).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._common import REPO, ratio

LOAD_BATCH = 10_000
ENGINE_BATCH = 10_000
HNSW = {"M": 16, "ef_construction": 128, "ef_search": 64}
CASES = ("hnswlib (raw)", "embedswitch hnsw", "embedswitch usearch f16", "embedswitch usearch i8")
_SPECS = {
    "embedswitch hnsw": {"type": "hnsw"},
    "embedswitch usearch f16": {"type": "usearch", "precision": "f16"},
    "embedswitch usearch i8": {"type": "usearch", "precision": "i8"},
}


@dataclass(frozen=True)
class Params:
    n: int
    dim: int
    queries: int
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        return cls(n=3_000, dim=64, queries=50) if quick else cls(n=100_000, dim=384, queries=500)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    rows = [_in_child(case, params) for case in CASES]
    raw = rows[0]
    for row in rows:
        row["memory / raw"] = ratio(row["memory_bytes_rss"], raw["memory_bytes_rss"])
        row["load speed / raw"] = ratio(raw["load_s"], row["load_s"])
    by_case = {row["case"]: row for row in rows}
    engine_rows = _engine_loads(params)
    return {
        "params": {**params.__dict__, "load_batch": LOAD_BATCH, "hnsw": HNSW},
        "tables": {"memory, recall and load per version": rows, "bulk load through the engine": engine_rows},
        "summary": {
            **{f"{case} memory / raw": by_case[case]["memory / raw"] for case in CASES[1:]},
            **{f"{case} recall@10": by_case[case]["recall_at_10"] for case in CASES},
            "embedswitch hnsw load speed / raw": by_case["embedswitch hnsw"]["load speed / raw"],
            **{f"engine {row['path']} load speed / raw": row["load speed / raw"] for row in engine_rows},
        },
        "notes": [
            "memory is resident-set growth in a fresh process while building, input arrays excluded",
            "i8 suits unit-norm vectors (usearch scales them to int8); get returns the rounded vectors",
        ],
    }


def _engine_loads(params: Params) -> list[dict[str, Any]]:
    from embedswitch import Engine, EngineConfig

    from .bench_index import clustered

    data, _ = clustered(params.n, 1, params.dim, params.seed)
    ids = [str(i) for i in range(params.n)]
    spans = [(start, min(start + ENGINE_BATCH, params.n)) for start in range(0, params.n, ENGINE_BATCH)]
    out = []
    for path in ("records with vectors", "put_vectors", "put_vectors, an array"):
        with (
            tempfile.TemporaryDirectory(prefix="bench-engine-load-") as tmp,
            Engine.open(Path(tmp), EngineConfig(max_apply_lag=None)) as engine,  # a bulk load
        ):
            version = {"name": "v", "model": {"type": "none", "dim": params.dim}, "index": {"type": "hnsw"}}
            if path.startswith("put_vectors"):
                # the records' own version: an exact index, which no background conversion to HNSW
                # (an auto index's, past its threshold) builds while the load is timed
                text = {"name": "text", "model": {"type": "hashing", "dim": 8}, "index": {"type": "exact"}}
                engine.create_collection("c", text)
                for a, b in spans:
                    engine.upsert("c", [{"id": i, "text": f"record {i}"} for i in ids[a:b]])
                engine.add_version("c", {**version, "source": "vectors"})
            else:
                engine.create_collection("c", version)
            start = time.perf_counter()
            if path == "put_vectors, an array":
                for a in range(0, params.n, LOAD_BATCH):
                    engine.put_vectors("c", "v", data[a : a + LOAD_BATCH], ids=ids[a : a + LOAD_BATCH])
            for a, b in spans if path != "put_vectors, an array" else []:
                rows = [{"id": i, "vector": v} for i, v in zip(ids[a:b], data[a:b].tolist(), strict=True)]
                if path == "put_vectors":
                    engine.put_vectors("c", "v", rows)
                else:
                    engine.upsert("c", rows)
            target = engine.collection("c")
            assert target.get_version("v").wait_applied(target.head_seq(), 3600)
            load_s = time.perf_counter() - start
        raw_s = _raw_build_s(data)  # the reference, built right after in this process: same load on the host
        out.append(
            {
                "path": path,
                "load_s": round(load_s, 3),
                "raw_s": round(raw_s, 3),
                "load speed / raw": ratio(raw_s, load_s),
            }
        )
    return out


def _raw_build_s(data: np.ndarray) -> float:
    import hnswlib

    start = time.perf_counter()
    graph = hnswlib.Index(space="ip", dim=data.shape[1])
    graph.init_index(max_elements=len(data), ef_construction=128, M=16)
    graph.add_items(data, np.arange(len(data)), num_threads=-1)
    return time.perf_counter() - start


def _in_child(case: str, params: Params) -> dict[str, Any]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(REPO)}
    code = "import sys; from bench.index_memory import child; child(sys.argv[1])"
    arg = json.dumps({"case": case, **params.__dict__})
    done = subprocess.run(
        [sys.executable, "-c", code, arg], capture_output=True, text=True, env=env, cwd=REPO, timeout=3600
    )
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed: {done.stderr[-2000:]}")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(arg: str) -> None:
    """One case, in this (fresh) process; prints its row as JSON."""
    from bench.bench_index import clustered, exact_top_k, recall

    p = json.loads(arg)
    data, queries = clustered(p["n"], p["queries"], p["dim"], p["seed"])
    truth = exact_top_k(data, queries)
    with tempfile.TemporaryDirectory(prefix="bench-index-memory-") as tmp:
        before = _rss()
        start = time.perf_counter()
        search, info = _build(p["case"], data, Path(tmp))
        load_s = time.perf_counter() - start
        grown = _rss() - before
        found = np.stack([search(q[None, :]) for q in queries])
    row = {
        "case": p["case"],
        "load_s": round(load_s, 3),
        "memory_bytes_rss": grown,
        "bytes_per_vector": round(grown / p["n"], 1),
        "recall_at_10": round(recall(found, truth), 4),
        **info,
    }
    print(json.dumps(row))


def _build(case: str, data: np.ndarray, directory: Path) -> tuple[Any, dict[str, Any]]:
    """Build ``case`` over ``data``; returns its one-query search (top-10 row numbers) and facts."""
    if case == "hnswlib (raw)":
        import hnswlib

        graph = hnswlib.Index(space="ip", dim=data.shape[1])
        graph.init_index(max_elements=len(data), ef_construction=128, M=16)
        graph.add_items(data, np.arange(len(data)), num_threads=-1)
        graph.set_ef(64)
        return (lambda q: graph.knn_query(q, k=10)[0][0].astype(np.int64)), {}
    from embedswitch.index import IndexMeta, index_spec, open_index

    meta = IndexMeta("bench", "v1", "doc", "bench", data.shape[1])
    index = open_index(index_spec(_SPECS[case]), directory, meta)
    ids = [str(i) for i in range(len(data))]
    for start in range(0, len(data), LOAD_BATCH):
        end = start + LOAD_BATCH
        index.upsert(ids[start:end], data[start:end], [1] * len(ids[start:end]))
    del ids

    def search(q: np.ndarray) -> np.ndarray:
        return np.array([int(i) for i, _ in index.search(q, 10)[0]], dtype=np.int64)

    return search, {"memory_bytes_reported": index.memory_bytes()}
