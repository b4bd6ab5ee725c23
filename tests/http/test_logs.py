"""Each request gets one id: on its response (X-Request-ID), in its search answer (request_id), on
its request log line and on every line logged while it ran; plain and JSON lines both carry it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from conftest import ServerThread

from embedswitch import Engine
from embedswitch.http.logs import log_handler


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """What the ``embedswitch`` loggers write through a handler of the given format, from INFO."""
    stream = io.StringIO()
    handler = log_handler(request.param, stream)
    logger = logging.getLogger("embedswitch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def two_versions(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": "d1", "text": "a document about the sea"}])
    engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    engine.wait_ready("c", "v2", 30)


@pytest.mark.parametrize("captured", ["plain"], indirect=True)
def test_plain_lines_carry_the_request_id(engine: Engine, captured: io.StringIO) -> None:
    two_versions(engine)
    with ServerThread(engine) as server, httpx.Client(base_url=server.url) as http:
        search = http.post("/v1/collections/c/search", json={"text": "the sea", "k": 1})
        promote = http.post("/v1/collections/c/versions/v2/promote", json={})
        probe = http.get("/healthz")
    search_id, promote_id = search.headers["x-request-id"], promote.headers["x-request-id"]
    assert search.json()["request_id"] == search_id != promote_id
    lines = captured.getvalue().splitlines()
    assert any(f"[{search_id}] POST /v1/collections/c/search 200" in line for line in lines), lines
    assert any(f"[{promote_id}] POST /v1/collections/c/versions/v2/promote 200" in line for line in lines)
    traffic = [line for line in lines if "c: traffic" in line]  # the event, logged inside the request
    assert len(traffic) == 1 and f"[{promote_id}]" in traffic[0]
    assert not any(probe.headers["x-request-id"] in line for line in lines)  # probes: DEBUG only


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_json_lines_carry_the_request_and_its_fields(engine: Engine, captured: io.StringIO) -> None:
    two_versions(engine)
    with ServerThread(engine) as server:
        missing = httpx.get(f"{server.url}/v1/collections/nope")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    [request] = [line for line in lines if line["logger"] == "embedswitch.http"]
    assert request["request_id"] == missing.headers["x-request-id"]
    assert (request["method"], request["path"], request["status"]) == ("GET", "/v1/collections/nope", 404)
    assert request["level"] == "INFO" and request["duration_ms"] >= 0 and request["time"]
    ready = [line for line in lines if line.get("event") == "ready"]
    assert ready and ready[0]["collection"] == "c" and ready[0]["version"] == "v2"
    assert ready[0]["request_id"] is None  # logged by the backfill, in no request
