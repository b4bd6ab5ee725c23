"""Shadow traffic: what mirroring every request to a slow candidate costs the live answer.

A collection holds SciFact documents with ``v1`` live (a fast model) and a ready candidate ``v2``
(a slow one). One closed-loop client thread issues in-process ``engine.search`` calls with keys,
in alternating blocks: shadow off, then shadow at 100% to ``v2``, and so on, so a drift in machine
load hits both alike. Before an "off" block the mirror queue is drained, so "off" is really idle;
during "on" blocks the mirror worker runs the candidate in the background (at idle CPU priority)
and drops what its queue can't hold. Reported: live latency p50/p99 per phase and their ratio, the
candidate's latency as the shadow report gives it, mirrored and dropped requests, overlap@10.

A second table prices recording each request's assignment (needed for A/B feedback): the buffered
``ExperimentLog.record`` the search path uses, against writing each assignment in its own SQLite
transaction (WAL) with ``synchronous=NORMAL`` and ``FULL``.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedswitch import Engine, EngineConfig
from embedswitch.experiments.log import Assignment, open_experiment_log

from ._common import cycled, latency_stats, load_scifact, ratio, temp_engine, upsert_all, wait_applied

COLLECTION = "shadow"
ModelArg = str | dict[str, Any]


@dataclass(frozen=True)
class Params:
    live_model: ModelArg
    candidate_model: ModelArg
    docs: int
    blocks: int  # per phase
    block_queries: int
    record_calls: int  # for the assignment-recording cost
    k: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls("hashing", "minilm-static", docs=300, blocks=3, block_queries=50, record_calls=500)
        return cls("minilm-static", "minilm", docs=1000, blocks=10, block_queries=200, record_calls=5000)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    ids, texts = data.docs(params.docs)
    with temp_engine(EngineConfig()) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": params.live_model})
        wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        engine.add_version(COLLECTION, {"name": "v2", "model": params.candidate_model})
        engine.wait_ready(COLLECTION, "v2", timeout_s=3600)
        phases, shadow = _latency(engine, params, data.query_texts)
    recording = _recording_cost(params.record_calls)
    off, on = phases
    return {
        "params": asdict(params),
        "tables": {
            "live search latency, shadow off vs 100% to the candidate (ms)": phases,
            "the candidate, as the shadow report gives it": [shadow],
            "recording one assignment (µs per request)": recording,
        },
        "summary": {
            "p50 shadow on/off": on["p50 on/off"],
            "p99 shadow on/off": on["p99 on/off"],
            "candidate p50 ms": shadow["candidate p50_ms"],
            "buffered record µs": recording[0]["us_per_call"],
        },
        "notes": [
            f"live {_label(params.live_model)}, candidate {_label(params.candidate_model)}; one closed-loop "
            "client thread, in-process engine.search; phases alternate in blocks",
            "the mirror worker runs at SCHED_IDLE (nice +10 where not permitted); a full queue drops",
        ],
    }


def _latency(
    engine: Engine, params: Params, queries: list[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    texts = cycled(queries, params.blocks * params.block_queries)
    mirror = engine.experiments.mirror
    timings: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(20):  # warm-up, both models
        engine.search(COLLECTION, texts[i], k=params.k, version="v2")
        engine.search(COLLECTION, texts[i], k=params.k, key=f"warm-{i}")
    engine.reset_experiment(COLLECTION)
    n = 0
    for _ in range(params.blocks):
        for phase in ("off", "on"):
            shadow = {"version": "v2", "percent": 100} if phase == "on" else "off"
            engine.set_traffic(COLLECTION, shadow=shadow)
            mirror.drain(timeout_s=600)
            for _ in range(params.block_queries):
                start = time.perf_counter()
                engine.search(COLLECTION, texts[n % len(texts)], k=params.k, key=f"user-{n}")
                timings[phase].append(time.perf_counter() - start)
                n += 1
    engine.set_traffic(COLLECTION, shadow="off")
    mirror.drain(timeout_s=600)
    off, on = latency_stats(timings["off"]), latency_stats(timings["on"])
    rows = [
        {"phase": "shadow off", **off},
        {
            "phase": "shadow 100% to v2",
            **on,
            "p50 on/off": ratio(on["p50_ms"], off["p50_ms"]),
            "p99 on/off": ratio(on["p99_ms"], off["p99_ms"]),
        },
    ]
    (report,) = engine.experiment(COLLECTION).shadow
    text = engine.metrics.render().decode()
    dropped = _counter(text, "embedswitch_shadow_dropped_total")
    shadow = {
        "candidate": _label(params.candidate_model),
        "requests in on blocks": len(timings["on"]),
        "mirrored": report.mirrored,
        "dropped (queue full)": dropped,
        "errors": report.errors,
        "candidate p50_ms": round(report.latency_ms.p50, 3),
        "candidate p99_ms": round(report.latency_ms.p99, 3),
        "overlap@10 with live": round(report.overlap_at_10, 3),
    }
    return rows, shadow


def _counter(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"{name}{{"))


def _recording_cost(calls: int) -> list[dict[str, Any]]:
    hits = tuple((f"doc-{i}", "v1") for i in range(10))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        log = open_experiment_log(Path(tmp), None)
        start = time.perf_counter()
        for i in range(calls):
            log.record(_assignment(f"b{i}", hits))
        buffered = time.perf_counter() - start
        log.close()
        rows.append(
            {"how": "buffered (ExperimentLog.record)", "us_per_call": round(buffered / calls * 1e6, 2)}
        )
        for sync in ("NORMAL", "FULL"):
            seconds = _direct_inserts(Path(tmp) / f"direct-{sync}.db", sync, calls, hits)
            rows.append(
                {
                    "how": f"one transaction per request, synchronous={sync}",
                    "us_per_call": round(seconds / calls * 1e6, 2),
                }
            )
    base = rows[0]["us_per_call"]
    for row in rows:
        row["x buffered"] = ratio(row["us_per_call"], base)
    return rows


def _assignment(request_id: str, hits: tuple[tuple[str, str], ...]) -> Assignment:
    return Assignment(request_id, COLLECTION, 1, "search", "single", "v1", None, "user", hits, time.time())


def _direct_inserts(path: Path, sync: str, calls: int, hits: tuple[tuple[str, str], ...]) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    db.execute(
        "CREATE TABLE a(request_id TEXT PRIMARY KEY, collection TEXT, version TEXT, hits TEXT, at REAL)"
    )
    start = time.perf_counter()
    for i in range(calls):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO a VALUES (?,?,?,?,?)", (f"d{i}", COLLECTION, "v1", repr(hits), time.time()))
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def _label(model: ModelArg) -> str:
    return model if isinstance(model, str) else str(model.get("type"))
