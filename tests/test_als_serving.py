"""ALS versions served by the engine: train → deploy as a building version → ready → ramp; online
fold-in of streamed interactions; the new-item policy; restarts; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _checks import assert_end_state
from conftest import ServerThread

from embedswitch import Client, Engine, EngineConfig, RecordNotFound
from embedswitch._errors import Conflict, InvalidRequest, TextNotSupported, VersionExists
from embedswitch.evaluation.interactions import Interaction, evaluate_recommendations, generate, split_last
from embedswitch.models.als import fold_in, gram, train_als

FAST = EngineConfig(checkpoint_interval_s=0.2, backfill_batch=128)
V1 = {"type": "history-mean", "text": "hashing"}
ALS = {"type": "als", "factors": 32, "iterations": 8}


def _rows(interactions: list[Interaction]) -> list[dict[str, object]]:
    return [{"user": x.user, "item": x.item, "weight": x.weight, "ts": x.ts} for x in interactions]


def _load(engine: Engine, users: int = 300, items: int = 1000) -> dict[str, list[str]]:
    """Items and every interaction but each user's last; returns the held-out items."""
    data = generate(users=users, items=items, topics=10, interactions_per_user=20, seed=4)
    train, heldout = split_last(data.interactions)
    engine.create_collection("shop", {"name": "v1", "model": V1})
    engine.upsert("shop", [{"id": i, "text": t, "kind": "item"} for i, t in data.items.items()])
    rows = _rows(train)
    for start in range(0, len(rows), 2000):
        engine.add_interactions("shop", rows[start : start + 2000])
    engine.wait_ready("shop", "v1", 60)
    return heldout


def _caught_up(engine: Engine) -> None:
    target = engine.collection("shop")
    for version in target.versions.values():
        assert version.wait_applied(target.head_seq(), 30)


@pytest.fixture
def engine(tmp_path):  # type: ignore[no-untyped-def]
    with Engine.open(tmp_path / "data", FAST) as opened:
        yield opened


def test_retrain_loop_trains_deploys_ramps_and_beats_history_mean(engine: Engine) -> None:
    heldout = _load(engine)
    info = engine.train("shop", {"version": "v2", "model": ALS})
    assert info.state == "building" and info.source == "vectors" and info.weight == 0
    assert info.model["trained_seq"] == engine.collection("shop").head_seq()
    ready = engine.wait_ready("shop", "v2", 120)
    assert ready.records_by_kind["user"] == 300
    events = [e.event for e in engine.events("shop", "v2")]
    assert {"created", "trained", "backfill_finished", "ready"} <= set(events)

    # the item vectors are exactly ALS's factors over the same interactions (training is deterministic)
    trained = engine.store.scan_interactions("shop", ready.model["trained_seq"])
    reference = train_als(trained, factors=32, iterations=8)
    v2 = engine.collection("shop").versions["v2"]
    served = v2.index("item").get(reference.item_ids)
    assert np.allclose(np.stack([served[i] for i in reference.item_ids]), reference.item_factors, atol=1e-6)
    assert_end_state(engine, "shop")  # every user is the fold-in of their history over v2's items

    for weights in ({"v1": 90, "v2": 10}, {"v1": 50, "v2": 50}, {"v2": 100}):
        engine.set_traffic("shop", weights)
        answered = {engine.recommend("shop", user=u, key=u).version for u in list(heldout)[:40]}
        assert answered <= set(weights)

    def recommender(version: str):  # type: ignore[no-untyped-def]
        def top(user: str, k: int) -> list[str]:
            return [h.id for h in engine.recommend("shop", user=user, k=k, version=version).hits]

        return top

    recall = {v: evaluate_recommendations(recommender(v), heldout)["recall@10"] for v in ("v1", "v2")}
    assert recall["v2"] > 1.5 * recall["v1"], recall


def test_streamed_interactions_fold_users_in_online(engine: Engine) -> None:
    _load(engine, users=80, items=400)
    engine.train("shop", {"version": "v2", "model": ALS})
    engine.wait_ready("shop", "v2", 120)
    v2 = engine.collection("shop").versions["v2"]
    items = v2.index("item")
    picked = sorted(items.ids())[:4]
    before = v2.vector("user", "u0001").copy()
    history = [{"user": "newbie", "item": i, "ts": float(n)} for n, i in enumerate(picked[:3])]
    engine.add_interactions("shop", [*history, {"user": "u0001", "item": picked[3], "weight": 3.0}])
    _caught_up(engine)
    for version in ("v1", "v2"):
        result = engine.recommend("shop", user="newbie", k=5, version=version)
        assert result.version == version and len(result.hits) == 5
        assert set(picked[:3]).isdisjoint(h.id for h in result.hits)

    factors = items.get(picked[:3])
    expected = fold_in(
        np.stack([factors[i] for i in picked[:3]]),
        [1.0, 1.0, 1.0],
        gram(np.stack(list(items.get(items.ids()).values()))),
        regularization=0.05,
        alpha=20.0,
    )
    assert np.allclose(v2.vector("user", "newbie"), expected, atol=1e-4)
    assert not np.allclose(v2.vector("user", "u0001"), before, atol=1e-4)
    assert_end_state(engine, "shop")


def test_new_items_wait_for_the_next_retrain_and_deletes_stick(engine: Engine) -> None:
    _load(engine, users=80, items=400)
    engine.train("shop", {"version": "v2", "model": ALS})
    engine.wait_ready("shop", "v2", 120)
    engine.upsert("shop", [{"id": "fresh", "kind": "item", "text": "a brand new item about the cosmos"}])
    engine.add_interactions("shop", [{"user": u, "item": "fresh", "weight": 5.0} for u in ("u0001", "u0002")])
    engine.delete("shop", "i00005", kind="item")
    _caught_up(engine)
    v2 = engine.collection("shop").versions["v2"]
    assert "fresh" not in v2.index("item").ids() and "i00005" not in v2.index("item").ids()
    assert "fresh" in engine.collection("shop").versions["v1"].index("item").ids()
    with pytest.raises(RecordNotFound, match="next retrain"):
        engine.recommend("shop", item="fresh", version="v2")
    for user in ("u0001", "u0002", "u0003"):
        hits = {h.id for h in engine.recommend("shop", user=user, k=50, version="v2").hits}
        assert not hits & {"fresh", "i00005"}
    assert_end_state(engine, "shop")

    engine.train("shop", {"version": "v3", "model": ALS})
    engine.wait_ready("shop", "v3", 120)
    v3_items = engine.collection("shop").versions["v3"].index("item").ids()
    assert "fresh" in v3_items and "i00005" not in v3_items
    assert_end_state(engine, "shop")


def test_training_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Engine.open(tmp_path / "data", FAST) as engine:
        _load(engine, users=80, items=400)
        engine.train("shop", {"version": "v2", "model": {"type": "als", "factors": 128, "iterations": 300}})
        progress = engine.describe_version("shop", "v2").progress
        assert progress is not None and progress.phase == "training" and progress.total == 300
    with Engine.open(tmp_path / "data", FAST) as engine:  # closed mid-training: it starts again
        assert "trained" not in [e.event for e in engine.events("shop", "v2")]
        first = engine.wait_ready("shop", "v2", 300)
        vectors = engine.collection("shop").versions["v2"].index("user").get(["u0001"])["u0001"].copy()
    with Engine.open(tmp_path / "data", FAST) as engine:
        again = engine.describe_version("shop", "v2")
        assert again.state == "ready" and again.records_by_kind == first.records_by_kind
        assert np.allclose(engine.collection("shop").versions["v2"].vector("user", "u0001"), vectors)
        assert_end_state(engine, "shop")


def test_factors_trained_elsewhere_load_through_the_vectors_path(engine: Engine) -> None:
    _load(engine, users=60, items=300)
    rows = engine.store.scan_interactions("shop", engine.collection("shop").head_seq())
    factors = train_als(rows, factors=16, iterations=5)
    engine.add_version("shop", {"name": "ext", "model": {"type": "als", "factors": 16}, "source": "vectors"})
    vectors = [
        {"id": item, "kind": "item", "vector": factors.item_factors[n].tolist()}
        for n, item in enumerate(factors.item_ids)
    ]
    engine.put_vectors("shop", "ext", vectors)
    engine.commit_vectors("shop", "ext")
    engine.wait_ready("shop", "ext", 60)
    stored = engine.collection("shop").versions["ext"].index("item").get(factors.item_ids[:5])
    for n, item in enumerate(factors.item_ids[:5]):  # raw factors: the norm carries popularity
        assert np.allclose(stored[item], factors.item_factors[n], atol=1e-6)
    assert engine.recommend("shop", user="u0001", version="ext").hits
    assert_end_state(engine, "shop")


def test_bad_training_requests_change_nothing(engine: Engine) -> None:
    engine.create_collection("shop", {"name": "v1", "model": V1})
    engine.upsert("shop", [{"id": "i1", "kind": "item", "text": "an item"}])
    with pytest.raises(InvalidRequest, match="no interactions"):
        engine.train("shop", {"version": "v2"})
    engine.add_interactions("shop", [{"user": "u", "item": "i1"}])
    with pytest.raises(VersionExists):
        engine.train("shop", {"version": "v1"})
    with pytest.raises(InvalidRequest, match="trained_seq"):
        engine.train("shop", {"version": "v2", "model": {"type": "als", "trained_seq": 3}})
    with pytest.raises(InvalidRequest, match="factors"):
        engine.train("shop", {"version": "v2", "model": {"type": "als", "factors": 0}})
    with pytest.raises(InvalidRequest, match="embeds no text"):
        engine.add_version("shop", {"name": "v2", "model": {"type": "als"}})
    assert [v.name for v in engine.describe("shop").versions] == ["v1"]

    engine.train("shop", {"version": "v2", "model": {"type": "als", "factors": 4, "iterations": 2}})
    engine.wait_ready("shop", "v2", 60)
    with pytest.raises(TextNotSupported, match="like"):
        engine.search("shop", "an item", kind="item", version="v2")
    with pytest.raises(Conflict, match="loads its own vectors"):
        engine.put_vectors("shop", "v2", [{"id": "i1", "kind": "item", "vector": [1.0] * 4}])
    assert engine.search("shop", like={"kind": "item", "id": "i1"}, kind="item", version="v2").version == "v2"


def test_train_over_http(engine: Engine) -> None:
    _load(engine, users=60, items=300)
    with ServerThread(engine) as server, Client(server.url) as client:
        info = client.train(
            "shop", {"version": "v2", "model": {"type": "als", "factors": 8, "iterations": 3}}
        )
        assert info.state == "building" and info.model["type"] == "als"
        assert engine.wait_ready("shop", "v2", 60).state == "ready"
        assert client.recommend("shop", user="u0001", version="v2").version == "v2"
        with pytest.raises(VersionExists):
            client.train("shop", {"version": "v2"})
        with pytest.raises(TextNotSupported):
            client.search("shop", "anything", kind="item", version="v2")
