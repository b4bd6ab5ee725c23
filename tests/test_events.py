"""Every state change is stored as an event and logged exactly once, in the same order.

(A failing and recovering worker, ``Trouble``, is covered with a real failing endpoint in
``test_faults.py``.)
"""

from __future__ import annotations

import logging

import pytest

from embedswitch import Engine


def test_every_state_change_is_stored_and_logged_once(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="embedswitch.events")
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": f"d{i}", "text": f"document {i}"} for i in range(50)])
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    engine.wait_ready("c", "v2", 60)
    rollout = engine.start_rollout("c", {"to": "v2", "steps": [60, 100], "min_requests": 10**6})
    engine.stop_rollout("c", rollout.id)
    engine.set_traffic("c", {"v1": 50, "v2": 50})
    engine.set_traffic("c", shadow={"version": "v2", "percent": 10})
    engine.promote("c", "v2")
    engine.rollback("c")
    engine.promote("c", "v2")
    engine.retire("c", "v1")

    stored = [(e.version, e.event, e.detail) for e in reversed(engine.events("c"))]
    logged = [
        (r.version, r.event, r.detail)
        for r in caplog.records
        if r.name == "embedswitch.events" and r.collection == "c"  # type: ignore[attr-defined]
    ]
    assert logged == stored
    kinds = {event for _, event, _ in stored}
    assert {"created", "backfill_finished", "ready", "traffic", "experiment_settings", "rollout"} <= kinds
    assert "retired" in kinds
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "embedswitch.events")
    rollback = [r.getMessage() for r in caplog.records if "rollback to #" in r.getMessage()]
    assert len(rollback) == 1 and rollback[0].startswith("c: traffic ")
