"""A fake OpenAI-compatible ``/v1/embeddings`` endpoint, for tests that need a remote or slow model.

It is a fake on purpose: the vectors are the ``hashing`` model's (deterministic, so end-state checks
can recompute them), and each request is answered after ``delay_s``, which makes a model slow on
demand; no local model here is. It is served by a real uvicorn server on a free port, in a thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from conftest import free_port
from fastapi import FastAPI
from pydantic import BaseModel

from embedswitch.models.hashing import HashingModel

DIM = 64


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]


def make_app(delay_s: float) -> FastAPI:
    app = FastAPI()
    model = HashingModel(dim=DIM, seed=7)

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> dict[str, Any]:  # sync: requests sleep side by side
        time.sleep(delay_s)
        vectors = model.encode(body.input)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        return {"object": "list", "model": body.model, "data": data}

    return app


@contextlib.contextmanager
def embeddings_endpoint(delay_s: float = 0.0) -> Iterator[str]:
    """Serve the fake endpoint; yields its base URL (an ``openai`` model spec's ``url``)."""
    port = free_port()
    config = uvicorn.Config(make_app(delay_s), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake embeddings endpoint did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
