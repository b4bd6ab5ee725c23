"""A real HTTP server in a thread of the test process, for the tests of model specs that reach out:
it records every request it gets (any method, any path) and answers OpenAI-style embedding
requests with the hashing model, or a chosen failure."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from embedswitch.models.hashing import HashingModel

LEAK = "LEAKED-REMOTE-BODY-7f3a"
"""What the failure answers of ``Recorder`` hold; an error message that repeats it leaks the body."""


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """The requests seen so far and how to answer the next ones.

    ``answer``: "ok" (hashing vectors, dim 32, for ``POST .../embeddings``; 404 elsewhere), an HTTP
    status (that status with a body holding ``LEAK``), "garbage" (200, a non-JSON body holding
    ``LEAK``) or "strings" (200, JSON whose embeddings are strings holding ``LEAK``)."""

    answer: str | int = "ok"
    seen: list[Seen] = field(default_factory=list)

    def respond(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if isinstance(self.answer, int):
            return self.answer, json.dumps({"error": {"message": LEAK}}).encode()
        if self.answer == "garbage":
            return 200, f"<html>{LEAK}</html>".encode()
        if method != "POST" or not path.endswith("/embeddings"):
            return 404, b'{"error": "no such route"}'
        texts = json.loads(body)["input"]
        if self.answer == "strings":
            data = [{"index": i, "embedding": [LEAK] * 32} for i in range(len(texts))]
        else:
            data = [
                {"index": i, "embedding": v.tolist()} for i, v in enumerate(HashingModel(32).encode(texts))
            ]
        return 200, json.dumps({"object": "list", "data": data}).encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        sent = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.seen.append(Seen(scope["method"], scope["path"], sent, body))
        status, answer = self.respond(scope["method"], scope["path"], body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """A real uvicorn server for the ASGI ``app`` on a free localhost port, in a thread; yields its
    base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", http="h11", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test HTTP server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
