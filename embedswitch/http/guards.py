"""Checks of how a request is sent: its Host and the body's size before routing, how a POST is
sent after.

- **Host** must be one of ``allowed_hosts`` (DNS rebinding: a page on an attacker's domain that
  resolves to 127.0.0.1 sends its own name as Host).
- **Bodies over ``max_body_bytes``** get 413 before they are parsed: by ``Content-Length``, or
  counted as they stream in.
- **A POST needs a JSON content type or a header a cross-site form can't send** (``Authorization``
  or ``X-Requested-With``): an HTML form can only send form or text bodies, so a page the operator
  visits can't promote, roll back or retire on a keyless loopback server. PUT and DELETE can't be
  sent cross-site at all without CORS, which is off by default. ``json_only`` checks it once the
  request is routed and its key checked, so a POST to a path without one is 404 or 405, and one
  without a key 401, whatever its content type.

``Guards`` is a pure ASGI middleware (no per-request task or copy), answering an ``ErrorBody`` itself.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import PayloadTooLarge
from .errors import HOST_NOT_ALLOWED, JSON_REQUIRED, ErrorBody
from .settings import HttpConfig


class Guards:
    def __init__(self, app: ASGIApp, config: HttpConfig) -> None:
        self.app = app
        self.hosts = None if "*" in config.allowed_hosts else {h.lower() for h in config.allowed_hosts}
        self.max_body = config.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refused = self._refusal(headers)
        if refused is not None:
            await _answer(send, *refused)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:  # FastAPI passes an HTTPException raised while reading on
                    raise HTTPException(413, self._too_large()[2])
            return message

        await self.app(scope, counted, send)

    def _refusal(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        if self.hosts is not None:
            host = _hostname(headers.get("host", ""))
            if host not in self.hosts:
                return (
                    HOST_NOT_ALLOWED.status,
                    HOST_NOT_ALLOWED.code,
                    f"Host {host!r} is not one this server answers to; add it to EMBEDSWITCH_ALLOWED_HOSTS "
                    "(comma-separated, '*' for any)",
                )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> tuple[int, str, str]:
        return (
            PayloadTooLarge.status,
            PayloadTooLarge.code,
            f"the request body is over {self.max_body} bytes; send smaller batches or raise "
            "EMBEDSWITCH_MAX_BODY_BYTES",
        )


async def json_only(request: Request) -> None:
    """Refuse a POST that a cross-site form could have sent (a dependency of every API route)."""
    if request.method != "POST":
        return
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not any(
        name in request.headers for name in ("authorization", "x-requested-with")
    ):
        raise HTTPException(
            JSON_REQUIRED.status,
            "send POST bodies as JSON (Content-Type: application/json), even an empty {} for actions "
            "without one, or set the header X-Requested-With",
        )


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    body = ErrorBody(code=code, message=message).render()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
