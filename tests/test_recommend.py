"""Recommendations from one pinned version: user vector lookup + item search, interactions stream."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ServerThread

from embedswitch import Client, Engine, InvalidRequest, RecordNotFound
from embedswitch.models import load_model, parse_model_spec

ITEMS = {
    "i1": "telescope galaxy star orbit",
    "i2": "galaxy star nebula comet",
    "i3": "pasta tomato basil garlic",
    "i4": "bread flour yeast oven",
    "i5": "star orbit planet moon",
}
USERS = {"astro": "star galaxy orbit planet", "cook": "tomato garlic bread oven"}


def _collection(engine: Engine, versions: tuple[str, ...] = ("v1",)) -> None:
    engine.create_collection("shop", {"name": "v1", "model": "hashing"})
    records = [{"id": i, "text": t, "kind": "item", "fields": {"name": i}} for i, t in ITEMS.items()]
    records += [{"id": u, "text": t, "kind": "user"} for u, t in USERS.items()]
    ack = engine.upsert("shop", records)
    for i, name in enumerate(versions[1:], start=1):
        engine.add_version("shop", {"name": name, "model": {"type": "hashing", "seed": i}})
        engine.wait_ready("shop", name, 30)
    assert engine.collection("shop").get_version("v1").wait_applied(ack.seq, 10)


def test_user_gets_items_near_their_vector_minus_what_they_saw(engine: Engine) -> None:
    _collection(engine)
    result = engine.recommend("shop", user="astro", k=3)
    assert result.version == "v1" and result.fallback is None
    assert {h.id for h in result.hits} <= {"i1", "i2", "i5"} and result.hits[0].fields["name"]
    engine.add_interactions(
        "shop", [{"user": "astro", "item": "i1"}, {"user": "astro", "item": "i5", "weight": 2}]
    )
    seen = engine.recommend("shop", user="astro", k=5)
    assert {"i1", "i5"}.isdisjoint(h.id for h in seen.hits)
    assert {"i1", "i5"} <= {
        h.id for h in engine.recommend("shop", user="astro", k=5, exclude_seen=False).hits
    }


def test_similar_items_and_search_like(engine: Engine) -> None:
    _collection(engine)
    similar = engine.recommend("shop", item="i1", k=2)
    assert "i1" not in [h.id for h in similar.hits] and similar.hits[0].id in {"i2", "i5"}
    like = engine.search("shop", like={"kind": "user", "id": "cook"}, kind="item", k=2)
    assert {h.id for h in like.hits} == {"i3", "i4"}


def test_unknown_user_404_unless_popular_fallback(engine: Engine) -> None:
    _collection(engine)
    with pytest.raises(RecordNotFound, match="no vector for user 'nobody'"):
        engine.recommend("shop", user="nobody")
    engine.add_interactions(
        "shop", [{"user": "nobody", "item": "i4"}, {"user": "x", "item": "i3", "weight": 3}]
    )
    popular = engine.recommend("shop", user="nobody", k=2, fallback="popular")
    assert popular.fallback == "popular" and [h.id for h in popular.hits] == ["i3"]  # i4 already seen
    with pytest.raises(RecordNotFound):
        engine.recommend("shop", item="i999")


def test_interactions_are_logged_all_or_nothing(engine: Engine) -> None:
    _collection(engine)
    head = engine.describe("shop").head_seq
    ack = engine.add_interactions(
        "shop", [{"user": "u1", "item": "i1", "ts": 5.0}, {"user": "u1", "item": "i2"}]
    )
    assert (ack.count, ack.seq) == (2, head + 2)
    with pytest.raises(RecordNotFound, match="i404"):
        engine.add_interactions("shop", [{"user": "u1", "item": "i3"}, {"user": "u1", "item": "i404"}])
    for bad in ({"user": "u1", "item": "i1", "weight": 0}, {"user": "", "item": "i1"}, {"user": "u1"}):
        with pytest.raises(InvalidRequest):
            engine.add_interactions("shop", [{"user": "u1", "item": "i1"}, bad])
    assert engine.describe("shop").head_seq == head + 2
    assert engine.store.seen_items("shop", "u1") == {"i1", "i2"}
    with pytest.raises(InvalidRequest, match="exactly one"):
        engine.recommend("shop", user="astro", item="i1")
    with pytest.raises(InvalidRequest):
        engine.recommend("shop", user="astro", k=0)


def test_user_and_item_vectors_come_from_one_version(engine: Engine) -> None:
    """Versions use hashing models with different seeds: a user vector from one version scored
    against another version's items would not reproduce the returned scores."""
    _collection(engine, ("v1", "v2"))
    engine.set_traffic("shop", {"v1": 50, "v2": 50})
    models = {
        v: load_model(parse_model_spec({"type": "hashing", "seed": s})) for v, s in (("v1", 0), ("v2", 1))
    }
    answered = set()
    for n in range(60):
        result = engine.recommend("shop", user="astro", k=5, key=f"session-{n}")
        answered.add(result.version)
        model = models[result.version]
        user = model.encode([USERS["astro"]])[0]
        for hit in result.hits:
            assert hit.score == pytest.approx(float(model.encode([ITEMS[hit.id]])[0] @ user), abs=1e-5)
    assert answered == {"v1", "v2"}


def test_recommend_and_interactions_over_http(engine: Engine) -> None:
    _collection(engine)
    with ServerThread(engine) as server, Client(server.url) as client:
        assert client.add_interactions("shop", [{"user": "cook", "item": "i3"}]).count == 1
        result = client.recommend("shop", user="cook", k=3)
        assert result.version == "v1" and "i3" not in [h.id for h in result.hits]
        assert client.search("shop", kind="item", like={"kind": "item", "id": "i3"}, k=1).hits[0].id != "i3"
        with pytest.raises(RecordNotFound):
            client.recommend("shop", user="ghost")
        assert np.isfinite([h.score for h in result.hits]).all()
