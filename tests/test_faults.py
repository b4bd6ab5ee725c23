"""An embedding endpoint that fails mid-backfill: the error is visible, nothing is lost, it resumes.

The fault is real: the version's model is the ``openai`` adapter talking to a real HTTP server
(serving the hashing model) that answers 500 while the test says so.
"""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn
from _checks import assert_end_state
from conftest import ServerThread, free_port
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch import Engine
from embedswitch.models.hashing import HashingModel


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]


def embedding_server(failing: threading.Event) -> tuple[uvicorn.Server, str]:
    app = FastAPI()
    model = HashingModel(dim=64, seed=9)

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> object:
        if failing.is_set():
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
        vectors = model.encode(body.input)
        return {"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}"


def test_failing_model_endpoint_is_reported_and_recovered(engine: Engine) -> None:
    failing = threading.Event()
    endpoint, url = embedding_server(failing)
    try:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"document {i}"} for i in range(300)])
        spec = {"type": "openai", "url": url, "model": "hash-9", "dimensions": 64}
        engine.add_version("c", {"name": "v2", "model": spec})
        failing.set()
        engine.upsert("c", [{"id": "late", "text": "written while the endpoint fails"}])
        deadline = time.monotonic() + 30
        while not engine.describe_version("c", "v2").error:
            assert time.monotonic() < deadline, "the failure never showed in the version's status"
            time.sleep(0.05)
        assert "ModelUnavailable" in (engine.describe_version("c", "v2").error or "")
        with ServerThread(engine) as server:
            ready = httpx.get(f"{server.url}/readyz")
            assert ready.status_code == 503 and "c/v2" in ready.json()["problems"][0]
        assert engine.search("c", "document 5", k=1).version == "v1"  # serving is unaffected
        failing.clear()
        engine.wait_ready("c", "v2", 60)
        assert engine.describe_version("c", "v2").error is None
        assert_end_state(engine, "c")
    finally:
        endpoint.should_exit = True
