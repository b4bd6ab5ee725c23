"""Backfill: its throughput, what it does to live search latency, and freshness while it runs.

A collection holds SciFact with ``v1`` live (all traffic), on the default ``EngineConfig``. Then:

1. throughput: a new version with another model is added and timed until its backfill finishes
   and until it is ready, next to ``model.encode`` of the new model on the same texts in chunks of
   ``backfill_batch``, measured in the same run right before and right after; the faster of the two
   is the reference (target: ratio >= 0.9);
2. latency: one closed-loop thread issues in-process ``engine.search`` calls with keys (all routed
   to ``v1``), first idle, then while a new version backfills (target: p99 <= 1.5x idle). The
   measurement stops when the backfill finishes or after ``during_max_s``;
3. freshness: while a new version backfills, records are upserted at a fixed rate (each a unique id
   and text) and, for each ready version, the time from the acknowledged upsert until a search for
   its text returns it first is measured by polling ``engine.search(k=1, version=...)``.

With ``EMBEDSWITCH_BENCH_DEVICE`` set (e.g. ``cuda``), the full run backfills the whole corpus with
``minilm`` on that device (``v1`` is ``hashing`` there).

Each part starts a fresh version and retires it afterwards, so the parts do not disturb each other.
Rows say how much of the measurement overlapped the backfill: in quick mode the backfill can finish
before the measurement does.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from embedswitch import Engine, EngineConfig
from embedswitch.models import load_model
from embedswitch.version import READY, Version

from ._common import (
    cycled,
    encode_throughput,
    latency_stats,
    load_scifact,
    ratio,
    temp_engine,
    upsert_all,
    wait_applied,
)

COLLECTION = "backfill"
ModelArg = str | dict[str, Any]


@dataclass(frozen=True)
class Params:
    v1_model: ModelArg
    new_model: ModelArg
    docs: int | None  # None: the whole corpus
    idle_queries: int
    during_max_s: float
    freshness_upserts: int
    upsert_interval_s: float = 0.02
    poll_interval_s: float = 0.005
    visible_timeout_s: float = 10.0
    k: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        device = os.environ.get("EMBEDSWITCH_BENCH_DEVICE")
        if device and not quick:  # an accelerator: the whole corpus, minilm on it
            return cls(
                v1_model="hashing",
                new_model={"type": "minilm", "device": device},
                docs=None,
                idle_queries=1000,
                during_max_s=30.0,
                freshness_upserts=500,
            )
        if quick:
            return cls(
                v1_model="hashing",
                new_model={"type": "hashing", "seed": 1},
                docs=300,
                idle_queries=200,
                during_max_s=5.0,
                freshness_upserts=50,
            )
        return cls(
            v1_model="minilm-static",
            new_model="minilm",
            docs=1500,  # minilm embeds 17-20 docs/s on 2 cores; the whole corpus is 5,183
            idle_queries=1000,
            during_max_s=30.0,
            freshness_upserts=500,
        )


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = load_scifact()
    ids, texts = data.docs(params.docs if params.docs is not None else len(data.doc_ids))
    config = EngineConfig()
    with temp_engine(config) as engine:
        engine.create_collection(COLLECTION, {"name": "v1", "model": params.v1_model})
        wait_applied(engine, COLLECTION, "v1", upsert_all(engine, COLLECTION, ids, texts))
        throughput = _throughput(engine, params, texts, config.backfill_batch)
        latency = _latency(engine, params, data.query_texts)
        freshness = _freshness(engine, params, texts)
    return {
        "params": {
            **asdict(params),
            "records": len(ids),
            "backfill_batch": config.backfill_batch,
            "encode_workers": config.encode_workers,
            "backfill_max_rate": config.backfill_max_rate,
            "backfill_yield_max_wait_s": config.backfill_yield_max_wait_s,
        },
        "tables": {
            "backfill throughput": [throughput],
            "search latency on v1 during a backfill (ms)": latency,
            "freshness during a backfill (ms from acknowledged upsert to visible)": freshness,
        },
        "summary": {
            "backfill/raw encode": throughput["backfill/raw"],
            "p99 during/idle": latency[-1]["p99 during/idle"],
            **{
                f"freshness p99 ms {row['version']}": row.get("p99_ms")
                for row in freshness
                if not row["version"].startswith("(")
            },
        },
        "notes": [
            "targets: backfill/raw >= 0.9; search p99 during a backfill <= 1.5x idle",
            "the backfill's encoders run as SCHED_IDLE threads (nice +10 where not permitted), "
            "the raw encode at normal priority",
        ],
    }


# -- 1. throughput -------------------------------------------------------------------------------


def _throughput(engine: Engine, params: Params, texts: list[str], batch: int) -> dict[str, Any]:
    model = load_model(params.new_model)
    model.encode(texts[:8], purpose="document")  # warm-up
    before = encode_throughput(model, texts, batch)
    start = time.perf_counter()
    engine.add_version(COLLECTION, {"name": "v2", "model": params.new_model})
    version = engine.collection(COLLECTION).get_version("v2")
    _wait_for(lambda: _backfill_finished(version), "the v2 backfill to finish")
    backfill_s = time.perf_counter() - start
    _wait_for(lambda: version.state == READY, "v2 to be ready")
    ready_s = time.perf_counter() - start
    backfill_rps = round(len(texts) / backfill_s, 1)
    engine.retire(COLLECTION, "v2")
    after = encode_throughput(model, texts, batch)
    raw_rps = max(before["records_per_s"], after["records_per_s"])
    return {
        "model": _label(params.new_model),
        "records": len(texts),
        "raw_encode_rps": raw_rps,
        "backfill_rps": backfill_rps,
        "backfill/raw": ratio(backfill_rps, raw_rps),
        "raw_rps_before": before["records_per_s"],
        "raw_rps_after": after["records_per_s"],
        "backfill_s": round(backfill_s, 3),
        "until_ready_s": round(ready_s, 3),
    }


# -- 2. latency ----------------------------------------------------------------------------------


def _latency(engine: Engine, params: Params, queries: list[str]) -> list[dict[str, Any]]:
    texts = cycled(queries, params.idle_queries + 20)

    def search(i: int) -> None:
        engine.search(COLLECTION, texts[i % len(texts)], k=params.k, key=f"user-{i}")

    for i in range(20):  # warm-up
        search(i)
    idle = [_timed(search, i) for i in range(params.idle_queries)]
    engine.add_version(COLLECTION, {"name": "v3", "model": params.new_model})
    version = engine.collection(COLLECTION).get_version("v3")
    during: list[float] = []
    deadline = time.monotonic() + params.during_max_s
    while not _backfill_finished(version) and time.monotonic() < deadline:
        during.append(_timed(search, len(during)))
    progress = _progress(version)
    engine.retire(COLLECTION, "v3")
    idle_stats, during_stats = latency_stats(idle), latency_stats(during)
    return [
        {"phase": "idle", **idle_stats},
        {
            "phase": "during backfill",
            **during_stats,
            "backfill done during measurement": progress,
            "p50 during/idle": ratio(during_stats["p50_ms"], idle_stats["p50_ms"]) if during else None,
            "p99 during/idle": ratio(during_stats["p99_ms"], idle_stats["p99_ms"]) if during else None,
        },
    ]


def _timed(call: Callable[[int], None], i: int) -> float:
    start = time.perf_counter()
    call(i)
    return time.perf_counter() - start


# -- 3. freshness --------------------------------------------------------------------------------


@dataclass
class _Probe:
    id: str
    text: str
    acked: float  # perf_counter() when the upsert returned
    during_backfill: bool
    visible: dict[str, float] = field(default_factory=dict)  # version -> seconds after the ack


def _freshness(engine: Engine, params: Params, texts: list[str]) -> list[dict[str, Any]]:
    target = engine.collection(COLLECTION)
    live = sorted(name for name, v in target.versions.items() if v.state == READY)
    engine.add_version(COLLECTION, {"name": "v4", "model": params.new_model})
    building = target.get_version("v4")
    words = _vocabulary(texts)
    rng = random.Random(0)
    probes: list[_Probe] = []
    acks: list[float] = []
    lock = threading.Lock()

    errors: list[Exception] = []

    def write() -> None:
        start = time.perf_counter()
        try:
            for i in range(params.freshness_upserts):
                time.sleep(max(0.0, start + i * params.upsert_interval_s - time.perf_counter()))
                text = f"freshness probe {i}: " + " ".join(rng.choices(words, k=12))
                sent = time.perf_counter()
                engine.upsert(COLLECTION, [{"id": f"fresh-{i}", "text": text}])
                acked = time.perf_counter()
                acks.append(acked - sent)
                with lock:
                    probes.append(_Probe(f"fresh-{i}", text, acked, not _backfill_finished(building)))
        except Exception as exc:
            errors.append(exc)

    writer = threading.Thread(target=write, name="bench-writer", daemon=True)
    writer.start()
    _poll_until_visible(engine, params, live, probes, lock, writer)
    writer.join()
    if errors:
        raise RuntimeError("the freshness writer failed") from errors[0]
    progress = _progress(building)
    engine.retire(COLLECTION, "v4")
    return _freshness_rows(live, probes, progress) + [
        {"version": "(upsert call)", "upserts": len(acks), **latency_stats(acks)}
    ]


def _freshness_rows(live: list[str], probes: list[_Probe], progress: str) -> list[dict[str, Any]]:
    during = sum(p.during_backfill for p in probes)
    rows = []
    for name in live:
        seen = [p.visible[name] for p in probes if name in p.visible]
        rows.append(
            {
                "version": name,
                "upserts": len(probes),
                "during backfill": during,
                "never visible": len(probes) - len(seen),
                **latency_stats(seen),
                "backfill done meanwhile": progress,
            }
        )
    return rows


def _poll_until_visible(
    engine: Engine,
    params: Params,
    live: list[str],
    probes: list[_Probe],
    lock: threading.Lock,
    writer: threading.Thread,
) -> None:
    """Poll every pending probe in every live version each ``poll_interval_s`` until each is the
    top hit for its own text, or ``visible_timeout_s`` after its ack."""
    checked = 0  # probes before this index are resolved in every version
    while writer.is_alive() or checked < len(probes):
        with lock:
            pending = probes[checked:]
        now = time.perf_counter()
        for probe in pending:
            for name in live:
                if name in probe.visible or now - probe.acked > params.visible_timeout_s:
                    continue
                hits = engine.search(COLLECTION, probe.text, k=1, version=name).hits
                if hits and hits[0].id == probe.id:
                    probe.visible[name] = time.perf_counter() - probe.acked
        while checked < len(probes) and _resolved(probes[checked], live, params.visible_timeout_s):
            checked += 1
        time.sleep(params.poll_interval_s)


def _resolved(probe: _Probe, live: list[str], timeout_s: float) -> bool:
    return len(probe.visible) == len(live) or time.perf_counter() - probe.acked > timeout_s


def _vocabulary(texts: list[str]) -> list[str]:
    words = sorted({w for text in texts[:500] for w in re.findall(r"[a-z]{4,}", text.lower())})
    return words or ["alpha", "beta", "gamma", "delta"]


# -- helpers -------------------------------------------------------------------------------------


def _backfill_finished(version: Version) -> bool:
    return version.backfill is None or version.backfill.state.finished


def _progress(version: Version) -> str:
    if version.backfill is None:
        return "n/a"
    state = version.backfill.state
    return "finished" if state.finished else f"{state.done}/{state.total}"


def _wait_for(
    condition: Callable[[], bool], what: str, timeout_s: float = 3600, poll_s: float = 0.005
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s} s")
        time.sleep(poll_s)


def _label(model: ModelArg) -> str:
    return model if isinstance(model, str) else ", ".join(f"{k}={v}" for k, v in model.items())
