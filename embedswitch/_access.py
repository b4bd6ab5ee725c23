"""The checks that model specs (``models/access.py``) and index specs (``index/access.py``) share:
which environment variables a spec may name, and whether a URL lies under an allowed prefix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

KEY_ENV_PREFIX = "EMBEDSWITCH_KEY_"
"""Variables named with this prefix hold keys for model endpoints and engine servers; specs may
read them by default."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def name_allowed(name: str, patterns: Iterable[str]) -> bool:
    """Whether the variable ``name`` is one of ``patterns``: exact names, or prefixes ending in ``*``."""
    return any(
        name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern for pattern in patterns
    )


def url_under(url: str, prefix: str) -> bool:
    """Whether ``url`` is ``prefix`` or below it: same scheme, host and port (default ports
    filled in), and a path equal to the prefix's or under it at a ``/``. URLs are read by httpx,
    the client that sends them, so both sides agree on what the host is; a path with a ``.`` or
    ``..`` segment left after httpx's normalisation (percent-encoded dots) is never under."""
    import httpx

    try:
        target, allowed = httpx.URL(url), httpx.URL(prefix)
    except httpx.InvalidURL:
        return False
    if (target.scheme, target.host, _port(target)) != (allowed.scheme, allowed.host, _port(allowed)):
        return False
    if {".", ".."} & set(target.path.split("/")):
        return False
    base = allowed.path.rstrip("/")
    return target.path == base or target.path.startswith(f"{base}/")


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)
