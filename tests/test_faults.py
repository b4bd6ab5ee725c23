"""An embedding endpoint that fails: the error is visible, nothing is lost, it resumes; the server
stays ready while only a candidate fails, and turns unready when a version that serves users does.

The fault is real: the version's model is the ``openai`` adapter talking to a real HTTP server
(serving the hashing model) that answers 500 while the test says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx
import pytest
from _checks import assert_end_state
from _endpoint import EmbeddingEndpoint
from conftest import ServerThread

from embedswitch import Engine


def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_failing_model_endpoint_is_reported_and_recovered(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="embedswitch.events")
    with EmbeddingEndpoint() as endpoint:
        failing = endpoint.failing
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"document {i}"} for i in range(300)])
        engine.add_version("c", {"name": "v2", "model": endpoint.spec})
        failing.set()
        engine.upsert("c", [{"id": "late", "text": "written while the endpoint fails"}])
        eventually(lambda: bool(engine.describe_version("c", "v2").error), "the failure never showed")
        assert "ModelUnavailable" in (engine.describe_version("c", "v2").error or "")
        # retried at least twice, recorded and logged once per failing worker
        eventually(lambda: any("failed again" in r.getMessage() for r in caplog.records), "no retry")
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

            failing.clear()
            engine.wait_ready("c", "v2", 60)
            assert engine.describe_version("c", "v2").error is None
            assert "recovered" in [e.event for e in engine.events("c", "v2")]

            engine.promote("c", "v2")  # now the failing version would be the one users get
            failing.set()
            engine.upsert("c", [{"id": "later", "text": "written while the live version fails"}])
            eventually(lambda: httpx.get(f"{server.url}/readyz").status_code == 503, "still ready")
            assert "c/v2" in httpx.get(f"{server.url}/readyz").json()["problems"][0]

            failing.clear()
            eventually(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "never ready again")
        assert_end_state(engine, "c")
