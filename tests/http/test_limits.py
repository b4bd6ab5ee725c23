"""Bounded concurrency for expensive calls, over real HTTP: one evaluation past
``max_concurrent_heavy`` gets 503 ``busy`` with ``Retry-After`` at once, instead of a thread that
waits its turn; the slot is free again as soon as the running one ends.

The evaluation in flight is held inside a real embedding endpoint (``_endpoint.py``, a fake only in
that it holds any text containing ``HOLD`` until the test releases it), so the test decides how
long it runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from _endpoint import HOLD, Faults, endpoint, spec
from _http import error, ok
from conftest import FAST, ServerThread

from embedswitch import Engine
from embedswitch.http.settings import HttpConfig

C = "/v1/collections/docs"


def evaluation(query: str) -> dict[str, object]:
    return {"versions": ["v2"], "queries": {"q1": query}, "qrels": {"q1": {"d1": 1}}}


def test_an_expensive_call_past_the_limit_is_503_busy_and_runs_once_a_slot_is_free(tmp_path: Path) -> None:
    faults = Faults()
    with endpoint(faults) as url, Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("docs", {"name": "v1", "model": "hashing"})
        engine.upsert("docs", [{"id": "d1", "text": "vitamin D and bones"}, {"id": "d2", "text": "sleep"}])
        engine.add_version("docs", {"name": "v2", "model": spec(url)})
        engine.wait_ready("docs", "v2", 30)
        with (
            ServerThread(engine, HttpConfig(max_concurrent_heavy=1)) as server,
            httpx.Client(base_url=server.url, timeout=60) as http,
        ):
            held: list[httpx.Response] = []
            first = threading.Thread(
                target=lambda: held.append(http.post(f"{C}/evaluate", json=evaluation(f"{HOLD} bones")))
            )
            first.start()
            assert faults.held.wait(30), "the first evaluation never reached the model"

            refused = http.post(f"{C}/evaluate", json=evaluation("vitamin D"))
            body = error(refused, 503, "busy")
            assert "max_concurrent_heavy" in body["message"] and refused.headers["Retry-After"] == "5"
            train = {"version": "als1", "model": {"type": "als", "factors": 8}}
            error(http.post(f"{C}/train", json=train), 503, "busy")  # the same slots
            assert [v["name"] for v in ok(http.get(f"{C}/versions"))] == ["v1", "v2"]  # nothing started

            faults.release.set()
            first.join(30)
            assert held and held[0].status_code == 200, held  # the held one finished
            assert "v2" in ok(http.post(f"{C}/evaluate", json=evaluation("vitamin D")))["versions"]
