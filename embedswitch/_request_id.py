"""The id of the HTTP request being served.

The HTTP layer starts each request with a new id (``begin``); its log lines show it, its response
carries it as ``X-Request-ID``, and a search or recommend answer returns it as ``request_id`` (the
id feedback names), so one id ties a log line, a response and an experiment's assignment together.
Outside a request (the embedded engine) every answer gets an id of its own.
"""

from __future__ import annotations

import os
from contextvars import ContextVar

_CURRENT: ContextVar[str | None] = ContextVar("embedswitch_request_id", default=None)


def _new() -> str:
    return os.urandom(16).hex()  # 128 random bits, as a uuid4's 122, in a quarter of its time


def begin() -> str:
    """A new id for the request starting in this context (each request runs in its own task)."""
    new = _new()
    _CURRENT.set(new)
    return new


def current() -> str | None:
    """The id of the request this code serves, or None outside a request."""
    return _CURRENT.get()


def request_id() -> str:
    """The id an answer carries: the current request's, or a new one outside a request."""
    return _CURRENT.get() or _new()
