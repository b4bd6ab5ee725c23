"""How the server logs: one line per request, with its id, in plain text or JSON.

``RequestLog`` (a pure ASGI middleware, outermost) starts each request with a new id
(``_request_id.py``), returns it as ``X-Request-ID`` and logs one line on ``embedswitch.http``
when the request ends: method, path, status, duration and client (at INFO; the probes
``/healthz``, ``/readyz`` and ``/metrics`` at DEBUG). ``configure_logging`` sends every logger,
uvicorn's included, to stderr in one format, each line carrying the id of the request it was logged
in (``-`` in plain text, null in JSON, outside one).
"""

from __future__ import annotations

import logging
import time
from typing import TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import _request_id

log = logging.getLogger("embedswitch.http")

PROBES = frozenset({"/healthz", "/readyz", "/metrics"})
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
QUIET_LOGGERS = ("httpx", "httpcore")
"""Libraries that log every outgoing call (a remote model's) at INFO: shown at DEBUG only."""


class RequestLog:
    """Gives each request its id and logs one line when it ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Each request runs in its own task, so the id set here ends with it; it is not reset, so
        # that the handler of unexpected errors (outside this middleware) still logs it.
        header = (b"x-request-id", _request_id.begin().encode())
        status = 500  # unless a response starts: an exception escaped every handler
        start = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _log_request(scope, status, (time.perf_counter() - start) * 1000)


def _log_request(scope: Scope, status: int, elapsed_ms: float) -> None:
    path = scope["path"]
    client = scope.get("client")
    log.log(
        logging.DEBUG if path in PROBES else logging.INFO,
        "%s %s %d %.1f ms",
        scope["method"],
        path,
        status,
        elapsed_ms,
        extra={
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": round(elapsed_ms, 3),
            "client": client[0] if client else None,
        },
    )


class _WithRequestId(logging.Filter):
    """Adds ``request_id`` to every record: the request it was logged in, or ``missing``."""

    def __init__(self, missing: str | None) -> None:
        super().__init__()
        self.missing = missing

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.current() or self.missing
        return True


def configure_logging(log_format: str, level: str) -> None:
    """Every log line (uvicorn's too) to stderr through ``log_handler``, from ``level`` up."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(log_format)]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def log_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (stderr) ``plain`` lines, or one ``json`` object per line
    with the fields time, level, logger, message, request_id and whatever the line carries (a
    request's method, path, status and duration_ms; an event's collection, version and detail)."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                JSON_FIELDS,
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",  # ISO 8601, UTC
                reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's ANSI-colored copy
            )
        )
        handler.addFilter(_WithRequestId(None))
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
        handler.addFilter(_WithRequestId("-"))
    return handler
