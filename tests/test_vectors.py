"""Batch deployment: a version loaded from precomputed vectors, then gap-filled by its model."""

from __future__ import annotations

import numpy as np
import pytest
from _checks import assert_end_state

from embedswitch import Conflict, Engine, InvalidRequest, RecordNotFound, VersionNotReady
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
