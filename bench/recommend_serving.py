"""Recommendations served by the engine at 10k users x 50k items (generated data).

One collection, three versions, one run:

- ``v1`` ``history-mean`` over ``hashing``: items embedded as they stream in, user vectors derived
  on the interaction stream;
- ``v2`` ``history-mean`` over ``minilm-static`` (an item-model upgrade): the backfill re-embeds
  the items, then rebuilds every user over its own item vectors; the rebuild is also timed alone;
- ``v3`` ``als`` trained by ``engine.train``: item factors loaded, users folded in.

Measured: recommend latency through ``engine.recommend`` next to a query of the same item index
with the same user vector (interleaved per user, so both see the same machine state); the user
rebuild rate after the upgrade; and the time to fold one user in online (interaction acknowledged
→ applied by v3) next to a full ALS retrain on the same interactions.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import Engine, EngineConfig
from embedswitch.evaluation.interactions import Interaction, generate
from embedswitch.models.als import train_als

from ._common import latency_stats, ratio, stopwatch, temp_engine

COLLECTION = "shop"


@dataclass(frozen=True)
class Params:
    users: int
    items: int
    interactions_per_user: int
    upgrade_text: str
    queries: int
    warmup: int
    fold_ins: int
    factors: int = 64
    k: int = 10
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(200, 800, 10, '{"type": "hashing", "seed": 1}', queries=100, warmup=20, fold_ins=10)
        return cls(10_000, 50_000, 20, "minilm-static", queries=2_000, warmup=200, fold_ins=100)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = generate(params.users, params.items, 20, params.interactions_per_user, params.seed)
    # a bulk load that waits for the appliers at its end: no backpressure while it writes
    with temp_engine(EngineConfig(max_apply_lag=None)) as engine:
        build = _build(engine, data.items, data.interactions, params)
        latency = [_latency(engine, version, params) for version in ("v1", "v2", "v3")]
        rebuild = _rebuild(engine)
        fold = _fold_in(engine, data.interactions, params)
    return {
        "params": asdict(params),
        "tables": {
            "build (seconds)": [build],
            "recommend latency, k=10": latency,
            "history-mean user rebuild after the item-model upgrade": [rebuild],
            "ALS: fold one user in online vs retrain": [fold],
        },
        "summary": {
            **{f"{row['version']} engine p50 ms": row["engine p50_ms"] for row in latency},
            **{f"{row['version']} engine/index p50": row["engine/index p50"] for row in latency},
            "users rebuilt per s": rebuild["users/s"],
            "retrain / online fold-in": fold["retrain / fold-in p50"],
        },
        "notes": [
            "'index' queries the version's own item index with the user's vector from that version; "
            "'engine' is engine.recommend pinned to the version (user lookup, seen-items exclusion "
            "from SQLite, item search, fields).",
        ],
    }


def _build(
    engine: Engine, items: dict[str, str], interactions: list[Interaction], params: Params
) -> dict[str, Any]:
    engine.create_collection(COLLECTION, {"name": "v1", "model": {"type": "history-mean", "text": "hashing"}})
    with stopwatch() as ingest:
        rows = [{"id": i, "text": t, "kind": "item"} for i, t in items.items()]
        for start in range(0, len(rows), 5_000):
            engine.upsert(COLLECTION, rows[start : start + 5_000])
        events = [{"user": x.user, "item": x.item, "weight": x.weight, "ts": x.ts} for x in interactions]
        for start in range(0, len(events), 5_000):
            seq = engine.add_interactions(COLLECTION, events[start : start + 5_000]).seq
        engine.collection(COLLECTION).get_version("v1").wait_applied(seq, 3_600)
    upgrade = {"type": "history-mean", "text": _spec(params.upgrade_text)}
    with stopwatch() as upgraded:
        engine.add_version(COLLECTION, {"name": "v2", "model": upgrade})
        engine.wait_ready(COLLECTION, "v2", 3_600)
    with stopwatch() as trained:
        engine.train(COLLECTION, {"version": "v3", "model": {"type": "als", "factors": params.factors}})
        engine.wait_ready(COLLECTION, "v3", 3_600)
    for version in engine.collection(COLLECTION).versions.values():
        version.checkpoint()  # an ``auto`` index past its threshold turns into HNSW here, not mid-run
    return {
        "v1 ingest + stream (items, interactions)": round(ingest.s, 1),
        "v2 upgrade backfill (items, then users)": round(upgraded.s, 1),
        "v3 train + load + fold-in": round(trained.s, 1),
    }


def _spec(text: str) -> Any:
    return json.loads(text) if text.startswith("{") else text


def _latency(engine: Engine, name: str, params: Params) -> dict[str, Any]:
    version = engine.collection(COLLECTION).get_version(name)
    items = version.index("item")
    users = random.Random(params.seed).sample(
        sorted(version.index("user").ids()), min(params.users, params.queries)
    )
    vectors = {u: version.vector("user", u) for u in users}

    def by_index(user: str) -> None:
        items.search(vectors[user][None, :], params.k)

    def by_engine(user: str) -> None:
        engine.recommend(COLLECTION, user=user, k=params.k, version=name)

    def no_exclusion(user: str) -> None:
        engine.recommend(COLLECTION, user=user, k=params.k, version=name, exclude_seen=False)

    calls: dict[str, Callable[[str], None]] = {
        "index": by_index,
        "engine": by_engine,
        "engine, seen kept": no_exclusion,
    }
    samples: dict[str, list[float]] = {path: [] for path in calls}
    for n, user in enumerate(users * max(1, -(-(params.queries + params.warmup) // len(users)))):
        if n >= params.queries + params.warmup:
            break
        for path, call in calls.items():
            start = time.perf_counter()
            call(user)
            if n >= params.warmup:
                samples[path].append(time.perf_counter() - start)
    stats = {path: latency_stats(values) for path, values in samples.items()}
    row: dict[str, Any] = {
        "version": name,
        "model": version.row.spec["model"]["type"],
        "items": len(items),
        "index type": getattr(items, "index_type", type(items).__name__),
        "dim": version.model.dim,
    }
    for path, values in stats.items():
        row[f"{path} p50_ms"] = values["p50_ms"]
        row[f"{path} p99_ms"] = values["p99_ms"]
    row["engine/index p50"] = ratio(stats["engine"]["p50_ms"], stats["index"]["p50_ms"])
    return row


def _rebuild(engine: Engine) -> dict[str, Any]:
    """The upgrade's last step again, alone: every user of v2 from v2's own item vectors."""
    version = engine.collection(COLLECTION).get_version("v2")
    users = len(engine.store.interaction_users(COLLECTION))
    with stopwatch() as took:
        version.rebuild_users()
    return {"users": users, "seconds": round(took.s, 2), "users/s": round(users / took.s)}


def _fold_in(engine: Engine, interactions: list[Interaction], params: Params) -> dict[str, Any]:
    """Online: one interaction per user, acknowledged → applied by v3 (its user re-folded). Offline:
    ALS trained from scratch on the same interactions, as ``train`` does."""
    v3 = engine.collection(COLLECTION).get_version("v3")
    items = sorted(v3.index("item").ids())
    users = sorted(v3.index("user").ids())
    rng = random.Random(params.seed + 1)
    online = []
    for n in range(params.fold_ins):
        user = rng.choice(users)
        start = time.perf_counter()
        seq = engine.add_interactions(
            COLLECTION, [{"user": user, "item": rng.choice(items), "ts": 1e9 + n}]
        ).seq
        v3.wait_applied(seq, 60)
        online.append(time.perf_counter() - start)
    histories = engine.store.user_histories(COLLECTION, engine.store.interaction_users(COLLECTION)[:500])
    item_index = v3.index("item")
    compute = []
    for history in histories.values():
        start = time.perf_counter()
        v3.derive_user(item_index, history)
        compute.append(time.perf_counter() - start)
    with stopwatch() as retrain:
        train_als(interactions, factors=params.factors)
    fold = latency_stats(online)
    return {
        "fold-in online p50_ms": fold["p50_ms"],
        "fold-in online p99_ms": fold["p99_ms"],
        "fold-in compute p50_ms": latency_stats(compute)["p50_ms"],
        "full retrain s": round(retrain.s, 2),
        "retrain / fold-in p50": ratio(retrain.s * 1000, fold["p50_ms"]),
    }
