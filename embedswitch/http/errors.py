"""Every error leaves as JSON ``{"code", "message"}`` with the status of its exception class."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .._errors import EmbedswitchError, Unavailable
from .auth import api_routes
from .bodies import MAX_JSON_DEPTH

log = logging.getLogger("embedswitch")


def _json(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some API route serves at the request's path."""
    methods: set[str] = set()
    for route in api_routes(request.app.routes):
        if route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(EmbedswitchError)
    async def _ours(request: Request, exc: EmbedswitchError) -> JSONResponse:
        if exc.status >= 500:  # a temporary 503 (backpressure, a remote model down) is no server error
            level = logging.WARNING if isinstance(exc, Unavailable) else logging.ERROR
            log.log(level, "%s %s failed: %s", request.method, request.url.path, exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for error in errors:
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error", "unreadable")
                return _json(
                    400,
                    "malformed_json",
                    f"the request body is not valid JSON ({reason}); send one JSON object in UTF-8, "
                    f"nested at most {MAX_JSON_DEPTH} levels deep",
                )
        parts = []
        for err in errors[:5]:
            loc = [str(p) for p in err.get("loc", ()) if p != "body"]
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{'.'.join(loc) or 'body'}: {msg}")
        return _json(422, "invalid_request", "; ".join(parts) + " (see /docs for the schema)")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        code = codes.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}; see /docs for the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route of the path; name them all
            headers["Allow"] = ", ".join(allowed_methods(request))
        return _json(exc.status_code, code, message, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _json(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
