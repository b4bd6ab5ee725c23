"""Experiments over real HTTP: traffic settings, feedback, the report, reset, metrics, the client,
and accepted feedback surviving kill -9."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _http import error, ok
from conftest import ServerProcess, ServerThread

from embedswitch import Client, Engine, RequestNotFound

V2 = {"name": "v2", "model": {"type": "hashing", "seed": 1, "dim": 128}}
TEXTS = [f"record {i} about {['cats', 'dogs', 'birds', 'fish'][i % 4]} and {i % 7} toys" for i in range(60)]


def setup(http: httpx.Client) -> None:
    ok(http.post("/v1/collections", json={"name": "c", "version": {"name": "v1", "model": "hashing"}}), 201)
    records = [{"id": f"r{i}", "text": text} for i, text in enumerate(TEXTS)]
    ok(http.put("/v1/collections/c/records", json={"records": records}))
    ok(http.post("/v1/collections/c/versions", json=V2), 202)
    deadline = time.monotonic() + 30
    while ok(http.get("/v1/collections/c/versions/v2"))["state"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def search(http: httpx.Client, **body: Any) -> dict[str, Any]:
    return ok(http.post("/v1/collections/c/search", json={"text": "cats and toys", "k": 5, **body}))


def test_traffic_settings_over_http(http: httpx.Client) -> None:
    setup(http)
    info = ok(http.put("/v1/collections/c/traffic", json={"shadow": {"version": "v2", "percent": 10}}))
    assert info["weights"] == {"v1": 100} and info["shadow"] == {"version": "v2", "percent": 10.0}
    body = {"interleave": {"versions": ["v1", "v2"], "percent": 20}, "weights": {"v1": 80, "v2": 20}}
    info = ok(http.put("/v1/collections/c/traffic", json=body))
    assert info["interleave"] == {"versions": ["v1", "v2"], "percent": 20.0} and info["shadow"]
    info = ok(http.put("/v1/collections/c/traffic", json={"weights": {"v1": 90, "v2": 10}}))
    assert info["shadow"] and info["interleave"]  # weights alone leave the settings as they are
    before = ok(http.get("/v1/collections/c/traffic"))
    for bad, status, code in [
        ({}, 422, "invalid_request"),
        ({"weights": None}, 422, "invalid_request"),
        ({"shadow": {"version": "v2", "percent": 0}}, 422, "invalid_request"),
        ({"shadow": {"version": "v2", "percent": 101}}, 422, "invalid_request"),
        ({"shadow": {"version": "v2"}}, 422, "invalid_request"),
        ({"interleave": {"versions": ["v1", "v1"], "percent": 5}}, 422, "invalid_request"),
        ({"interleave": {"versions": ["v1"], "percent": 5}}, 422, "invalid_request"),
        ({"shadow": {"version": "nope", "percent": 5}}, 404, "version_not_found"),
        (
            {"weights": {"v1": 1}, "interleave": {"versions": ["v1", "v9"], "percent": 5}},
            404,
            "version_not_found",
        ),
    ]:
        error(http.put("/v1/collections/c/traffic", json=bad), status, code)
    assert ok(http.get("/v1/collections/c/traffic")) == before  # rejections change nothing
    info = ok(http.put("/v1/collections/c/traffic", json={"shadow": None}))
    assert info["shadow"] is None and info["interleave"]
    events = ok(http.get("/v1/collections/c/events"))
    assert any(e["event"] == "experiment_settings" for e in events)


def test_feedback_report_reset_and_metrics_over_http(http: httpx.Client) -> None:
    setup(http)
    ok(http.put("/v1/collections/c/traffic", json={"weights": {"v1": 50, "v2": 50}}))
    answers = [search(http, key=f"user{i}") for i in range(40)]
    first = answers[0]
    click = {"request_id": first["request_id"], "id": first["hits"][1]["id"], "event": "click"}
    assert ok(http.post("/v1/collections/c/feedback", json=click)) == {
        "request_id": first["request_id"],
        "counted": True,
        "version": first["version"],
        "rank": 2,
    }
    assert ok(http.post("/v1/collections/c/feedback", json=click))["counted"] is False  # counted once
    body = error(
        http.post("/v1/collections/c/feedback", json={**click, "request_id": "0" * 32}),
        404,
        "request_not_found",
    )
    assert "0" * 32 in body["message"] and body["context"]["request_id"] == "0" * 32
    error(http.post("/v1/collections/c/feedback", json={**click, "id": "nope"}), 422, "invalid_request")
    error(http.post("/v1/collections/c/feedback", json={**click, "event": "view"}), 422, "invalid_request")
    error(http.post("/v1/collections/c/feedback", json={**click, "value": -1}), 422, "invalid_request")
    error(http.post("/v1/collections/c/feedback", json={**click, "extra": 1}), 422, "invalid_request")
    error(http.post("/v1/collections/nope/feedback", json=click), 404, "collection_not_found")
    convert = {"request_id": answers[1]["request_id"], "id": answers[1]["hits"][0]["id"], "event": "convert"}
    ok(http.post("/v1/collections/c/feedback", json={**convert, "value": 12.5}))

    report = ok(http.get("/v1/collections/c/experiment"))
    assert report["collection"] == "c" and report["experiment"] == 1
    arms = report["ab"]["arms"]
    assert sum(arm["requests"] for arm in arms.values()) == 40
    assert arms[first["version"]]["clicks"] == 1 and arms[answers[1]["version"]]["conversions"] == 1
    assert report["ab"]["control"] == "v1" and set(report["ab"]["comparisons"]) == {"v2"}
    assert report["interleaving"] is None and report["shadow"] == []

    text = http.get("/metrics").text
    assert (
        f'embedswitch_feedback_events_total{{collection="c",event="click",version="{first["version"]}"}} 1.0'
        in text
    )

    ok(http.put("/v1/collections/c/traffic", json={"interleave": {"versions": ["v1", "v2"], "percent": 100}}))
    shown = search(http)
    assert shown["interleaved"] == ["v1", "v2"] and {h["version"] for h in shown["hits"]} <= {"v1", "v2"}
    v2_hit = next(h for h in shown["hits"] if h["version"] == "v2")
    ack = ok(
        http.post(
            "/v1/collections/c/feedback",
            json={"request_id": shown["request_id"], "id": v2_hit["id"], "event": "click"},
        )
    )
    assert ack["version"] == "v2"
    interleaving = ok(http.get("/v1/collections/c/experiment"))["interleaving"]
    assert interleaving["impressions"] == 1 and interleaving["wins"] == {"v1": 0, "v2": 1}
    assert 'embedswitch_interleaving_wins{collection="c",version="v2"} 1.0' in http.get("/metrics").text

    fresh = ok(http.post("/v1/collections/c/experiment/reset", json={}))
    assert fresh["experiment"] == 2 and fresh["started_at"] > report["started_at"]
    assert all(arm["requests"] == 0 for arm in fresh["ab"]["arms"].values())
    error(http.post("/v1/collections/nope/experiment/reset", json={}), 404, "collection_not_found")


def test_client_mirrors_the_engine(server: ServerThread) -> None:
    with Client(server.url) as client, httpx.Client(base_url=server.url, timeout=30) as http:
        setup(http)
        info = client.set_traffic("c", shadow={"version": "v2", "percent": 50})
        assert info.shadow is not None and info.shadow.percent == 50
        assert client.set_traffic("c", {"v1": 100}).shadow is not None
        assert client.set_traffic("c", shadow="off").shadow is None
        result = client.search("c", "dogs", k=3)
        ack = client.feedback(
            "c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"}
        )
        assert ack.counted and ack.version == "v1"
        with pytest.raises(RequestNotFound):
            client.feedback("c", {"request_id": "x", "id": result.hits[0].id, "event": "click"})
        assert client.experiment("c").ab.arms["v1"].clicks == 1
        assert client.reset_experiment("c").experiment == 2


def test_accepted_feedback_survives_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine.open(data) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"r{i}", "text": text} for i, text in enumerate(TEXTS)])
    server = ServerProcess(data).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answers = [search(http, key=f"u{i}") for i in range(30)]
            for answer in answers[:12]:
                click = {"request_id": answer["request_id"], "id": answer["hits"][0]["id"], "event": "click"}
                assert ok(http.post("/v1/collections/c/feedback", json=click))["counted"]
            assert ok(http.get("/v1/collections/c/experiment"))["ab"]["arms"]["v1"]["requests"] == 30
            later = [search(http) for _ in range(5)]  # possibly still in the buffer at the kill
        server.kill()
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            arm = ok(http.get("/v1/collections/c/experiment"))["ab"]["arms"]["v1"]
            assert arm["clicks"] == 12 and 30 <= arm["requests"] <= 35  # the report wrote the first 30
            for answer in later:  # recorded, or lost with the buffer: a clear 404, never a 500
                click = {"request_id": answer["request_id"], "id": answer["hits"][0]["id"], "event": "click"}
                assert http.post("/v1/collections/c/feedback", json=click).status_code in (200, 404)
            again = {
                "request_id": answers[0]["request_id"],
                "id": answers[0]["hits"][0]["id"],
                "event": "click",
            }
            assert ok(http.post("/v1/collections/c/feedback", json=again))["counted"] is False
    finally:
        server.stop()
