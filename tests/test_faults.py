"""A hosted model that misbehaves mid-upgrade: rate limits, server errors, a record it rejects, an
endpoint that stays down (a candidate's trouble leaves the server ready; a live version's doesn't).

The faults are real answers of a real HTTP endpoint (``_endpoint.py``: a fake only in the faults
it injects on demand) to the ``openai`` adapter of the version being built: 429 with
``Retry-After``, then 500, then success, and 400 for one record's text, always.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from _checks import assert_end_state
from _endpoint import Faults, endpoint, spec
from _http import error, ok
from conftest import FAST, ServerThread

from embedswitch import Engine

POISON = "a text this provider refuses to embed"
LATE_POISON = "another text it refuses, streamed during the faults"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def url(faults: Faults) -> Iterator[str]:
    with endpoint(faults) as base:
        yield base


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_upgrade_survives_rate_limits_errors_and_a_rejected_record(
    tmp_path, faults: Faults, url: str
) -> None:
    config = FAST.model_copy(update={"backfill_batch": 50})
    with Engine.open(tmp_path / "data", config) as engine, ServerThread(engine) as server:
        http = httpx.Client(base_url=server.url, timeout=60)
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        docs = [{"id": f"d{i:03}", "text": f"document {i} about topic {i % 7}"} for i in range(300)]
        docs[13]["text"] = POISON
        engine.upsert("c", docs)
        faults.rejected |= {POISON, LATE_POISON}
        engine.add_version("c", {"name": "v2", "model": spec(url)})
        faults.script[:] = [(429, {"Retry-After": "1"}), (500, {}), (429, {"Retry-After": "1"}), (500, {})]
        errors: list[str] = []

        # the stream goes on while the endpoint fails: new records, updates, deletes, a rejected one
        engine.upsert("c", [{"id": f"n{i:02}", "text": f"new record {i}"} for i in range(30)])
        engine.upsert("c", [{"id": f"d{i:03}", "text": f"updated document {i}"} for i in range(10)])
        for i in range(20, 25):
            engine.delete("c", f"d{i:03}")
        head = engine.upsert("c", [{"id": "late", "text": LATE_POISON}]).seq

        v2 = engine.collection("c").get_version("v2")

        def settled() -> bool:
            info = engine.describe_version("c", "v2")
            if info.error:
                errors.append(info.error)
            done = info.progress is not None and info.progress.done == info.progress.total
            return done and v2.applied_seq >= head and info.quarantined == 2

        _wait(settled, "the backfill and the stream to get past the faults")
        assert errors == []  # every 429 and 500 was retried inside the model; nothing surfaced
        assert {429, 500} <= set(faults.statuses) and 400 in faults.statuses

        # the rejected records are quarantined, visible, and hold the version back
        v2.checkpoint()
        info = ok(http.get("/v1/collections/c/versions/v2"))
        assert (info["state"], info["quarantined"], info["quarantine_skipped"]) == ("building", 2, 0)
        listed = ok(http.get("/v1/collections/c/versions/v2/quarantine"))
        assert [(r["kind"], r["id"]) for r in listed["records"]] == [("doc", "d013"), ("doc", "late")]
        assert all("HTTP 400" in r["error"] and url in r["error"] for r in listed["records"])
        assert (
            'embedswitch_quarantined_records{collection="c",state="open",version="v2"} 2.0'
            in http.get("/metrics").text
        )
        assert "quarantined" in {e.event for e in engine.events("c", "v2")}
        error(
            http.put("/v1/collections/c/traffic", json={"weights": {"v1": 90, "v2": 10}}),
            409,
            "version_not_ready",
        )
        assert engine.search("c", "document 5", k=1).version == "v1"  # serving never noticed

        # a later write of a rejected record resolves it; a retry of the other is rejected again
        ack = engine.upsert("c", [{"id": "late", "text": "a text it accepts"}])
        assert v2.wait_applied(ack.seq, 30)
        assert engine.describe_version("c", "v2").quarantined == 1
        retried = ok(http.post("/v1/collections/c/versions/v2/quarantine/retry", json={}))
        assert (retried["changed"], retried["rejected"], retried["open"]) == (0, 1, 1)

        # skipped: the version gets ready without it; every other record is there, of its latest text
        skipped = ok(http.post("/v1/collections/c/versions/v2/quarantine/skip", json={}))
        assert (skipped["changed"], skipped["open"], skipped["skipped"]) == (1, 0, 1)
        engine.wait_ready("c", "v2", 30)
        assert_end_state(engine, "c")
        assert v2.index("doc").get(["d013"]) == {}
        ok(http.put("/v1/collections/c/traffic", json={"weights": {"v1": 90, "v2": 10}}))

        # the provider takes the text now: a retry embeds it and the quarantine is empty
        faults.rejected.clear()
        retried = ok(http.post("/v1/collections/c/versions/v2/quarantine/retry", json={}))
        assert (retried["changed"], retried["open"], retried["skipped"]) == (1, 0, 0)
        assert ok(http.get("/v1/collections/c/versions/v2/quarantine"))["records"] == []
        assert set(v2.index("doc").get(["d013"])) == {"d013"}
        assert_end_state(engine, "c")
        http.close()


def test_an_endpoint_that_stays_down_is_reported_and_recovered(
    engine: Engine, faults: Faults, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The error is visible, recorded and logged once per failing worker, nothing is lost, it
    resumes; the server stays ready while only a candidate fails, and turns unready when a version
    that serves users does."""
    caplog.set_level(logging.DEBUG, logger="embedswitch.events")
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": f"d{i}", "text": f"document {i}"} for i in range(300)])
    engine.add_version("c", {"name": "v2", "model": spec(url, retry_attempts=2)})
    faults.failing = True
    engine.upsert("c", [{"id": "late", "text": "written while the endpoint fails"}])
    _wait(lambda: bool(engine.describe_version("c", "v2").error), "the failure to show in the status")
    error = engine.describe_version("c", "v2").error or ""
    assert "ModelUnavailable" in error and "gave up after 2 attempt(s)" in error
    # retried at least twice, recorded and logged once per failing worker
    _wait(lambda: any("failed again" in r.getMessage() for r in caplog.records), "a retry")
    failures = [e for e in engine.events("c", "v2") if e.event == "failing"]
    workers = [e.detail["worker"] for e in failures]
    assert failures and len(set(workers)) == len(workers), workers
    logged = [r for r in caplog.records if getattr(r, "event", None) == "failing"]
    assert len(logged) == len(failures) and all(r.levelno == logging.WARNING for r in logged)

    with ServerThread(engine) as server:  # only the candidate fails: the server stays ready
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["problems"] == [] and "c/v2" in ready.json()["candidates"][0]
        assert engine.search("c", "document 5", k=1).version == "v1"  # serving is unaffected

        faults.failing = False
        engine.wait_ready("c", "v2", 120)
        assert engine.describe_version("c", "v2").error is None
        assert engine.describe_version("c", "v2").quarantined == 0  # a down endpoint rejects nothing
        assert "recovered" in [e.event for e in engine.events("c", "v2")]

        engine.promote("c", "v2")  # now the failing version would be the one users get
        faults.failing = True
        engine.upsert("c", [{"id": "later", "text": "written while the live version fails"}])
        _wait(lambda: httpx.get(f"{server.url}/readyz").status_code == 503, "the server to turn unready")
        assert "c/v2" in httpx.get(f"{server.url}/readyz").json()["problems"][0]

        faults.failing = False
        _wait(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "the server to be ready again")
    assert_end_state(engine, "c")
