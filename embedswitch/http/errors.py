"""Every error leaves as JSON ``ErrorBody`` (``{"code", "message", "context"?}``) with the status of
its exception class; the OpenAPI document (``openapi.py``) declares the same model."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from .._errors import EmbedswitchError, PayloadTooLarge, Unavailable
from .auth import api_routes
from .bodies import MAX_JSON_DEPTH

log = logging.getLogger("embedswitch")


@dataclass(frozen=True)
class HttpError:
    """An error the HTTP layer answers itself, outside the exception tree of ``_errors``."""

    status: int
    code: str


MALFORMED_JSON = HttpError(400, "malformed_json")
HOST_NOT_ALLOWED = HttpError(400, "host_not_allowed")
JSON_REQUIRED = HttpError(415, "json_required")
METHOD_NOT_ALLOWED = HttpError(405, "method_not_allowed")
NO_ROUTE = HttpError(404, "not_found")


class ErrorBody(BaseModel):
    """What every error answers, on every route."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Stable and machine-readable, e.g. collection_not_found")
    message: str = Field(description="What went wrong and how to fix it")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="The collection, version, record or limit the error is about; absent when none",
    )

    def render(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()


def error_response(
    status: int,
    code: str,
    message: str,
    context: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = ErrorBody(code=code, message=message, context=dict(context or {}))
    return Response(body.render(), status, headers, media_type="application/json")


def allowed_methods(request: Request) -> list[str]:
    """Every method some API route serves at the request's path."""
    methods: set[str] = set()
    for route in api_routes(request.app.routes):
        if route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(EmbedswitchError)
    async def _ours(request: Request, exc: EmbedswitchError) -> Response:
        if exc.status >= 500:  # a temporary 503 (backpressure, a remote model down) is no server error
            level = logging.WARNING if isinstance(exc, Unavailable) else logging.ERROR
            log.log(level, "%s %s failed: %s", request.method, request.url.path, exc.message)
        return error_response(exc.status, exc.code, exc.message, exc.context, exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        for error in errors:
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error", "unreadable")
                return error_response(
                    MALFORMED_JSON.status,
                    MALFORMED_JSON.code,
                    f"the request body is not valid JSON ({reason}); send one JSON object in UTF-8, "
                    f"nested at most {MAX_JSON_DEPTH} levels deep",
                )
        parts = []
        for err in errors[:5]:
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
        return error_response(422, "invalid_request", "; ".join(parts) + " (see /docs for the schema)")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        codes = {
            400: MALFORMED_JSON.code,  # Starlette's own: a body it could not parse
            404: NO_ROUTE.code,
            405: METHOD_NOT_ALLOWED.code,
            413: PayloadTooLarge.code,
            415: JSON_REQUIRED.code,
        }
        code = codes.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 400:
            message = f"the request body could not be read ({exc.detail}); send a JSON object in UTF-8"
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path; name them all
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
