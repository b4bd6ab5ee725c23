"""Backfill under concurrent updates and deletes: no stale text, no resurrected record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _checks import assert_end_state
from _indexes import ENGINES, require_engine

from embedswitch import Engine, EngineConfig


def _wait(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


HASHING = {"type": "hashing", "seed": 1}


@pytest.mark.parametrize(
    ("model", "index_type"),
    [
        (HASHING, "auto"),
        *[(HASHING, engine) for engine in ENGINES],
        ({"type": "bm25"}, "auto"),
        ({"type": "hybrid", "dense": HASHING, "fusion": "convex"}, "auto"),
    ],
    ids=["hashing", *ENGINES, "bm25", "hybrid"],
)
def test_backfill_never_writes_stale_text_or_resurrects(tmp_path: Path, model: dict, index_type: str) -> None:
    """Deliberate interleaving: the backfill reads its first batches, then (while it waits for an
    in-flight query, the real yield mechanism) every record it read is updated or deleted and the
    stream applies that. When it resumes, it holds stale copies of all of them. A backfill without
    seq guards writes them and fails this test: Milvus without its ledger does (below), and so
    would a lexical (BM25, hybrid) version's index."""
    if index_type in ENGINES:
        require_engine(index_type)
    _race_stale_backfill(tmp_path, model, {"type": index_type})


@pytest.mark.parametrize(
    "model", [{"type": "bm25"}, {"type": "hybrid", "dense": HASHING}], ids=["bm25", "hybrid"]
)
def test_backfill_on_a_postgresql_store_never_writes_stale_text_or_resurrects(
    tmp_path: Path, pg_uri: str, model: dict[str, Any]
) -> None:
    """The same interleaving on a PostgreSQL store, where the BM25 index (and a hybrid's pgvector
    index) hold the seq guard in the database itself."""
    _race_stale_backfill(tmp_path, model, {"type": "auto"}, store=pg_uri)


def test_milvus_with_its_ledger_in_postgresql_never_writes_stale_text_or_resurrects(
    tmp_path: Path, pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race above on a PostgreSQL store: the milvus index's seq ledger is in the database
    (``es_ledger_seqs``). The engine is milvus-lite (no Milvus server here), one process's file,
    which a shared store refuses; this test runs one process, so it lifts that refusal: the
    ledger is what it is about."""
    require_engine("milvus")
    _share_milvus_lite(monkeypatch)
    _race_stale_backfill(tmp_path, HASHING, {"type": "milvus"}, pg_uri)


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_milvus_without_its_ledger_writes_stale_text_and_resurrects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, store: str
) -> None:
    """The control of the tests above: with a ledger whose guard lets every write pass (Milvus
    alone, which has no conditional write), the backfill's stale copies land and the race test
    fails, with the ledger in SQLite and in PostgreSQL."""
    require_engine("milvus")
    from embedswitch.index import _ledger

    monkeypatch.setattr(_ledger, "passes", lambda stored, seq: True)
    unguarded = _ledger._PG_RECORD.replace("WHERE s.seq < excluded.seq", "")
    assert unguarded != _ledger._PG_RECORD
    monkeypatch.setattr(_ledger, "_PG_RECORD", unguarded)
    uri = "sqlite" if store == "sqlite" else request.getfixturevalue("pg_uri")
    if store == "postgresql":
        _share_milvus_lite(monkeypatch)
    with pytest.raises(AssertionError, match="50 deleted records present"):
        _race_stale_backfill(tmp_path, HASHING, {"type": "milvus"}, uri)
    with Engine.open(tmp_path, store=uri) as engine:
        v2 = engine.collection("c").get_version("v2")
        index = v2.index("doc")
        assert index is not None
        resurrected = {f"{i:03}" for i in range(50, 100)}
        assert resurrected <= set(index.ids())
        stale = [f"{i:03}" for i in range(50)]
        stored = index.get(stale)
        originals = v2.model.encode([f"original text {i}" for i in range(50)], purpose="document")
        np.testing.assert_allclose(np.stack([stored[i] for i in stale]), originals, atol=1e-6)


def _share_milvus_lite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a PostgreSQL store take a milvus-lite index (refused because another process could not
    read its file; these tests run one process)."""
    from embedswitch import specs
    from embedswitch.index import registry

    shares = registry.shares_across_processes
    lifted = lambda spec: spec.type == "milvus" or shares(spec)  # noqa: E731
    monkeypatch.setattr(registry, "shares_across_processes", lifted)
    monkeypatch.setattr(specs, "shares_across_processes", lifted)


def _race_stale_backfill(
    tmp_path: Path, model: dict[str, Any], index: dict[str, Any], store: str = "sqlite"
) -> None:
    config = EngineConfig(
        checkpoint_interval_s=0.2, backfill_batch=50, encode_workers=1, backfill_yield_max_wait_s=120
    )
    with Engine.open(tmp_path, config, store=store) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"{i:03}", "text": f"original text {i}"} for i in range(200)])
        engine.activity.enter()  # a query in flight: the backfill reads ahead, then waits
        try:
            engine.add_version("c", {"name": "v2", "model": model, "index": index})
            backfill = engine.collection("c").get_version("v2").backfill
            assert backfill is not None
            _wait(lambda: backfill.read_cursor is not None and backfill.read_cursor >= ("doc", "099"))
            assert backfill.state.done == 0, "the backfill wrote before the interleaving was set up"
            # records 000-049 were read (batch 1), 050-099 too (batch 2, read ahead); 100+ not yet
            engine.upsert("c", [{"id": f"{i:03}", "text": f"updated text {i}"} for i in range(50)])
            for i in range(50, 100):
                engine.delete("c", f"{i:03}")
            engine.upsert("c", [{"id": f"{i:03}", "text": f"updated text {i}"} for i in range(100, 150)])
            for i in range(150, 175):
                engine.delete("c", f"{i:03}")
            head = engine.collection("c").head_seq()
            assert engine.collection("c").get_version("v2").wait_applied(head, 30)
        finally:
            engine.activity.exit()
        engine.wait_ready("c", "v2", 60)
        assert backfill.state.done == 125  # read: 000-099 before the changes, 175-199 unchanged
        checked = assert_end_state(engine, "c")
        assert checked == {"v1": 125, "v2": 125}


def test_backfill_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """A restart mid-backfill continues from the persisted cursor instead of starting over."""
    slow = EngineConfig(checkpoint_interval_s=0.1, backfill_batch=20, backfill_max_rate=400)
    with Engine.open(tmp_path, slow) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"{i:04}", "text": f"text {i}"} for i in range(1000)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 3}})
        v2 = engine.collection("c").get_version("v2")
        _wait(lambda: v2.row.backfill is not None and v2.row.backfill.done >= 300)
        engine.upsert("c", [{"id": "0001", "text": "changed during the backfill"}])
    with Engine.open(tmp_path, EngineConfig(checkpoint_interval_s=0.1)) as engine:
        v2 = engine.collection("c").get_version("v2")
        assert v2.backfill is not None
        resumed_at = v2.backfill.state.done
        assert resumed_at >= 300, "the backfill restarted from zero"
        engine.wait_ready("c", "v2", 60)
        assert_end_state(engine, "c")
