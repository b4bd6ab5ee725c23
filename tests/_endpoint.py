"""A real OpenAI-compatible embedding endpoint that injects faults, for the tests of hosted models.

It is a fake only in its faults: a real uvicorn server on a free port, serving the hashing model's
vectors, that answers on demand what a hosted provider answers when it chooses to: a scripted
status (429 with ``Retry-After``, 500) for the next requests, 400 for any request holding a
rejected text (always, like a provider's content or validation check), or 500 while ``failing``.
A request whose input contains ``HOLD`` is kept (``held`` is set when one arrives) until the test
sets ``release``: a request or an applier step in flight for as long as the test needs. With
``delay_s`` every answer comes that much later: a slow model on demand, which no local model is.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from _remote import serve
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch.models.hashing import HashingModel

DIM = 64
SEED = 9
HOLD = "HOLD"


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]
    dimensions: int | None = None


@dataclass
class Faults:
    """What the endpoint does wrong, and what it has seen (changed by the test while it serves)."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next answers: status, headers
    rejected: set[str] = field(default_factory=set)  # texts answered 400
    failing: bool = False  # every request answered 500
    delay_s: float = 0.0  # every answer this much later
    requests: int = 0
    texts: int = 0  # texts embedded (in answers of status 200)
    statuses: list[int] = field(default_factory=list)  # every answer's status, in order
    held: threading.Event = field(default_factory=threading.Event)  # a request holding HOLD arrived
    release: threading.Event = field(default_factory=threading.Event)  # lets held requests go on
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, texts: list[str]) -> tuple[int, dict[str, str]]:
        time.sleep(self.delay_s)  # the endpoint is sync: requests sleep side by side
        if any(HOLD in text for text in texts):
            self.held.set()
            self.release.wait(120)
        with self.lock:
            self.requests += 1
            if self.script:
                status, headers = self.script.pop(0)
            elif self.failing:
                status, headers = 500, {}
            elif self.rejected.intersection(texts):
                status, headers = 400, {}
            else:
                status, headers = 200, {}
            self.statuses.append(status)
            self.texts += len(texts) if status == 200 else 0
            return status, headers


def model() -> HashingModel:
    """The model the endpoint serves: the vectors a version over it must hold."""
    return HashingModel(dim=DIM, seed=SEED)


def _app(faults: Faults) -> FastAPI:
    app = FastAPI()
    served = model()

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> Any:
        status, headers = faults.answer(body.input)
        if status != 200:
            message = {"error": {"message": f"provider says no ({status})"}}
            return JSONResponse(message, status_code=status, headers=headers)
        vectors = served.encode(body.input)
        return {"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

    return app


@contextlib.contextmanager
def endpoint(faults: Faults) -> Iterator[str]:
    """Serve ``faults``' endpoint on a free localhost port; yields its base URL."""
    with serve(_app(faults)) as url:
        try:
            yield url
        finally:
            faults.release.set()  # a held request must not keep the server from stopping


def spec(url: str, **fields: Any) -> dict[str, Any]:
    """An ``openai`` model spec for the endpoint at ``url``, with ``fields`` set."""
    return {"type": "openai", "url": url, "model": "hash-9", "dimensions": DIM, **fields}
