"""The checks before routing, over real HTTP: Host, cross-site POSTs, body size, CORS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from _http import error, ok
from conftest import ServerThread

from embedswitch import Engine
from embedswitch.http.settings import HttpConfig


@pytest.fixture
def two_versions(engine: Engine) -> Engine:
    engine.create_collection("docs", {"name": "v1", "model": "hashing"})
    engine.add_version("docs", {"name": "v2", "model": {"type": "hashing", "seed": 2}})
    engine.wait_ready("docs", "v2", timeout_s=20)
    return engine


@pytest.fixture
def guarded(two_versions: Engine) -> Iterator[ServerThread]:
    with ServerThread(two_versions, HttpConfig(max_body_bytes=4096)) as running:
        yield running


def test_a_host_not_allowed_is_refused(guarded: ServerThread) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        refused = http.get("/v1/collections", headers={"Host": "evil.example:8000"})
        assert "EMBEDSWITCH_ALLOWED_HOSTS" in error(refused, 400, "host_not_allowed")["message"]
        ok(http.get("/v1/collections", headers={"Host": f"localhost:{guarded.port}"}))
        ok(http.get("/v1/collections"))  # 127.0.0.1


def test_any_host_when_told(two_versions: Engine) -> None:
    with ServerThread(two_versions, HttpConfig(allowed_hosts=["*"])) as server:
        ok(httpx.get(f"{server.url}/v1/collections", headers={"Host": "anything.example"}))


@pytest.mark.parametrize(
    "headers",
    [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}],
    ids=["no-body", "text-plain", "form"],
)
def test_cross_site_style_posts_change_nothing(guarded: ServerThread, headers: dict[str, str]) -> None:
    """What a page on another site can send (a form, or fetch in no-cors mode) is refused."""
    with httpx.Client(base_url=guarded.url) as http:
        before = ok(http.get("/v1/collections/docs/traffic"))
        refused = http.post(
            "/v1/collections/docs/versions/v2/promote", headers=headers, content=b"a=1" if headers else b""
        )
        error(refused, 415, "json_required")
        assert ok(http.get("/v1/collections/docs/traffic")) == before


def test_a_post_is_routed_and_its_key_checked_before_its_content_type(two_versions: Engine) -> None:
    """A POST without JSON to a path that takes none is 404 or 405, and one without a key is 401:
    the content type is checked once the request reached a route and passed its key."""
    with (
        ServerThread(two_versions, HttpConfig(api_keys="admin:k")) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        error(http.post("/healthz", content=b"a=1"), 405, "method_not_allowed")
        error(http.post("/v1/nothing", content=b"a=1"), 404, "not_found")
        error(http.post("/v1/collections/docs/rollback"), 401, "unauthorized")
        keyed = {"Authorization": "Bearer k", "Content-Type": "application/x-www-form-urlencoded"}
        refused = http.post("/v1/collections/docs/rollback", headers=keyed)  # a form can't send the key
        error(refused, 409, "nothing_to_roll_back")


def test_body_less_actions_work_as_json_or_with_the_header(guarded: ServerThread) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        assert ok(http.post("/v1/collections/docs/versions/v2/promote", json={}))["weights"] == {"v2": 100}
        rolled = http.post("/v1/collections/docs/rollback", headers={"X-Requested-With": "curl"})
        assert ok(rolled)["weights"] == {"v1": 100}


def test_a_body_over_the_limit_gets_413_and_changes_nothing(guarded: ServerThread) -> None:
    big = {"records": [{"id": f"r{i}", "text": "x" * 200} for i in range(40)]}  # about 9 kB
    with httpx.Client(base_url=guarded.url) as http:
        error(http.put("/v1/collections/docs/records", json=big), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
            body = httpx.Request("PUT", "/", json=big).content
            for start in range(0, len(body), 1000):
                yield body[start : start + 1000]

        streamed = http.put(
            "/v1/collections/docs/records", content=chunks(), headers={"Content-Type": "application/json"}
        )
        error(streamed, 413, "payload_too_large")
        assert ok(http.get("/v1/collections/docs"))["head_seq"] == 0
        ok(http.put("/v1/collections/docs/records", json={"records": big["records"][:5]}))


def test_cors_is_off_by_default_and_on_for_listed_origins(two_versions: Engine) -> None:
    preflight = {"Origin": "https://console.example", "Access-Control-Request-Method": "PUT"}
    with ServerThread(two_versions) as server:
        response = httpx.options(f"{server.url}/v1/collections/docs/traffic", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    with ServerThread(two_versions, HttpConfig(cors_origins=["https://console.example"])) as server:
        response = httpx.options(f"{server.url}/v1/collections/docs/traffic", headers=preflight)
        assert response.headers["access-control-allow-origin"] == "https://console.example"


def test_a_405_says_which_methods_are_allowed(guarded: ServerThread) -> None:
    response = httpx.patch(f"{guarded.url}/v1/collections/docs/traffic", json={})
    error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "PUT"}
