"""The OpenAPI document: every operation documents every error it can answer as ``ErrorBody``, a new
route is documented without anyone declaring it, and the probes and metrics say what they send."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _http import error, ok
from conftest import ServerThread
from fastapi import APIRouter

from embedswitch import Engine
from embedswitch._errors import Conflict, RecordNotFound
from embedswitch.http import create_app
from embedswitch.http.auth import OPEN, ROUTE_ROLES, Role
from embedswitch.http.openapi import raises
from embedswitch.http.routes import ROUTERS
from embedswitch.http.settings import HttpConfig

ERROR_REF = "#/components/schemas/ErrorBody"


def operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def error_codes(operation: dict[str, Any], status: int) -> list[str]:
    """The codes the operation documents for ``status``, after checking they come as ``ErrorBody``."""
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    ref, narrowed = schema["allOf"]
    assert ref == {"$ref": ERROR_REF}
    codes: list[str] = narrowed["properties"]["code"]["enum"]
    return codes


@pytest.fixture
def schema(engine: Engine) -> dict[str, Any]:
    return create_app(engine, close_engine=False).openapi()


def test_every_route_is_in_the_document_with_the_errors_its_role_and_inputs_imply(
    schema: dict[str, Any],
) -> None:
    found = operations(schema)
    assert {(m, p.replace("{id:path}", "{id}")) for m, p in ROUTE_ROLES} == set(found)
    for (method, path), operation in found.items():
        where = f"{method} {path}"
        role = ROUTE_ROLES[(method, path.replace("records/{id}", "records/{id:path}"))]
        expected = {"400", "413", "500"} | ({"401", "403", "429"} if role is not OPEN else set())
        expected |= {"415"} if method == "POST" else set()
        expected |= {"404"} if "{c}" in path else set()
        expected |= {"422"} if "requestBody" in operation else set()
        assert expected <= set(operation["responses"]), where
        assert ("security" in operation) == (role is not OPEN), where
        if "{v}" in path:
            assert "version_not_found" in error_codes(operation, 404), where


def test_every_error_is_an_error_body_with_its_codes(schema: dict[str, Any]) -> None:
    """FastAPI's own ``HTTPValidationError`` is gone; /readyz's 503 is its readiness report."""
    assert "HTTPValidationError" not in str(schema)
    for key, operation in operations(schema).items():
        for status in (s for s in operation["responses"] if int(s) >= 400):
            if key == ("GET", "/readyz") and status == "503":
                continue
            assert error_codes(operation, int(status)), (key, status)


def test_the_codes_are_derived_and_declared(schema: dict[str, Any]) -> None:
    found = operations(schema)
    search = found[("POST", "/v1/collections/{c}/search")]
    assert error_codes(search, 404) == ["collection_not_found", "version_not_found", "record_not_found"]
    assert error_codes(search, 503) == ["not_caught_up", "model_unavailable"]
    assert error_codes(search, 400) == ["host_not_allowed", "malformed_json"]
    assert error_codes(search, 401) == ["unauthorized"]
    assert search["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    health = found[("GET", "/healthz")]
    assert set(health["responses"]) == {"200", "400", "413", "500"}


def test_a_new_route_is_documented_by_its_role_and_a_new_path_parameter_needs_its_404(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route added to a router gets its errors without declaring them; one whose path names
    something new must say which 404 that is, or the app is not built."""
    router = APIRouter()

    @router.post("/v1/collections/{c}/things")
    @raises(Conflict)
    def things(c: str) -> dict[str, str]:
        return {"c": c}

    @router.get("/v1/collections/{c}/widgets/{w}")
    def widget(c: str, w: str) -> dict[str, str]:
        return {"w": w}

    monkeypatch.setitem(ROUTE_ROLES, ("POST", "/v1/collections/{c}/things"), Role.write)
    monkeypatch.setitem(ROUTE_ROLES, ("GET", "/v1/collections/{c}/widgets/{w}"), Role.read)
    monkeypatch.setattr("embedswitch.http.app.ROUTERS", [*ROUTERS, router])
    with pytest.raises(RuntimeError, match=r"path parameter \{w\}"):
        create_app(engine, close_engine=False)

    widget_404 = raises(RecordNotFound)(widget)
    assert widget_404 is widget
    found = operations(create_app(engine, close_engine=False).openapi())
    new = found[("POST", "/v1/collections/{c}/things")]
    assert error_codes(new, 409) == ["conflict"]
    assert error_codes(new, 415) == ["json_required"]
    assert error_codes(new, 401) == ["unauthorized"]
    assert error_codes(found[("GET", "/v1/collections/{c}/widgets/{w}")], 404) == [
        "collection_not_found",
        "record_not_found",
    ]


def test_metrics_are_text_and_the_probes_say_what_they_answer(schema: dict[str, Any]) -> None:
    found = operations(schema)
    assert set(found[("GET", "/metrics")]["responses"]["200"]["content"]) == {"text/plain"}
    ready = found[("GET", "/readyz")]["responses"]
    assert ready["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}
    assert ready["503"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Readiness"}
    health = found[("GET", "/healthz")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health == {"$ref": "#/components/schemas/Health"}
    assert schema["components"]["schemas"]["Health"]["properties"]["status"]["const"] == "ok"


def test_the_document_is_served_without_a_key(engine: Engine) -> None:
    with ServerThread(engine, HttpConfig(api_keys="admin:k")) as server:
        document = ok(httpx.get(f"{server.url}/openapi.json"))
        assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
        error(httpx.get(f"{server.url}/v1/collections"), 401, "unauthorized")
