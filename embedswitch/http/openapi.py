"""The OpenAPI document, with every error each operation can answer, derived so that none goes
undocumented.

Each operation documents its errors as ``ErrorBody``, each status with the codes it can carry:

- every route: 400 ``host_not_allowed``, 413 ``payload_too_large`` (``guards.py``), 500 ``internal``;
- a ``POST``: 415 ``json_required``;
- a route that needs a key (``auth.ROUTE_ROLES``): 401 ``unauthorized``, 403 ``forbidden``,
  429 ``rate_limited``, and the bearer security scheme;
- a body: 400 ``malformed_json``; a body, a query parameter or a typed path parameter: 422
  ``invalid_request``;
- a path parameter: 404, ``collection_not_found`` for ``{c}``, ``version_not_found`` for ``{v}``;
  any other needs its ``NotFound`` declared with ``@raises``;
- what the endpoint's own work raises, declared next to the route with ``@raises(...)``.

A status the route documents itself (``responses=``, as ``/readyz`` does for its 503) is left as it is.
``install`` checks every route when the app is built: one with an undeclared path parameter fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from .._errors import (
    CollectionNotFound,
    EmbedswitchError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    VersionNotFound,
)
from .auth import OPEN, Role, api_routes
from .errors import HOST_NOT_ALLOWED, JSON_REQUIRED, MALFORMED_JSON, ErrorBody, HttpError

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


Documented = type[EmbedswitchError] | HttpError
"""An error as the document names it: an exception class of ``_errors``, or one the HTTP layer answers."""


PATH_NOT_FOUND: dict[str, type[NotFound]] = {"c": CollectionNotFound, "v": VersionNotFound}
"""The 404 of a path parameter that names the same thing on every route."""

HEADERS = {
    Unauthorized.status: {"WWW-Authenticate": "the scheme to send the key with: Bearer"},
    RateLimited.status: {"Retry-After": "seconds to wait before the next request"},
}
SECURITY_SCHEME = "apiKey"
_ERROR_REF = f"#/components/schemas/{ErrorBody.__name__}"
_declared: dict[Callable[..., Any], tuple[type[EmbedswitchError], ...]] = {}


def raises(*errors: type[EmbedswitchError]) -> Callable[[Endpoint], Endpoint]:
    """Declare the errors an endpoint's own work can answer, beyond those every route of its kind
    gets (see the module docstring); put it under the route decorator."""

    def mark(endpoint: Endpoint) -> Endpoint:
        _declared[endpoint] = (*_declared.get(endpoint, ()), *errors)  # several @raises add up
        return endpoint

    return mark


def install(app: FastAPI, roles: dict[tuple[str, str], Role | None]) -> None:
    """Serve ``app``'s document with every operation's errors; ``roles`` as ``auth.route_roles``."""
    routes = list(api_routes(app.routes))
    for route in routes:
        _check_path_parameters(route)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _document_errors(schema, routes, roles)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _check_path_parameters(route: APIRoute) -> None:
    declared = _declared.get(route.endpoint, ())
    for name in path_parameters(route.path):
        if name not in PATH_NOT_FOUND and not any(issubclass(e, NotFound) for e in declared):
            raise RuntimeError(
                f"route {route.path}: declare the 404 of path parameter {{{name}}} with "
                "@raises(...) from embedswitch.http.openapi"
            )


def path_parameters(path: str) -> list[str]:
    return re.findall(r"{(\w+)", path)


def _document_errors(
    schema: dict[str, Any], routes: Iterable[APIRoute], roles: dict[tuple[str, str], Role | None]
) -> None:
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        models.pop(fastapi_own, None)
    models[ErrorBody.__name__] = ErrorBody.model_json_schema()
    components["securitySchemes"] = {
        SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "an API key (see docs/api.md)"}
    }
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation = schema["paths"][route.path_format][method.lower()]
            role = roles[(method, route.path)]
            if role is not OPEN:
                operation["security"] = [{SECURITY_SCHEME: []}]
            errors = operation_errors(method, route.path, operation, role, _declared.get(route.endpoint, ()))
            _add_responses(operation, errors, route.responses)


def operation_errors(
    method: str,
    path: str,
    operation: dict[str, Any],
    role: Role | None,
    declared: Iterable[Documented],
) -> dict[int, list[str]]:
    """Every status the operation can answer with an error, and the codes of each."""
    found: list[Documented] = [HOST_NOT_ALLOWED, PayloadTooLarge, EmbedswitchError]
    if method == "POST":
        found.append(JSON_REQUIRED)
    if role is not OPEN:
        found += [Unauthorized, Forbidden, RateLimited]
    has_body = "requestBody" in operation
    if has_body:
        found.append(MALFORMED_JSON)
    if has_body or any(_validated(p) for p in operation.get("parameters", [])):
        found.append(InvalidRequest)
    found += [PATH_NOT_FOUND[name] for name in path_parameters(path) if name in PATH_NOT_FOUND]
    found += declared
    by_status: dict[int, list[str]] = {}
    for error in found:
        codes = by_status.setdefault(error.status, [])
        if error.code not in codes:
            codes.append(error.code)
    return dict(sorted(by_status.items()))


def _validated(parameter: dict[str, Any]) -> bool:
    """Whether FastAPI or the engine can refuse the parameter's value: a query parameter, or a path
    parameter that isn't any string."""
    return parameter["in"] != "path" or parameter.get("schema", {}).get("type") != "string"


def _add_responses(
    operation: dict[str, Any], errors: dict[int, list[str]], own: dict[int | str, Any]
) -> None:
    responses = operation["responses"]
    if 422 not in own and "422" not in own:
        responses.pop("422", None)  # FastAPI's own validation error, which this API doesn't answer
    for status, codes in errors.items():
        if status in own or str(status) in own:
            continue
        responses[str(status)] = error_response(status, codes)
    operation["responses"] = dict(sorted(responses.items()))


def error_response(status: int, codes: list[str]) -> dict[str, Any]:
    """An OpenAPI response: ``ErrorBody`` with ``code`` one of ``codes``."""
    schema = {"allOf": [{"$ref": _ERROR_REF}, {"properties": {"code": {"enum": codes}}}]}
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{code}`" for code in codes),
        "content": {"application/json": {"schema": schema}},
    }
    if status in HEADERS:
        response["headers"] = {
            name: {"description": what, "required": True, "schema": {"type": "string"}}
            for name, what in HEADERS[status].items()
        }
    return response
