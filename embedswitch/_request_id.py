"""The id of the HTTP request being served.

The HTTP layer starts each request with a new id (``begin``); its log lines show it, its response
carries it as ``X-Request-ID``, and a search or recommend answer returns it as ``request_id`` (the
id feedback names), so one id ties a log line, a response and an experiment's assignment together.
Outside a request (the embedded engine) every answer gets an id of its own.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_CURRENT: ContextVar[str | None] = ContextVar("embedswitch_request_id", default=None)


def begin() -> str:
    """A new id for the request starting in this context (each request runs in its own task)."""
    new = uuid.uuid4().hex
    _CURRENT.set(new)
    return new


def current() -> str | None:
    """The id of the request this code serves, or None outside a request."""
    return _CURRENT.get()


def request_id() -> str:
    """The id an answer carries: the current request's, or a new one outside a request."""
    return _CURRENT.get() or uuid.uuid4().hex
