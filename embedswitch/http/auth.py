"""API keys with roles, and the one table of the role every route needs.

A key is sent as ``Authorization: Bearer <key>``. The server keeps only each key's sha256 and
compares digests in constant time against every known key (no early exit). Roles are ordered:
``read`` (searches, recommendations, feedback and every GET) < ``write`` (also records,
interactions and vectors) < ``admin`` (everything: collections, versions, traffic, rollouts, train,
evaluate, quarantine retry and skip). A key may be limited to some collections; it can then only
call routes under them.

With no keys configured every request is allowed: the loopback default (``embedswitch serve``
refuses other addresses without keys unless told ``--insecure``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from .._errors import Forbidden, InvalidRequest, RateLimited, Unauthorized
from .settings import HttpConfig


class Role(enum.IntEnum):
    read = 1
    write = 2
    admin = 3


OPEN = None
"""The "role" of a route anyone may call."""

_C = "/v1/collections/{c}"
ROUTE_ROLES: dict[tuple[str, str], Role | None] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): Role.read,  # OPEN when metrics_need_key is off
    ("GET", "/v1/collections"): Role.read,
    ("POST", "/v1/collections"): Role.admin,
    ("GET", _C): Role.read,
    ("DELETE", _C): Role.admin,
    ("PUT", f"{_C}/records"): Role.write,
    ("GET", f"{_C}/records/{{id:path}}"): Role.read,
    ("DELETE", f"{_C}/records/{{id:path}}"): Role.write,
    ("POST", f"{_C}/scroll"): Role.read,
    ("POST", f"{_C}/get-records"): Role.read,
    ("POST", f"{_C}/delete-records"): Role.write,
    ("POST", f"{_C}/delete-where"): Role.write,
    ("POST", f"{_C}/interactions"): Role.write,
    ("POST", f"{_C}/search"): Role.read,
    ("POST", f"{_C}/search/batch"): Role.read,
    ("POST", f"{_C}/recommend"): Role.read,
    ("POST", f"{_C}/feedback"): Role.read,
    ("GET", f"{_C}/versions"): Role.read,
    ("POST", f"{_C}/versions"): Role.admin,
    ("GET", f"{_C}/versions/{{v}}"): Role.read,
    ("DELETE", f"{_C}/versions/{{v}}"): Role.admin,
    ("PUT", f"{_C}/versions/{{v}}/vectors"): Role.write,
    ("POST", f"{_C}/versions/{{v}}/vectors/commit"): Role.write,
    ("GET", f"{_C}/versions/{{v}}/quarantine"): Role.read,
    ("POST", f"{_C}/versions/{{v}}/quarantine/retry"): Role.admin,
    ("POST", f"{_C}/versions/{{v}}/quarantine/skip"): Role.admin,
    ("POST", f"{_C}/versions/{{v}}/promote"): Role.admin,
    ("POST", f"{_C}/versions/{{v}}/evaluate"): Role.admin,
    ("POST", f"{_C}/rollback"): Role.admin,
    ("GET", f"{_C}/traffic"): Role.read,
    ("PUT", f"{_C}/traffic"): Role.admin,
    ("POST", f"{_C}/train"): Role.admin,
    ("POST", f"{_C}/evaluate"): Role.admin,
    ("GET", f"{_C}/events"): Role.read,
    ("GET", f"{_C}/stats"): Role.read,
    ("GET", f"{_C}/experiment"): Role.read,
    ("POST", f"{_C}/experiment/reset"): Role.admin,
    ("GET", f"{_C}/rollouts"): Role.read,
    ("POST", f"{_C}/rollouts"): Role.admin,
    ("GET", f"{_C}/rollouts/{{id}}"): Role.read,
    ("POST", f"{_C}/rollouts/{{id}}/stop"): Role.admin,
}


def route_roles(app: FastAPI) -> dict[tuple[str, str], Role | None]:
    """The role of every API route of ``app``; raises if one has no entry in ``ROUTE_ROLES``, so a
    new route can't be added without deciding who may call it."""
    found: dict[tuple[str, str], Role | None] = {}
    for route in api_routes(app.routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            key = (method, route.path)
            if key not in ROUTE_ROLES:
                raise RuntimeError(
                    f"route {method} {route.path} has no role in embedswitch.http.auth.ROUTE_ROLES"
                )
            found[key] = ROUTE_ROLES[key]
    return found


def api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    """The API routes, inside included routers too; the schema and docs pages are not among them."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):  # FastAPI >= 0.165 keeps included routers whole
            yield from api_routes(route.original_router.routes)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "es_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    role: Role
    sha256: str
    collections: frozenset[str] | None = None  # None: every collection
    name: str = ""

    def may(self, needed: Role, collection: str | None) -> str | None:
        """None when this key may make a request needing ``needed`` on ``collection``, else why not."""
        if self.role < needed:
            return f"this key has role {self.role.name}; the request needs {needed.name}"
        if self.collections is not None:
            if collection is None:
                return "this key is limited to collections " + ", ".join(sorted(self.collections))
            if collection not in self.collections:
                return f"this key can't reach collection {collection!r}"
        return None


def _role(text: str, where: str) -> Role:
    try:
        return Role[text]
    except KeyError:
        raise InvalidRequest(f"{where}: unknown role {text!r}; use read, write or admin") from None


def parse_keys(text: str) -> list[ApiKey]:
    """``role[@collection+collection]:key`` entries, comma-separated (``EMBEDSWITCH_API_KEYS``)."""
    keys = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        scope, sep, key = entry.partition(":")
        if not sep or not key:
            raise InvalidRequest(f"API key entry {entry[:12]!r}...: write it as role:key, e.g. read:s3cret")
        role, _, collections = scope.partition("@")
        only = frozenset(collections.split("+")) if collections else None
        keys.append(ApiKey(_role(role, "EMBEDSWITCH_API_KEYS"), digest(key), only))
    return keys


def load_key_file(path: Path) -> list[ApiKey]:
    """``{"keys": [{"role", "sha256" (or "key"), "collections"?, "name"?}]}``."""
    try:
        entries = json.loads(path.read_text())["keys"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(f'API key file {path}: {exc}; it must be JSON {{"keys": [...]}}') from None
    keys = []
    for n, entry in enumerate(entries):
        where = f"API key file {path}, key {n}"
        if not isinstance(entry, dict) or ("sha256" in entry) == ("key" in entry):
            raise InvalidRequest(f'{where}: give exactly one of "sha256" or "key", and a "role"')
        sha = str(entry["sha256"]).lower() if "sha256" in entry else digest(str(entry["key"]))
        only = entry.get("collections")
        keys.append(
            ApiKey(
                _role(str(entry.get("role")), where),
                sha,
                frozenset(only) if only else None,
                entry.get("name", ""),
            )
        )
    return keys


class _Bucket:
    """A token bucket: ``rate`` requests per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until it may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Gate:
    """Who may call what, and how often: the check every API route runs first."""

    def __init__(self, config: HttpConfig, roles: dict[tuple[str, str], Role | None]) -> None:
        keys = parse_keys(config.api_keys.get_secret_value() if config.api_keys is not None else "")
        if config.api_keys_file is not None:
            keys += load_key_file(config.api_keys_file)
        self.keys = keys
        self.roles = dict(roles)
        if not config.metrics_need_key:
            self.roles[("GET", "/metrics")] = OPEN
        self._rate = config.rate_limit_per_s
        self._burst = config.rate_limit_burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, request: Request) -> None:
        route: Any = request.scope.get("route")
        needed = self.roles.get((request.method, route.path)) if route is not None else Role.admin
        if needed is OPEN:
            return
        key = self._key(request) if self.keys else None
        if key is not None:
            why = key.may(needed, request.path_params.get("c"))
            if why is not None:
                raise Forbidden(f"{why}; ask for a key with the right role", needed=needed.name)
        self._limit(key.sha256 if key is not None else (request.client.host if request.client else "-"))

    def _key(self, request: Request) -> ApiKey:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("this server needs an API key: send Authorization: Bearer <key>")
        presented = digest(token.strip())
        found = None
        for key in self.keys:  # every key compared: the time doesn't say which one matched
            if hmac.compare_digest(key.sha256, presented):
                found = key
        if found is None:
            raise Unauthorized("unknown API key; check EMBEDSWITCH_API_KEY or ask for a new key")
        return found

    def _limit(self, who: str) -> None:
        if self._rate is None:
            return
        with self._lock:
            bucket = self._buckets.get(who)
            if bucket is None:
                if len(self._buckets) > 10_000:  # bounded: forget idle clients
                    self._buckets.clear()
                bucket = self._buckets[who] = _Bucket(self._rate, self._burst)
            wait = bucket.take()
        if wait > 0:
            raise RateLimited(f"over {self._rate:g} requests/s for this key; retry after the delay", wait)
