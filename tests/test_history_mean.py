"""history-mean versions: user vectors follow interactions and item re-embeddings, and an upgrade
rebuilds users after items, all within one version's space."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from _checks import assert_end_state

from embedswitch import Engine, EngineConfig, RecordNotFound
from embedswitch.evaluation.interactions import generate

FAST = EngineConfig(checkpoint_interval_s=0.2, backfill_batch=64)
V1 = {"type": "history-mean", "text": "hashing", "half_life_days": 7}
V2 = {"type": "history-mean", "text": {"type": "hashing", "seed": 1}, "half_life_days": 30}


def _load(engine: Engine, users: int = 60, items: int = 300) -> None:
    data = generate(users=users, items=items, topics=6, interactions_per_user=8, seed=3)
    engine.upsert("shop", [{"id": i, "text": t, "kind": "item"} for i, t in data.items.items()])
    rows = [{"user": x.user, "item": x.item, "weight": x.weight, "ts": x.ts} for x in data.interactions]
    for start in range(0, len(rows), 500):
        engine.add_interactions("shop", rows[start : start + 500])


def _caught_up(engine: Engine) -> None:
    target = engine.collection("shop")
    for version in target.versions.values():
        assert version.wait_applied(target.head_seq(), 30)


def test_new_user_gets_recommendations_from_their_history(engine: Engine) -> None:
    engine.create_collection("shop", {"name": "v1", "model": V1})
    _load(engine)
    ack = engine.add_interactions(
        "shop",
        [{"user": "newbie", "item": i, "ts": float(n)} for n, i in enumerate(["i00001", "i00002", "i00003"])],
    )
    _caught_up(engine)
    result = engine.recommend("shop", user="newbie", k=5)
    assert result.applied_seq >= ack.seq and len(result.hits) == 5
    assert {"i00001", "i00002", "i00003"}.isdisjoint(h.id for h in result.hits)
    assert_end_state(engine, "shop")


def test_user_vectors_follow_item_updates_and_deletes(engine: Engine) -> None:
    engine.create_collection("shop", {"name": "v1", "model": V1})
    engine.upsert(
        "shop", [{"id": f"i{n}", "text": f"item about topic {n}", "kind": "item"} for n in range(5)]
    )
    engine.add_interactions(
        "shop", [{"user": "u", "item": "i1", "ts": 1.0}, {"user": "u", "item": "i2", "ts": 2.0}]
    )
    _caught_up(engine)
    before = engine.collection("shop").versions["v1"].vector("user", "u")
    engine.upsert("shop", [{"id": "i1", "text": "completely different words now", "kind": "item"}])
    _caught_up(engine)
    assert not np.allclose(before, engine.collection("shop").versions["v1"].vector("user", "u"))
    assert_end_state(engine, "shop")
    engine.delete("shop", "i1", kind="item")
    engine.delete("shop", "i2", kind="item")
    _caught_up(engine)
    with pytest.raises(RecordNotFound):  # no live item left in the history
        engine.recommend("shop", user="u")
    assert_end_state(engine, "shop")


def test_upgrade_rebuilds_users_after_items_under_streaming(tmp_path: Path) -> None:
    slow = EngineConfig(checkpoint_interval_s=0.2, backfill_batch=32, backfill_max_rate=300)
    with Engine.open(tmp_path, slow) as engine:
        engine.create_collection("shop", {"name": "v1", "model": V1})
        _load(engine)
        stop = threading.Event()

        def stream() -> None:  # interactions and item edits keep arriving during the backfill
            rng = random.Random(1)
            n = 0
            while not stop.is_set():
                n += 1
                engine.add_interactions(
                    "shop",
                    [
                        {
                            "user": f"u{rng.randrange(80):04}",
                            "item": f"i{rng.randrange(300):05}",
                            "ts": 1e6 + n,
                        }
                    ],
                )
                if n % 5 == 0:
                    engine.upsert(
                        "shop",
                        [{"id": f"i{rng.randrange(300):05}", "text": f"edited item {n}", "kind": "item"}],
                    )
                time.sleep(0.005)

        writer = threading.Thread(target=stream)
        writer.start()
        try:
            engine.add_version("shop", {"name": "v2", "model": V2})
            time.sleep(0.3)
            assert engine.describe_version("shop", "v2").state == "building"  # streaming overlaps it
            engine.wait_ready("shop", "v2", 60)
            engine.set_traffic("shop", {"v1": 50, "v2": 50})
            for n in range(40):  # the user vector and the item index come from one version
                result = engine.recommend("shop", user="u0007", k=3, key=f"s{n}")
                version = engine.collection("shop").versions[result.version]
                user = version.vector("user", "u0007")
                items = version.index("item").get([h.id for h in result.hits])
                for hit in result.hits:
                    assert hit.score == pytest.approx(float(items[hit.id] @ user), abs=1e-4)
        finally:
            stop.set()
            writer.join()
        _caught_up(engine)
        assert_end_state(engine, "shop")
    with Engine.open(tmp_path, FAST) as engine:  # and after a restart
        _caught_up(engine)
        assert_end_state(engine, "shop")


def test_recommender_rollout_under_load(engine: Engine) -> None:
    """Concurrent recommend calls over HTTP while interactions stream and v2 (another text model)
    backfills, ramps and takes over, and then v3 (ALS, trained on the stream so far) does. Probe
    users get no new interactions, so their vectors are stable per version and every returned score
    can be checked against the answering version's own user and item vectors: a user vector from
    one version scored against another version's items would not reproduce it."""
    import httpx
    from conftest import ServerThread

    engine.create_collection("shop", {"name": "v1", "model": V1})
    _load(engine, users=60, items=300)
    _caught_up(engine)  # the probe users have their v1 vectors before the load starts
    probes = [f"u{n:04}" for n in range(10)]
    answers: list[tuple[str, str, list[dict]]] = []
    errors: list[str] = []
    stop = threading.Event()
    with ServerThread(engine) as server:

        def ask(t: int) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    user = probes[(t + n) % len(probes)]
                    r = http.post(
                        "/v1/collections/shop/recommend", json={"user": user, "k": 5, "key": f"k{n % 7}"}
                    )
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text}")
                    else:
                        answers.append((user, r.json()["version"], r.json()["hits"]))

        def stream() -> None:
            rng = random.Random(4)
            with httpx.Client(base_url=server.url, timeout=30) as http:
                while not stop.is_set():
                    body = [{"user": f"other{rng.randrange(30)}", "item": f"i{rng.randrange(300):05}"}]
                    assert http.post("/v1/collections/shop/interactions", json=body).status_code == 200
                    time.sleep(0.01)

        threads = [threading.Thread(target=ask, args=(t,)) for t in range(3)] + [
            threading.Thread(target=stream)
        ]
        for th in threads:
            th.start()
        try:
            engine.add_version("shop", {"name": "v2", "model": V2})
            engine.wait_ready("shop", "v2", 60)
            for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}):
                engine.set_traffic("shop", weights)
                time.sleep(0.4)
            # then a collaborative model trained on the stream so far takes over the same way
            engine.train("shop", {"version": "v3", "model": {"type": "als", "factors": 16, "iterations": 5}})
            engine.wait_ready("shop", "v3", 60)
            for weights in ({"v2": 50, "v3": 50}, {"v3": 100}):
                engine.set_traffic("shop", weights)
                time.sleep(0.4)
        finally:
            stop.set()
            for th in threads:
                th.join(30)
    assert errors == [] and len(answers) > 100
    assert {v for _, v, _ in answers} == {"v1", "v2", "v3"}
    _caught_up(engine)
    for user, name, hits in answers:
        version = engine.collection("shop").versions[name]
        vector = version.vector("user", user)
        items = version.index("item").get([h["id"] for h in hits])
        for hit in hits:
            assert hit["score"] == pytest.approx(float(items[hit["id"]] @ vector), abs=1e-4), (user, name)
    assert_end_state(engine, "shop")
