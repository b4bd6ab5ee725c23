"""Search, recommend and ``like`` with a filter, response shaping and knobs, and batch search, on the
embedded store (exact and HNSW indexes) and on a real PostgreSQL store (pgvector, where the filter
is a ``jsonb`` predicate joined into the ranked query, ``index/_pgfilter.py``).

Each filtered answer is checked against a brute-force ranking of the matching records by the
same version's vectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch import Engine, EngineConfig
from embedswitch.filters import matches, parse_filter
from embedswitch.specs import RecordIds, parse

CONFIG = EngineConfig(checkpoint_interval_s=0.2)
N = 1200
TEAMS = ["security", "search", "infra"]
LANGS = ["en", "nl", "de", "fr"]


def record(i: int) -> dict[str, Any]:
    fields: dict[str, Any] = {"team": TEAMS[i % 3], "year": 2000 + i % 25, "lang": LANGS[i % 4]}
    fields["meta"] = {"team": TEAMS[i % 3], "rank": i % 9} if i % 4 else [{"team": TEAMS[i % 3]}]
    if i % 100 == 0:
        fields["rare"] = True  # 1% of the records
    if i % 10 == 0:
        fields["year"] = str(fields["year"])  # a string: never in a numeric range
    return {"id": f"d{i}", "text": f"document {i} on topic {i % 17} and {i % 5}", "fields": fields}


RECORDS = [record(i) for i in range(N)]
FILTERS: list[dict[str, Any]] = [
    {"team": "security", "year": {"gte": 2020}, "lang": {"in": ["en", "nl"]}},
    {"rare": True},
    {"or": [{"team": "infra"}, {"not": {"lang": "en"}}]},
    {"year": {"gt": 2010, "lte": 2012}},
    {"nobody": {"exists": True}},
    {"meta.team": "search", "meta.rank": {"lte": 2}},  # nested: 1 in 12 match
    {"or": [{"meta.rank": 8}, {"meta.0.team": "infra"}]},  # a path never indexes an array
]


@pytest.fixture(params=["sqlite-exact", "sqlite-hnsw", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgres":
        found = Engine.open(tmp_path / "data", CONFIG, store=request.getfixturevalue("pg_uri"))
        index = {"type": "pgvector", "exact_below": 0}  # the HNSW index from the start
    else:
        found = Engine.open(tmp_path / "data", CONFIG)
        index = {"type": request.param.removeprefix("sqlite-")}
    with found:
        found.create_collection("c", {"name": "v1", "model": {"type": "hashing", "dim": 256}, "index": index})
        ack = found.upsert("c", RECORDS)
        assert found.collection("c").get_version("v1").wait_applied(ack.seq, 30)
        yield found


def brute_force(engine: Engine, query: np.ndarray, raw: dict[str, Any], k: int) -> list[float]:
    """The ``k`` best scores among the records matching ``raw`` (ties make ids ambiguous)."""
    tree = parse_filter(raw)
    ids = [r["id"] for r in RECORDS if matches(tree, r["fields"])]
    vectors = engine.collection("c").get_version("v1").index("doc")
    assert vectors is not None
    got = vectors.get(ids)
    return sorted((float(got[id_] @ query) for id_ in ids), reverse=True)[:k]


def test_filtered_search_is_the_filtered_ranking(engine: Engine) -> None:
    version = engine.collection("c").get_version("v1")
    query = version.embed_query("document on topic 3")
    for raw in FILTERS:
        result = engine.search("c", {"text": "document on topic 3", "k": 10, "filter": raw})
        tree = parse_filter(raw)
        assert all(matches(tree, hit.fields) for hit in result.hits), raw
        expected = brute_force(engine, query, raw, 10)
        assert len(result.hits) == len(expected), raw  # k hits whenever k match: no shortfall
        scores = [hit.score for hit in result.hits]
        index = version.index("doc")
        if index is not None and index.index_type == "exact":
            assert scores == pytest.approx(expected, abs=1e-5), raw
        else:  # recall@10 >= 0.9 on one query, ties counted as found
            assert sum(score >= expected[-1] - 1e-5 for score in scores) >= min(9, len(expected)), raw


def test_like_and_vector_searches_take_a_filter(engine: Engine) -> None:
    raw = {"rare": True}
    like = engine.search("c", {"like": {"kind": "doc", "id": "d100"}, "k": 5, "filter": raw})
    assert len(like.hits) == 5 and "d100" not in {h.id for h in like.hits}
    assert all(h.fields.get("rare") is True for h in like.hits)
    vector = engine.collection("c").get_version("v1").embed_query("topic 4").tolist()
    found = engine.search("c", {"vector": vector, "k": 12, "filter": raw})
    assert len(found.hits) == 12 and all(h.fields.get("rare") is True for h in found.hits)


def test_shaping_and_knobs(engine: Engine) -> None:
    full = engine.search("c", {"text": "document 7", "k": 10, "exact": True})
    assert len(full.hits) == 10
    projected = engine.search("c", {"text": "document 7", "k": 10, "exact": True, "fields": ["team", "none"]})
    assert [h.id for h in projected.hits] == [h.id for h in full.hits]
    assert all(set(h.fields) == {"team"} for h in projected.hits)
    bare = engine.search("c", {"text": "document 7", "k": 3, "fields": []})
    assert all(h.fields == {} for h in bare.hits)
    cut = full.hits[4].score
    above = engine.search("c", {"text": "document 7", "k": 10, "exact": True, "score_threshold": cut})
    assert [h.id for h in above.hits] == [h.id for h in full.hits if h.score >= cut]
    wide = engine.search("c", {"text": "document 7", "k": 10, "ef": 500})
    assert sum(h.score >= full.hits[-1].score - 1e-5 for h in wide.hits) >= 9  # ties count as found


def test_batch_search_answers_like_single_searches(engine: Engine) -> None:
    searches = [
        {"text": "document on topic 3", "k": 5, "filter": FILTERS[0]},
        {"text": "topic 9", "k": 3},
        {"like": {"kind": "doc", "id": "d7"}, "k": 4, "fields": ["lang"]},
        {"text": "topic 1", "k": 2, "key": "alice"},
    ]
    batch = engine.search_batch("c", {"searches": searches})
    assert len(batch.results) == 4
    assert len({r.request_id for r in batch.results}) == 4
    for one, answer in zip(searches, batch.results, strict=True):
        single = engine.search("c", one)
        assert answer.version == single.version == "v1"
        assert [(h.id, h.fields) for h in answer.hits] == [(h.id, h.fields) for h in single.hits]
        assert [h.score for h in answer.hits] == pytest.approx([h.score for h in single.hits], abs=1e-5)


def test_recommend_takes_a_filter_and_excludes_seen_before_ranking(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", CONFIG) as engine:
        model = {"type": "history-mean", "text": {"type": "hashing", "dim": 64}}
        engine.create_collection("shop", {"name": "v1", "model": model, "index": {"type": "hnsw"}})
        items = [
            {"id": f"i{i}", "kind": "item", "text": f"item {i} kind {i % 7}", "fields": {"shelf": i % 4}}
            for i in range(600)
        ]
        engine.upsert("shop", items)
        seen = [{"user": "u", "item": f"i{i}"} for i in range(0, 600, 2)]  # half of them
        ack = engine.add_interactions("shop", seen)
        assert engine.collection("shop").get_version("v1").wait_applied(ack.seq, 30)
        found = engine.recommend("shop", {"user": "u", "k": 20, "filter": {"shelf": 1}, "fields": []})
        assert len(found.hits) == 20
        assert all(int(h.id[1:]) % 2 == 1 and int(h.id[1:]) % 4 == 1 for h in found.hits)
        unseen = engine.recommend("shop", {"user": "u", "k": 300})
        assert len(unseen.hits) == 300 and all(int(h.id[1:]) % 2 == 1 for h in unseen.hits)


def test_a_repeated_filter_sees_every_write(engine: Engine) -> None:
    """The ids a filter matched are kept between writes only: each write is seen by the next search."""
    body: dict[str, Any] = {"text": "document 5", "k": 5, "filter": {"team": "nobody-yet"}}
    assert engine.search("c", body).hits == []
    ack = engine.upsert("c", [{**record(5), "fields": {"team": "nobody-yet"}}])
    assert [h.id for h in engine.search("c", {**body, "min_seq": ack.seq}).hits] == ["d5"]
    ack = engine.records("c").delete(parse(RecordIds, {"ids": ["d5"]}))
    assert engine.search("c", {**body, "min_seq": ack.seq}).hits == []


def test_a_filter_caught_up_from_the_change_log_is_the_stores_answer(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After writes, a cached filter reads again only the records the log names since (no full
    scan), and ends with exactly the ids the store's own answer gives."""
    collection = engine.collection("c")
    where = parse_filter(FILTERS[0])
    before = collection.filters.matching("doc", where)
    moved_in = [
        {**record(i), "fields": {"team": "security", "year": 2024, "lang": "en"}} for i in range(1, 90, 3)
    ]
    moved_out = [{**record(i), "fields": {"team": "infra"}} for i in sorted(before)[:0] or range(0, 90, 3)]
    engine.upsert("c", moved_in + moved_out)
    for i in range(2, 40, 3):
        engine.delete("c", f"d{i}")
    engine.upsert("c", [{"id": "d4", "kind": "user", "text": "a user", "fields": {"team": "security"}}])
    scans: list[str] = []
    real = collection.store.record_ids
    monkeypatch.setattr(collection.store, "record_ids", lambda *a: scans.append("scan") or real(*a))
    after = collection.filters.matching("doc", where)
    assert scans == []  # caught up from the log
    assert after == frozenset(real("c", "doc", where)) != before
    assert {f"d{i}" for i in range(1, 90, 3)} - {f"d{i}" for i in range(2, 40, 3)} <= after


def test_hits_carry_their_records_current_fields(
    engine: Engine, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hit's fields are its record's as the store holds them now; on PostgreSQL the pgvector
    query reads them in its own round trip, so the store is not asked again."""
    ack = engine.upsert("c", [{**record(3), "fields": {"team": "moved", "extra": [1, 2]}}])
    asks: list[int] = []
    store = engine.collection("c").store
    real = store.get_fields
    monkeypatch.setattr(store, "get_fields", lambda *a: asks.append(1) or real(*a))
    for body in ({"text": "document 3 on topic 3 and 3"}, {"like": {"kind": "doc", "id": "d6"}}):
        result = engine.search("c", {**body, "k": 20, "min_seq": ack.seq})
        assert len(result.hits) == 20
        by_id = {r["id"]: r["fields"] for r in RECORDS} | {"d3": {"team": "moved", "extra": [1, 2]}}
        assert all(hit.fields == by_id[hit.id] for hit in result.hits)
    assert "d3" in [h.id for h in engine.search("c", {"text": "document 3 on topic 3 and 3", "k": 5}).hits]
    assert (asks == []) == (request.node.callspec.params["engine"] == "postgres")
