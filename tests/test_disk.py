"""Bounded disk: a long write/delete soak leaves the data dir's size bounded, the write-ahead log
cut back, and the events within their retention."""

from __future__ import annotations

from pathlib import Path

from _checks import assert_end_state

from embedswitch import Engine, EngineConfig

# maintenance runs when the test calls it, not on a timer, so every round is measured after it
CONFIG = EngineConfig(checkpoint_interval_s=0.1, maintenance_interval_s=3600, events_keep=5)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _round(engine: Engine, n: int, rev: int) -> None:
    text = "soak " * 400
    for start in range(0, n, 250):
        ids = range(start, min(n, start + 250))
        engine.upsert("c", [{"id": f"r{i}", "text": f"{text} {i} {rev}"} for i in ids])
    engine.set_traffic("c", {"v1": 100})  # an event per round
    for i in range(0, n, 2):
        engine.delete("c", f"r{i}")


def test_write_delete_soak_keeps_disk_bounded(tmp_path: Path) -> None:
    sizes = []
    with Engine.open(tmp_path, CONFIG) as engine:
        engine.create_collection("c", {"name": "v1", "model": {"type": "hashing", "dim": 64}})
        for rev in range(8):
            _round(engine, 1500, rev)
            version = engine.collection("c").get_version("v1")
            assert version.wait_applied(engine.collection("c").head_seq(), 30)
            version.checkpoint()
            engine.maintain()
            sizes.append(_size(tmp_path))
            wal = tmp_path / "embedswitch.db-wal"
            assert not wal.exists() or wal.stat().st_size < 1_000_000, "the WAL was not cut back"
        assert len(engine.store.events("c", None, 1000)) <= 5
        assert len(engine.store.read_log("c", 0, 10**6)) < 1500  # pruned below the saved position
        assert_end_state(engine, "c")
    # after the first rounds fill the free pages, more rounds of the same work don't grow the dir
    assert max(sizes[3:]) <= sizes[2] * 1.25, sizes
