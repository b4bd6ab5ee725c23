"""Where the search route runs a request: quick ones on the event loop, slow ones in a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _http import ok
from conftest import FAST, ServerThread

from embedswitch import Engine, EngineConfig
from embedswitch.specs import SearchRequest

SPEC = {"name": "v1", "model": {"type": "hashing", "seed": 7}}


def _collection(engine: Engine) -> None:
    engine.create_collection("docs", SPEC)
    seq = engine.upsert("docs", [{"id": f"r{i}", "text": f"record {i} about cats"} for i in range(20)]).seq
    engine.collection("docs").get_version("v1").wait_applied(seq, timeout_s=10)


def _encode_threads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the thread of every query encode of ``docs``'s v1 (the real model, wrapped)."""
    model = engine.collection("docs").get_version("v1").model
    seen: list[int] = []
    real = model.encode

    def encode(texts: list[str], purpose: Any = "document") -> np.ndarray:
        if purpose == "query":
            seen.append(threading.get_ident())
        return real(texts, purpose=purpose)

    monkeypatch.setattr(model, "encode", encode)
    return seen


def test_quick_searches_run_on_the_event_loop(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _collection(engine)
    seen = _encode_threads(engine, monkeypatch)
    assert engine.answers_inline("docs", SearchRequest(text="cats"))
    assert not engine.answers_inline("docs", SearchRequest(text="cats", min_seq=1))
    assert not engine.answers_inline("nope", SearchRequest(text="cats"))
    with ServerThread(engine) as server, httpx.Client(base_url=server.url) as http:
        assert ok(http.post("/v1/collections/docs/search", json={"text": "cats"}))["hits"]
        ok(http.post("/v1/collections/docs/search", json={"text": "cats", "min_seq": 1}))
        assert seen[0] == server.thread.ident  # the uvicorn thread runs the loop
        assert seen[1] != server.thread.ident  # waiting for a seq: a worker thread


def test_a_model_that_batches_queries_never_holds_up_the_event_loop(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the real hashing model, told it batches like a transformer, hangs in its
    encode until released; meanwhile other requests on the same server are answered."""
    _collection(engine)
    model = engine.collection("docs").get_version("v1").model
    monkeypatch.setattr(model, "batches_queries", True)
    entered, release = threading.Event(), threading.Event()
    real = model.encode

    def hanging(texts: list[str], purpose: Any = "document") -> np.ndarray:
        if purpose == "query":
            entered.set()
            release.wait(20)
        return real(texts, purpose=purpose)

    monkeypatch.setattr(model, "encode", hanging)
    assert not engine.answers_inline("docs", SearchRequest(text="cats"))
    with ServerThread(engine) as server:
        result: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: result.append(
                httpx.post(f"{server.url}/v1/collections/docs/search", json={"text": "x"})
            )
        )
        slow.start()
        assert entered.wait(10)
        try:
            assert httpx.get(f"{server.url}/v1/collections/docs", timeout=5).status_code == 200
        finally:
            release.set()
            slow.join(20)
        assert result[0].status_code == 200


def test_inline_requests_can_be_switched_off(tmp_path: Path) -> None:
    with Engine.open(
        tmp_path / "data", EngineConfig(**{**FAST.model_dump(), "inline_quick_requests": False})
    ) as e:
        _collection(e)
        assert not e.answers_inline("docs", SearchRequest(text="cats"))
