"""Backfill executors side by side: docs/s and live search p99 during a backfill, in one run.

For each executor (``threads``, ``process``, ``ray``) an engine on a fresh data dir holds SciFact
documents with ``v1`` live (all traffic), then, measured back to back on the same machine:

1. idle: one thread issues in-process ``engine.search`` calls with keys (routed to ``v1``) at a
   steady ``search_qps`` (live traffic, not a saturating loop: on a 2-core machine a closed loop
   would take a core from whatever runs beside it) while nothing else runs;
2. raw encode: ``model.encode`` of the new model over the same texts in chunks of
   ``backfill_batch``, in this process, torch on every core (``_common.encode_throughput``), and
   again on ``encode_workers`` threads at the workers' priority (nice +10), one torch thread each
   ("like workers": what the executors could get on a machine shared with other work);
3. backfill: a new version with that model and ``backfill_executor`` set to the executor, timed
   until its backfill finishes, while the same paced searches run on ``v1``.

Each row carries its own idle p99 and raw encode, so the ratios compare numbers measured minutes
apart at most, on a machine shared with other work. ``backfill_rps`` counts from the version's
creation (a pool's first page waits for its workers to start and load the model, a Ray run for
Ray too); ``steady_rps`` from the first page written to the last, which is what a long backfill
sees. The Ray cluster is a local one, started by the first Ray backfill (its start is not timed:
it happens once per process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import Engine, EngineConfig
from embedswitch.activity import lower_priority
from embedswitch.backfill import BackfillConfig
from embedswitch.models import load_model
from embedswitch.version import Version

from ._common import cycled, encode_throughput, latency_stats, load_scifact, ratio, temp_engine, upsert_all
from ._common import wait_applied as wait_until_applied

COLLECTION = "executors"
ModelArg = str | dict[str, Any]


@dataclass(frozen=True)
class Params:
    executors: tuple[str, ...]
    v1_model: ModelArg
    new_model: ModelArg
    docs: int
    idle_queries: int
    search_qps: float = 100.0
    backfill_batch: int = 64  # small pages: the first page (workers starting) is a small part of the run
    idle_priority: bool = True  # the default: SCHED_IDLE on top of nice +10 (live searches come first)
    k: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(("threads", "process"), "hashing", {"type": "hashing", "seed": 1}, 300, 200)
        return cls(("threads", "process", "ray"), "minilm-static", "minilm", 640, 1000)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    ids, texts = data.docs(params.docs)
    queries = cycled(data.query_texts, params.idle_queries + 20)
    rows = [_one(name, params, ids, texts, queries) for name in params.executors]
    if "ray" in params.executors:
        import ray

        ray.shutdown()
    config = _config("threads", params)
    return {
        "params": {
            **asdict(params),
            "encode_workers": config.encode_workers,
            "torch_threads": config.torch_threads,
        },
        "tables": {"backfill by executor, each beside raw encode and idle search": rows},
        "summary": {
            **{f"{row['executor']} steady/raw": row["steady/raw"] for row in rows},
            **{f"{row['executor']} steady/raw like workers": row["steady/raw like workers"] for row in rows},
            **{f"{row['executor']} p99 during/idle": row["p99 during/idle"] for row in rows},
        },
        "notes": [
            "targets (CPU): process pool steady/raw >= 0.9 and p99 during/idle <= 1.5",
            "live search: in-process engine.search at search_qps, idle and during the backfill",
            "raw like workers: model.encode on encode_workers threads at nice +10, one torch thread "
            "each, in this process: the executors' CPU share without the backfill around them",
            "raw encode: one call per page in this process, torch on every core; the executors: "
            "encode_workers workers at nice +10 and, with idle_priority (the default), SCHED_IDLE, "
            "one torch thread each",
        ],
    }


def _one(name: str, params: Params, ids: list[str], texts: list[str], queries: list[str]) -> dict[str, Any]:
    config = _config(name, params)
    with temp_engine(config) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": params.v1_model})
        wait_until_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        search = _searcher(engine, queries, params.k)
        for i in range(20):  # warm-up
            search(i)
        idle = _paced(search, params.search_qps, threading.Event(), params.idle_queries)
        model = load_model(params.new_model)
        model.encode(texts[:8], purpose="document")  # warm-up
        raw = encode_throughput(model, texts, config.backfill_batch)
        like_workers = _encode_like_workers(model, texts, config.backfill_batch, config.encode_workers)
        backfill = _backfill(engine, params, search)
    idle_stats, during_stats = latency_stats(idle), latency_stats(backfill.pop("during"))
    return {
        "executor": name,
        "records": len(texts),
        "raw_encode_rps": raw["records_per_s"],
        **backfill,
        "backfill/raw": ratio(backfill["backfill_rps"], raw["records_per_s"]),
        "steady/raw": ratio(backfill["steady_rps"], raw["records_per_s"]),
        "raw_like_workers_rps": like_workers,
        "steady/raw like workers": ratio(backfill["steady_rps"], like_workers),
        "idle p50 ms": idle_stats["p50_ms"],
        "idle p99 ms": idle_stats["p99_ms"],
        "during n": during_stats["n"],
        "during p50 ms": during_stats.get("p50_ms"),
        "during p99 ms": during_stats.get("p99_ms"),
        "p99 during/idle": ratio(during_stats.get("p99_ms", 0), idle_stats["p99_ms"]),
    }


def _config(executor: str, params: Params) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "backfill_executor": executor,
            "backfill_batch": params.backfill_batch,
            "backfill_idle_priority": params.idle_priority,
        }
    )


def _backfill(engine: Engine, params: Params, search: Any) -> dict[str, Any]:
    """Add ``v2`` and search ``v1`` at ``search_qps`` until its backfill is done; the first page's
    time comes from polling the version's progress beside the searches."""
    during: list[float] = []
    stop = threading.Event()

    def loop() -> None:
        during.extend(_paced(search, params.search_qps, stop))

    start = time.perf_counter()
    engine.add_version(COLLECTION, {"name": "v2", "model": params.new_model})
    version = engine.collection(COLLECTION).get_version("v2")
    searcher = threading.Thread(target=loop, name="bench-search", daemon=True)
    searcher.start()
    first: tuple[float, int] | None = None
    while not _finished(version):
        done = version.backfill.state.done if version.backfill is not None else 0
        if first is None and done > 0:
            first = (time.perf_counter(), done)
        time.sleep(0.005)
    end = time.perf_counter()
    stop.set()
    searcher.join()
    total = version.backfill.state.done if version.backfill is not None else 0
    first = first or (start, 0)
    engine.retire(COLLECTION, "v2")
    return {
        "backfill_s": round(end - start, 3),
        "first_page_s": round(first[0] - start, 3),
        "backfill_rps": round(total / (end - start), 1),
        "steady_rps": round((total - first[1]) / max(1e-9, end - first[0]), 1),
        "during": during,
    }


def _encode_like_workers(model: Any, texts: list[str], batch: int, workers: int) -> float:
    """Records/s of ``model.encode`` on ``workers`` threads of this process at the workers'
    priority (nice +10), one torch thread each, pages dealt round-robin: the executors' CPU share
    and parallelism without the backfill around them."""
    pages = [texts[i : i + batch] for i in range(0, len(texts), batch)]

    def work(mine: list[list[str]]) -> None:
        lower_priority(BackfillConfig().nice, idle=False)
        for page in mine:
            model.encode(page, purpose="document")

    threads = [threading.Thread(target=work, args=(pages[i::workers],)) for i in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return round(len(texts) / (time.perf_counter() - start), 1)


def _paced(search: Any, qps: float, stop: threading.Event, count: int | None = None) -> list[float]:
    """Seconds of each ``search(i)`` issued every ``1 / qps`` s (a late one goes at once, the next
    keeps the schedule), until ``stop`` is set or ``count`` were made."""
    out: list[float] = []
    due = time.perf_counter()
    while not stop.is_set() and (count is None or len(out) < count):
        due += 1 / qps
        out.append(_timed(search, len(out)))
        time.sleep(max(0.0, due - time.perf_counter()))
    return out


def _searcher(engine: Engine, queries: list[str], k: int) -> Any:
    def search(i: int) -> None:
        engine.search(COLLECTION, queries[i % len(queries)], k=k, key=f"user-{i}")

    return search


def _timed(call: Any, i: int) -> float:
    start = time.perf_counter()
    call(i)
    return time.perf_counter() - start


def _finished(version: Version) -> bool:
    return version.backfill is None or version.backfill.state.finished
