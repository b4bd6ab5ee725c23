"""The one exception tree of embedswitch.

Every error carries an HTTP status, a stable machine-readable ``code`` and a message that says
how to fix the problem. The HTTP layer turns any of them into ``{"code", "message", "context"?}``
(``http/errors.py``).

    EmbedswitchError (500 internal)
    ├── InvalidRequest (422 invalid_request)
    │   ├── UnknownModel (422 unknown_model)
    │   │   └── ModelNotInstalled (422 model_not_installed)
    │   ├── UnknownKind (422 unknown_kind)
    │   ├── TextNotSupported (422 text_not_supported)
    │   └── InputRejected (422 input_rejected)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    │   ├── ModelNotAllowed (403 model_not_allowed)
    │   └── IndexNotAllowed (403 index_not_allowed)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── RateLimited (429 rate_limited)
    ├── NotFound (404 not_found)
    │   ├── CollectionNotFound (404 collection_not_found)
    │   ├── VersionNotFound (404 version_not_found)
    │   ├── RecordNotFound (404 record_not_found)
    │   ├── RequestNotFound (404 request_not_found)
    │   └── RolloutNotFound (404 rollout_not_found)
    ├── Conflict (409 conflict)
    │   ├── CollectionExists (409 collection_exists)
    │   ├── VersionExists (409 version_exists)
    │   ├── VersionNotReady (409 version_not_ready)
    │   ├── VersionHasTraffic (409 version_has_traffic)
    │   ├── LastVersion (409 last_version)
    │   ├── NothingToRollBack (409 nothing_to_roll_back)
    │   ├── NoLoggedQueries (409 no_logged_queries)
    │   └── RolloutInProgress (409 rollout_in_progress)
    ├── Unavailable (503 unavailable)
    │   ├── NotCaughtUp (503 not_caught_up)
    │   ├── Overloaded (503 overloaded)
    │   ├── Busy (503 busy)
    │   ├── ModelUnavailable (503 model_unavailable)
    │   └── LeaseLost (503 lease_lost)
    └── IndexMismatch (500 index_mismatch)
"""

from __future__ import annotations

import math
from typing import Any


class EmbedswitchError(Exception):
    """Root of every error embedswitch raises on purpose."""

    status: int = 500
    code: str = "internal"
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only; subclasses set their own

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}


class InvalidRequest(EmbedswitchError):
    status, code = 422, "invalid_request"


class UnknownModel(InvalidRequest):
    code = "unknown_model"


class ModelNotInstalled(UnknownModel):
    """The model needs an optional dependency this installation lacks; the message names the extra."""

    code = "model_not_installed"


class UnknownKind(InvalidRequest):
    code = "unknown_kind"


class TextNotSupported(InvalidRequest):
    code = "text_not_supported"


class InputRejected(InvalidRequest):
    """A model refuses to embed its input (a remote endpoint answered 400, 413 or 422 for it).

    A model raises it for the whole ``encode`` call; which text is to blame is found by embedding
    smaller batches (``quarantine.embed_rejecting``). For one text it means that text: a search
    gets the 422, a record of the change log is quarantined (kept with this message) for its
    version, and the rest of the stream goes on."""

    code = "input_rejected"


class Unauthorized(EmbedswitchError):
    """No API key, or one the server doesn't know."""

    status, code = 401, "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}  # noqa: RUF012


class Forbidden(EmbedswitchError):
    """A known key whose role (or collections) doesn't cover the request."""

    status, code = 403, "forbidden"


class ModelNotAllowed(Forbidden):
    """A model spec names what this server's settings keep specs from reaching: an environment
    variable outside ``model_key_envs``, a local path outside ``model_dirs`` or a URL outside
    ``model_urls`` (``EngineConfig``)."""

    code = "model_not_allowed"


class IndexNotAllowed(Forbidden):
    """An index spec names what this server's settings keep specs from reaching: an engine server
    outside ``index_urls`` or an environment variable outside ``index_key_envs`` (``EngineConfig``)."""

    code = "index_not_allowed"


class PayloadTooLarge(EmbedswitchError):
    status, code = 413, "payload_too_large"


class RateLimited(EmbedswitchError):
    """Too many requests for one key; ``Retry-After`` says when to try again."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after_s: float, **context: object) -> None:
        super().__init__(message, retry_after_s=round(retry_after_s, 3), **context)
        self.headers = _retry_after(retry_after_s)


class NotFound(EmbedswitchError):
    status, code = 404, "not_found"


class CollectionNotFound(NotFound):
    code = "collection_not_found"

    def __init__(self, collection: str) -> None:
        super().__init__(
            f"collection {collection!r} does not exist; create it with POST /v1/collections "
            "or list the existing ones with GET /v1/collections",
            collection=collection,
        )


class VersionNotFound(NotFound):
    code = "version_not_found"

    def __init__(self, collection: str, version: str, known: list[str] | None = None) -> None:
        hint = f"; known versions: {', '.join(known)}" if known else ""
        super().__init__(
            f"collection {collection!r} has no version {version!r}{hint}",
            collection=collection,
            version=version,
        )


class RecordNotFound(NotFound):
    code = "record_not_found"


class RequestNotFound(NotFound):
    """Feedback named a request id that the collection's experiment log does not hold."""

    code = "request_not_found"


class RolloutNotFound(NotFound):
    code = "rollout_not_found"


class Conflict(EmbedswitchError):
    status, code = 409, "conflict"


class CollectionExists(Conflict):
    code = "collection_exists"


class VersionExists(Conflict):
    code = "version_exists"


class VersionNotReady(Conflict):
    code = "version_not_ready"


class VersionHasTraffic(Conflict):
    code = "version_has_traffic"


class LastVersion(Conflict):
    code = "last_version"


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"


class NoLoggedQueries(Conflict):
    """A comparison on logged queries found none: the query log is off, or empty."""

    code = "no_logged_queries"


class RolloutInProgress(Conflict):
    """A collection runs one gated rollout at a time."""

    code = "rollout_in_progress"


class Unavailable(EmbedswitchError):
    status, code = 503, "unavailable"


class NotCaughtUp(Unavailable):
    code = "not_caught_up"


class Overloaded(Unavailable):
    """A write refused because a serving version's applier is too far behind; nothing was
    written. ``Retry-After`` says when to try again."""

    code = "overloaded"

    def __init__(self, message: str, retry_after_s: float, **context: object) -> None:
        super().__init__(message, retry_after_s=round(retry_after_s, 3), **context)
        self.headers = _retry_after(retry_after_s)


class Busy(Unavailable):
    """An expensive call (evaluate, train, a candidate evaluation) refused because as many run
    already as the server allows (``max_concurrent_heavy``); ``Retry-After`` says when to retry."""

    code = "busy"

    def __init__(self, message: str, retry_after_s: float, **context: object) -> None:
        super().__init__(message, retry_after_s=round(retry_after_s, 3), **context)
        self.headers = _retry_after(retry_after_s)


class ModelUnavailable(Unavailable):
    code = "model_unavailable"


class LeaseLost(Unavailable):
    """A worker's write refused because its process no longer holds the cluster-wide lease it was
    started under (another process took it over); nothing of that write was stored."""

    code = "lease_lost"


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class IndexMismatch(EmbedswitchError):
    """An index on disk was built by another model, dimension or version than the one opening it."""

    code = "index_mismatch"
