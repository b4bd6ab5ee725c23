"""Backpressure: while a serving version's applier is more than ``max_apply_lag`` log entries behind,
writes are refused (503 ``overloaded`` with Retry-After) and change nothing; building versions
don't count; the Client sends a refused write again once it is let through.

The fault is injected: the test pauses an applier by holding its apply lock (the lock every applied
batch takes), since a real applier falls behind only under a load the test can't time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _http import error
from conftest import ServerThread

from embedswitch import Client, Engine, EngineConfig, Overloaded

BOUND = 10


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine.open(tmp_path / "data", EngineConfig(checkpoint_interval_s=0.2, max_apply_lag=BOUND)) as eng:
        eng.create_collection("c", {"name": "v1", "model": "hashing"})
        yield eng


def records(prefix: str, n: int) -> list[dict[str, str]]:
    return [{"id": f"{prefix}{i}", "text": f"record {prefix} {i}"} for i in range(n)]


def state(engine: Engine) -> tuple[int, int, int]:
    """What a refused write must leave as it was: the head seq, the records, the events."""
    info = engine.describe("c")
    return info.head_seq, info.records, len(engine.events("c"))


def test_writes_are_refused_while_the_live_version_is_behind(engine: Engine) -> None:
    v1 = engine.collection("c").get_version("v1")
    with v1.applier.lock:  # the fault: v1's applier is paused
        engine.upsert("c", records("a", BOUND + 1))  # accepted: v1 was caught up
        before = state(engine)
        with pytest.raises(Overloaded) as refused:
            engine.upsert("c", records("b", 1))
        assert refused.value.context["version"] == "v1" and refused.value.context["lag"] == BOUND + 1
        assert refused.value.headers == {"Retry-After": "1"}
        with pytest.raises(Overloaded):
            engine.delete("c", "a0")
        with pytest.raises(Overloaded):
            engine.add_interactions("c", [{"user": "u1", "item": "a0"}])
        assert state(engine) == before
        assert engine.store.get_records("c", [("doc", "b0"), ("doc", "a0")]).keys() == {("doc", "a0")}
    assert v1.wait_applied(before[0], 10)
    assert engine.upsert("c", records("b", 1)).seq == before[0] + 1  # let through once caught up


def test_building_versions_do_not_count(engine: Engine) -> None:
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 2}})
    v1 = engine.collection("c").get_version("v1")
    with engine.collection("c").get_version("v2").applier.lock:  # the fault: only v2 is paused
        for batch in range(3):
            ack = engine.upsert("c", records(f"r{batch}-", BOUND))
            assert v1.wait_applied(ack.seq, 10)
        assert engine.describe_version("c", "v2").lag > BOUND
    engine.wait_ready("c", "v2", 60)


def test_an_interleaved_version_counts(engine: Engine) -> None:
    """A version without weight that answers users through interleaving is serving too."""
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 2}})
    engine.wait_ready("c", "v2", 60)
    engine.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 10})
    assert engine.serving("c") == {"v1", "v2"}
    with engine.collection("c").get_version("v2").applier.lock:  # the fault: v2 is paused
        ack = engine.upsert("c", records("a", BOUND + 1))
        assert engine.collection("c").get_version("v1").wait_applied(ack.seq, 10)
        with pytest.raises(Overloaded, match="version 'v2'"):
            engine.upsert("c", records("b", 1))


def test_over_http_a_refused_write_is_503_and_the_client_retries(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="embedswitch.http")
    v1 = engine.collection("c").get_version("v1")
    with ServerThread(engine) as server, Client(server.url) as client:
        lock = v1.applier.lock
        lock.acquire()  # the fault: v1's applier is paused
        try:
            client.upsert("c", records("a", BOUND + 1))
            refused = client._http.put("/v1/collections/c/records", json={"records": records("b", 1)})
            body = error(refused, 503, "overloaded")
            assert "max_apply_lag" in body["message"] and refused.headers["Retry-After"] == "1"

            done: list[int] = []
            sender = threading.Thread(target=lambda: done.append(client.upsert("c", records("c", 1)).seq))
            sender.start()
            deadline = time.monotonic() + 30
            while sum(1 for r in caplog.records if getattr(r, "status", None) == 503) < 2:
                assert time.monotonic() < deadline, "the client's write was never refused"
                time.sleep(0.02)
        finally:
            lock.release()
        sender.join(timeout=30)
        assert done == [BOUND + 2]  # sent again after Retry-After, written once
        assert engine.describe("c").records == BOUND + 2
