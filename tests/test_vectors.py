"""Batch deployment: a version loaded from precomputed vectors, then gap-filled by its model."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from _checks import assert_end_state
from conftest import ServerProcess

from embedswitch import (
    Conflict,
    Engine,
    EngineConfig,
    InvalidRequest,
    RecordNotFound,
    TextNotSupported,
    VersionNotReady,
)
from embedswitch.models import load_model, parse_model_spec

QUERY_MODEL = {"type": "hashing", "seed": 5}


def test_vectors_version_loads_then_fills_gaps(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": f"d{i}", "text": f"text number {i}"} for i in range(100)])
    info = engine.add_version("c", {"name": "v2", "model": QUERY_MODEL, "source": "vectors"})
    assert info.state == "building" and info.source == "vectors"
    # an offline pipeline embedded d0..d79 with its own (here: another hashing) model
    offline = load_model(parse_model_spec({"type": "hashing", "seed": 5}))
    ids = [f"d{i}" for i in range(80)]
    vectors = offline.encode([f"text number {i}" for i in range(80)]) * 3.0  # not unit: normalised
    engine.upsert("c", [{"id": "d5", "text": "changed after the version was created"}])
    v2 = engine.collection("c").get_version("v2")
    assert v2.wait_applied(engine.collection("c").head_seq(), 10)
    rows = [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vectors, strict=True)]
    acks = [engine.put_vectors("c", "v2", rows[:40]), engine.put_vectors("c", "v2", rows[40:])]
    assert [a.count for a in acks] == [40, 40]
    assert sum(a.written for a in acks) == 79  # d5 was streamed after creation: newer than the load
    with pytest.raises(VersionNotReady):
        engine.set_traffic("c", {"v2": 100})
    engine.commit_vectors("c", "v2")
    engine.wait_ready("c", "v2", 30)
    stored = v2.index("doc").get([f"d{i}" for i in range(100)])
    assert np.allclose(stored["d0"], vectors[0] / np.linalg.norm(vectors[0]), atol=1e-6)
    model = load_model(parse_model_spec(QUERY_MODEL))
    assert np.allclose(stored["d5"], model.encode(["changed after the version was created"])[0], atol=1e-6)
    assert np.allclose(stored["d90"], model.encode(["text number 90"])[0], atol=1e-6)
    assert engine.describe_version("c", "v2").records == 100
    engine.promote("c", "v2")
    assert engine.search("c", "text number 7", k=1).hits[0].id == "d7"


def test_an_array_loads_like_rows_of_the_same_vectors(engine: Engine) -> None:
    """The bulk path (a 2-D array and the ids of its rows) stores what rows of the same numbers do."""
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": f"d{i}", "text": f"text number {i}"} for i in range(50)])
    engine.upsert("c", [{"id": "u1", "kind": "user", "text": "a user"}])
    for name in ("rows", "array"):
        engine.add_version("c", {"name": name, "model": QUERY_MODEL, "source": "vectors"})
    vectors = np.random.default_rng(3).standard_normal((50, 256)).astype(np.float32)
    ids = [f"d{i}" for i in range(50)]
    engine.put_vectors(
        "c", "rows", [{"id": i, "vector": v.tolist()} for i, v in zip(ids, vectors, strict=True)]
    )
    ack = engine.put_vectors("c", "array", vectors[:30], ids=ids[:30])
    assert (ack.count, ack.written) == (30, 30)
    engine.put_vectors("c", "array", vectors[30:].astype(np.float64), ids=ids[30:])  # any float dtype
    engine.put_vectors("c", "array", vectors[:1], ids=["u1"], kind="user")
    vectors[:] = 0  # the engine kept its own copy
    got = [engine.collection("c").get_version(name).index("doc").get(ids) for name in ("rows", "array")]
    assert set(got[0]) == set(got[1]) == set(ids)
    assert all(np.array_equal(got[0][i], got[1][i]) for i in ids)
    assert set(engine.collection("c").get_version("array").index("user").get(["u1"])) == {"u1"}


def test_array_load_errors_change_nothing(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": f"d{i}", "text": f"text {i}"} for i in range(3)])
    engine.add_version("c", {"name": "v2", "model": QUERY_MODEL, "source": "vectors"})
    ok = np.ones((3, 256), np.float32)
    ids = ["d0", "d1", "d2"]
    bad = [
        (InvalidRequest, "one row per id", ok, ids[:2]),
        (InvalidRequest, "one row per id", ok[0], ids[:1]),
        (InvalidRequest, "dimension 256", np.ones((3, 8), np.float32), ids),
        (InvalidRequest, "NaN", np.full((3, 256), np.nan, np.float32), ids),
        (InvalidRequest, "twice", ok, ["d0", "d0", "d1"]),
        (InvalidRequest, "ids", ok, ["d0", "", "d1"]),
        (RecordNotFound, "doc/zz", ok, ["d0", "d1", "zz"]),
    ]
    for error, message, vectors, names in bad:
        with pytest.raises(error, match=message):
            engine.put_vectors("c", "v2", vectors, ids=names)
    assert len(engine.collection("c").get_version("v2").index("doc") or []) == 0
    with pytest.raises(Conflict, match="does not take vectors"):
        engine.put_vectors("c", "v1", ok, ids=ids)


def test_an_acknowledged_vector_load_survives_kill_9(tmp_path: Path) -> None:
    """A ``PUT .../vectors`` answered 200 is kept by a server killed -9 right after, with no
    checkpoint in between (the interval is an hour)."""
    data = tmp_path / "data"
    with Engine.open(data) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"text number {i}"} for i in range(20)])
        engine.add_version("c", {"name": "v2", "model": QUERY_MODEL, "source": "vectors"})
    offline = load_model(parse_model_spec({"type": "hashing", "seed": 9}))
    vectors = offline.encode([f"t{i}" for i in range(20)])
    rows = [{"id": f"d{i}", "vector": v.tolist()} for i, v in enumerate(vectors)]
    server = ServerProcess(data, env={"EMBEDSWITCH_CHECKPOINT_INTERVAL_S": "3600"}).start()
    try:
        ack = httpx.put(f"{server.url}/v1/collections/c/versions/v2/vectors", json={"vectors": rows})
        assert ack.status_code == 200 and ack.json()["written"] == 20, ack.text
        server.kill()
    finally:
        server.stop()
    with Engine.open(data) as engine:
        stored = engine.collection("c").get_version("v2").index("doc").get([f"d{i}" for i in range(20)])
        assert len(stored) == 20
        assert np.allclose(np.stack([stored[f"d{i}"] for i in range(20)]), vectors, atol=1e-6)


def test_vector_load_errors_change_nothing(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": "a", "text": "alpha"}])
    engine.add_version("c", {"name": "v2", "model": QUERY_MODEL, "source": "vectors"})
    good = {"id": "a", "vector": [1.0] * 256}
    with pytest.raises(InvalidRequest, match="dimension 256"):
        engine.put_vectors("c", "v2", [good, {"id": "a", "vector": [1.0] * 3}])
    with pytest.raises(RecordNotFound, match="doc/zz"):
        engine.put_vectors("c", "v2", [good, {"id": "zz", "vector": [1.0] * 256}])
    with pytest.raises(InvalidRequest, match="NaN"):
        engine.put_vectors("c", "v2", [{"id": "a", "vector": [float("nan")] * 256}])
    assert len(engine.collection("c").get_version("v2").index("doc") or []) == 0
    with pytest.raises(Conflict, match="does not take vectors"):
        engine.put_vectors("c", "v1", [good])
    engine.commit_vectors("c", "v2")
    with pytest.raises(Conflict):
        engine.put_vectors("c", "v2", [good])
    engine.wait_ready("c", "v2", 30)
    assert_end_state(engine, "c")


# --- collections of vectors alone: model "none" ---------------------------------------------------

NONE = {"type": "none", "dim": 8}


def _vector_records(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"r{start + i}", "vector": rng.standard_normal(8).tolist()} for i in range(n)]


def _unit(values: list[float]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_collection_of_vectors_alone_serves_vector_and_like_queries(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": NONE})
    records = _vector_records(50)
    ack = engine.upsert("c", records)
    result = engine.search("c", vector=records[7]["vector"], k=3, min_seq=ack.seq)
    assert result.hits[0].id == "r7" and result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    liked = engine.search("c", like={"kind": "doc", "id": "r7"}, k=3)
    assert "r7" not in [h.id for h in liked.hits] and len(liked.hits) == 3
    stored = engine.collection("c").get_version("v1").index("doc").get(["r3"])["r3"]
    np.testing.assert_allclose(stored, _unit(records[3]["vector"]), atol=1e-6)
    with pytest.raises(TextNotSupported, match='"vector": \\[...\\]'):
        engine.search("c", "some text")
    assert_end_state(engine, "c")


def test_record_vectors_replay_after_a_restart_and_backfill_a_second_version(tmp_path: Path) -> None:
    """A vector is durable in the change log: a restart replays it, and a version added later (at
    reduced precision, vectors kept as they are) backfills from the stored vectors."""
    config = EngineConfig(checkpoint_interval_s=3600)  # no checkpoint: the restart replays the log
    with Engine.open(tmp_path, config) as engine:
        engine.create_collection("c", {"name": "v1", "model": NONE})
        engine.upsert("c", _vector_records(200))
        engine.upsert("c", _vector_records(10, seed=1))  # r0..r9 get new vectors
        engine.delete("c", "r42")
    with Engine.open(tmp_path, config) as engine:
        spec = {"name": "v2", "model": {**NONE, "normalize": False}, "index": {"type": "usearch"}}
        engine.add_version("c", spec)
        engine.upsert("c", _vector_records(5, seed=2, start=300))  # streamed during the backfill
        engine.wait_ready("c", "v2", 60)
        assert assert_end_state(engine, "c") == {"v1": 204, "v2": 204}
        v2 = engine.collection("c").get_version("v2").index("doc").get(["r0"])["r0"]
        np.testing.assert_allclose(v2, _vector_records(1, seed=1)[0]["vector"], atol=1e-2)


def test_bad_vector_records_are_rejected_and_change_nothing(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": NONE})
    engine.upsert("c", _vector_records(3))
    head = engine.collection("c").head_seq()
    bad = [
        ([{"id": "x", "vector": [1.0] * 7}], "dimension 8"),
        ([{"id": "x", "vector": [0.0] * 8}], "all zeros"),
        ([{"id": "x", "vector": [float("nan")] * 8}], "NaN"),
        ([*_vector_records(1, start=9), {"id": "y", "text": "only text"}], 'no "vector"'),
    ]
    for records, message in bad:
        with pytest.raises(InvalidRequest, match=message):
            engine.upsert("c", records)
    assert engine.collection("c").head_seq() == head
    with pytest.raises(InvalidRequest, match="dimension 8"):
        engine.search("c", vector=[1.0, 2.0])
    engine.add_version("c", {"name": "text", "model": "hashing"})
    with pytest.raises(InvalidRequest, match='give every record a "text"'):
        engine.upsert("c", _vector_records(1, start=20))
    assert engine.collection("c").head_seq() == head


def test_a_query_model_embeds_text_queries_for_a_vectors_version(engine: Engine) -> None:
    query = {"type": "hashing", "dim": 8, "seed": 3}
    engine.create_collection("c", {"name": "v1", "model": {**NONE, "query": query}})
    model = load_model(parse_model_spec(query))
    texts = [f"record about topic {i}" for i in range(20)]
    vectors = model.encode(texts)
    ack = engine.upsert("c", [{"id": f"r{i}", "vector": v.tolist()} for i, v in enumerate(vectors)])
    assert engine.search("c", texts[4], k=1, min_seq=ack.seq).hits[0].id == "r4"
    with pytest.raises(InvalidRequest, match="makes 256-dim vectors"):
        engine.add_version("c", {"name": "v2", "model": {**NONE, "query": "hashing"}})
