"""Raw-HTTP helpers shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The error body, after checking its status, its stable ``code``, a message and no other keys
    than ``code``, ``message`` and ``context``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"], body
    assert set(body) <= {"code", "message", "context"}, body
    return body
