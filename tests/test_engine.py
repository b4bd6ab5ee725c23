"""The engine in-process: writes, appliers, restarts, pinning, traffic."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from _checks import assert_end_state

from embedswitch import (
    Engine,
    EngineConfig,
    IndexMismatch,
    NothingToRollBack,
    VersionNotFound,
    VersionNotReady,
)
from embedswitch.models import load_model, parse_model_spec

FAST = EngineConfig(checkpoint_interval_s=0.2)


def _docs(n: int, rev: int = 0) -> list[dict]:
    return [{"id": f"d{i}", "text": f"document {i} revision {rev}", "fields": {"n": i}} for i in range(n)]


def test_search_is_pinned_and_names_its_version(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    ack = engine.upsert("c", _docs(50))
    result = engine.search("c", "document 7 revision 0", k=3, min_seq=ack.seq)
    assert result.version == "v1" and result.applied_seq >= ack.seq
    assert result.hits[0].id == "d7" and result.hits[0].fields == {"n": 7}
    model = load_model(parse_model_spec("hashing"))
    q, d = model.encode(["document 7 revision 0"], "query"), model.encode(["document 7 revision 0"])
    assert result.hits[0].score == pytest.approx(float(q[0] @ d[0]), abs=1e-5)


def test_restart_replays_from_checkpoint(tmp_path: Path) -> None:
    with Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", _docs(100))
    with Engine.open(tmp_path, FAST) as engine:
        assert engine.collection("c").get_version("v1").wait_applied(100, 10)
        assert engine.describe("c").versions[0].records == 100
        engine.upsert("c", _docs(100, rev=1)[:10])
        engine.delete("c", "d99")
        assert_end_state(engine, "c")
    with Engine.open(tmp_path, FAST) as engine:
        info = engine.describe("c")
        assert info.records == 99 and info.head_seq == 111
        assert_end_state(engine, "c")


def test_opening_an_index_with_another_model_is_an_error(tmp_path: Path) -> None:
    with Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", _docs(5))
        assert engine.collection("c").get_version("v1").wait_applied(5, 10)
    with sqlite3.connect(tmp_path / "embedswitch.db") as conn:
        conn.execute(
            "UPDATE versions SET spec=? WHERE name='v1'",  # an operator editing the model in place
            ('{"name": "v1", "model": {"type": "hashing", "seed": 42}}',),
        )
    with pytest.raises(IndexMismatch, match="built by model"):
        Engine.open(tmp_path, FAST)
    with pytest.raises(IndexMismatch):  # the failed open released the data dir
        Engine.open(tmp_path, FAST)


def test_data_dir_is_locked(tmp_path: Path) -> None:
    with Engine.open(tmp_path, FAST), pytest.raises(Exception, match="in use"):
        Engine.open(tmp_path, FAST)


def test_versions_traffic_promote_rollback_retire(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", _docs(300))
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    engine.wait_ready("c", "v2", 30)
    engine.set_traffic("c", {"v1": 90, "v2": 10})
    engine.set_traffic("c", {"v1": 50, "v2": 50})
    picks = {engine.search("c", "document", key=f"u{i}").version for i in range(100)}
    assert picks == {"v1", "v2"}
    assert engine.rollback("c").weights == {"v1": 90, "v2": 10}
    assert engine.rollback("c").weights == {"v1": 100}
    with pytest.raises(NothingToRollBack):
        engine.rollback("c")
    assert engine.promote("c", "v2").weights == {"v2": 100}
    engine.retire("c", "v1")
    assert [v.name for v in engine.describe("c").versions] == ["v2"]
    assert not (engine.data_dir / "indexes" / "c" / "v1").exists()
    events = [e.event for e in engine.events("c")]
    assert "retired" in events and "ready" in events
    assert_end_state(engine, "c")


def test_building_version_gets_no_traffic(tmp_path: Path) -> None:
    with Engine.open(tmp_path, EngineConfig(backfill_max_rate=5, backfill_batch=5)) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", _docs(200))
        info = engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        assert info.state == "building" and info.weight == 0
        with pytest.raises(VersionNotReady, match="backfilled"):
            engine.set_traffic("c", {"v1": 50, "v2": 50})
        assert all(engine.search("c", "document", key=f"u{i}").version == "v1" for i in range(50))
        # an explicit pin reaches a building version (for debugging and evaluation)
        assert engine.search("c", "document", version="v2").version == "v2"


def test_retire_waits_for_requests_in_flight(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", _docs(50))
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    engine.wait_ready("c", "v2", 30)
    engine.promote("c", "v2")
    target = engine.collection("c")
    retired = threading.Event()
    with target.pinned("v1", None) as v1:  # a request that resolved v1 just before the retire
        retirer = threading.Thread(target=lambda: (engine.retire("c", "v1"), retired.set()))
        retirer.start()
        time.sleep(0.3)
        assert not retired.is_set(), "retire did not wait for the request in flight"
        hits = v1.search("document 3 revision 0", 3, "doc", target.kinds)  # still fully usable
        assert hits[0][0] == "d3"
        with pytest.raises(VersionNotFound):  # but no new request reaches it
            engine.search("c", "document", version="v1")
    retirer.join(10)
    assert retired.is_set() and not (engine.data_dir / "indexes" / "c" / "v1").exists()


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path, FAST)
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.close()
    engine.close()
    with Engine.open(tmp_path, FAST) as again:  # the data dir was released once
        assert [c.name for c in again.list_collections()] == ["c"]


def test_specs_stored_by_an_earlier_release_still_open(tmp_path: Path) -> None:
    """Earlier releases stored every index field whatever the type; today each type takes its own."""
    with Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing", "index": {"type": "exact"}})
    db = sqlite3.connect(tmp_path / "embedswitch.db")
    legacy = '{"type": "exact", "m": 16, "ef_construction": 128, "ef_search": 64, "auto_threshold": 20000}'
    db.execute("UPDATE versions SET spec=json_set(spec, '$.index', json(?))", (legacy,))
    db.commit()
    db.close()
    with Engine.open(tmp_path, FAST) as engine:
        assert engine.describe("c").versions[0].index == {"type": "exact"}
