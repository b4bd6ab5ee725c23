"""A real OpenAI-compatible embedding endpoint serving the hashing model, on a free port in a thread.

The faults are the test's to switch on: ``failing`` answers 500; a request whose input contains
``HOLD`` is kept (``held`` is set when one arrives) until ``release`` is set.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn
from conftest import free_port
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch.models.hashing import HashingModel

HOLD = "HOLD"


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]


class EmbeddingEndpoint:
    def __init__(self, dim: int = 64, seed: int = 9) -> None:
        self.failing = threading.Event()
        self.held = threading.Event()
        self.release = threading.Event()
        self.spec: dict[str, Any] = {"type": "openai", "model": f"hash-{seed}", "dimensions": dim}
        model = HashingModel(dim=dim, seed=seed)
        app = FastAPI()

        @app.post("/v1/embeddings")
        def embeddings(body: EmbeddingRequest) -> object:
            if self.failing.is_set():
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
            if any(HOLD in text for text in body.input):
                self.held.set()
                self.release.wait(120)
            vectors = model.encode(body.input)
            return {"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.spec["url"] = self.url
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))

    def __enter__(self) -> EmbeddingEndpoint:
        threading.Thread(target=self._server.run, daemon=True).start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.should_exit = True
