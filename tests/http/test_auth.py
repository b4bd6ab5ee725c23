"""API keys and roles over real HTTP: the role matrix of every route, scoped keys, key files, rate limits."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _http import error, ok
from conftest import ServerThread

from embedswitch import Client, Engine, Forbidden, Unauthorized
from embedswitch._errors import InvalidRequest
from embedswitch.http import create_app
from embedswitch.http.auth import ROUTE_ROLES, Role, digest, load_key_file, parse_keys, route_roles
from embedswitch.http.settings import HttpConfig

KEYS = {"read": "k-read", "write": "k-write", "admin": "k-admin"}
CONFIG = HttpConfig(api_keys=",".join(f"{role}:{key}" for role, key in KEYS.items()) + ",write@docs:k-docs")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(engine: Engine) -> Iterator[ServerThread]:
    engine.create_collection("docs", {"name": "v1", "model": "hashing"})
    engine.create_collection("other", {"name": "v1", "model": "hashing"})
    with ServerThread(engine, CONFIG) as running:
        yield running


def _concrete(path: str) -> str:
    values = {"c": "docs", "v": "v1", "id": "1", "id:path": "r1"}
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


def test_every_route_has_a_role_and_a_new_one_without_is_refused(engine: Engine) -> None:
    app = create_app(engine, close_engine=False)
    assert set(route_roles(app)) == set(ROUTE_ROLES)

    @app.get("/v1/forgotten")
    def forgotten() -> None: ...

    with pytest.raises(RuntimeError, match="GET /v1/forgotten has no role"):
        route_roles(app)


def test_role_matrix_every_route_by_every_key(keyed: ServerThread) -> None:
    """Each route × no key, a wrong key, read, write, admin: 401 without a valid key, 403 below the
    route's role, and neither at or above it (the request may still fail for its own reasons)."""
    rank = {"read": Role.read, "write": Role.write, "admin": Role.admin}
    # Destructive routes last, so the others run against a collection that still exists.
    order = sorted(ROUTE_ROLES.items(), key=lambda item: item[0][0] == "DELETE")
    with httpx.Client(base_url=keyed.url, timeout=30) as http:
        for (method, path), needed in order:
            url = _concrete(path)
            body = {} if method in ("POST", "PUT") else None
            for who, headers in [
                ("none", {}),
                ("wrong", bearer("nope")),
                *((r, bearer(k)) for r, k in KEYS.items()),
            ]:
                response = http.request(method, url, json=body, headers=headers)
                where = f"{method} {url} as {who}: {response.status_code} {response.text[:120]}"
                if needed is None:
                    assert response.status_code not in (401, 403), where
                elif who in ("none", "wrong"):
                    assert response.status_code == 401, where
                    assert response.headers["www-authenticate"] == "Bearer"
                    assert response.json()["code"] == "unauthorized"
                elif rank[who] < needed:
                    assert response.status_code == 403, where
                    assert (
                        response.json()["code"] == "forbidden" and needed.name in response.json()["message"]
                    )
                else:
                    assert response.status_code not in (401, 403), where


def test_a_key_limited_to_a_collection(keyed: ServerThread) -> None:
    with httpx.Client(base_url=keyed.url, headers=bearer("k-docs")) as http:
        records = {"records": [{"id": "a", "text": "cats"}]}
        assert ok(http.put("/v1/collections/docs/records", json=records))["seq"] >= 1
        error(http.put("/v1/collections/other/records", json=records), 403, "forbidden")
        error(http.get("/v1/collections"), 403, "forbidden")
        error(
            http.post("/v1/collections/docs/versions", json={"name": "v2", "model": "hashing"}),
            403,
            "forbidden",
        )
    assert keyed.engine.store.count_records("other") == {}  # the refused write changed nothing


def test_client_sends_its_key_from_the_environment(
    keyed: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(keyed.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.list_collections()
    monkeypatch.setenv("EMBEDSWITCH_API_KEY", "k-read")
    with Client(keyed.url) as reader:
        assert [c.name for c in reader.list_collections()] == ["docs", "other"]
        with pytest.raises(Forbidden):
            reader.promote("docs", "v1")
    with Client(keyed.url, api_key="wrong", headers={"Authorization": "Bearer k-admin"}) as proxied:
        assert proxied.promote("docs", "v1").weights == {"v1": 100}  # extra headers win


def test_keys_from_a_file_are_kept_as_hashes(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps({"keys": [{"role": "admin", "sha256": digest("s3cret")}, {"role": "read", "key": "r"}]})
    )
    keys = load_key_file(path)
    assert [k.role for k in keys] == [Role.admin, Role.read]
    assert all("s3cret" not in repr(k) and k.sha256 != "r" for k in keys)
    with ServerThread(engine, HttpConfig(api_keys_file=path)) as server:
        ok(
            httpx.post(
                f"{server.url}/v1/collections",
                json={"name": "c", "version": {"name": "v1", "model": "hashing"}},
                headers=bearer("s3cret"),
            ),
            201,
        )
        error(httpx.delete(f"{server.url}/v1/collections/c", headers=bearer("r")), 403, "forbidden")


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("reader:k", "unknown role 'reader'"),
        ("read", "write it as role:key"),
        ("read:", "write it as role:key"),
    ],
)
def test_malformed_key_entries_name_the_fix(text: str, fix: str) -> None:
    with pytest.raises(InvalidRequest, match=fix):
        parse_keys(text)


def test_bad_key_files_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    for content, fix in [
        ("[", "must be JSON"),
        ('{"keys": [{"role": "read"}]}', 'exactly one of "sha256" or "key"'),
    ]:
        path.write_text(content)
        with pytest.raises(InvalidRequest, match=fix):
            load_key_file(path)


def test_metrics_need_a_key_unless_opened(engine: Engine) -> None:
    for need, status in ((True, 401), (False, 200)):
        config = CONFIG.model_copy(update={"metrics_need_key": need})
        with ServerThread(engine, config) as server:
            assert httpx.get(f"{server.url}/metrics").status_code == status
            assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_burst_over_the_rate_limit_gets_429_with_retry_after(engine: Engine) -> None:
    config = CONFIG.model_copy(update={"rate_limit_per_s": 0.01, "rate_limit_burst": 3})
    with ServerThread(engine, config) as server, httpx.Client(base_url=server.url) as http:
        codes = [http.get("/v1/collections", headers=bearer("k-read")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = http.get("/v1/collections", headers=bearer("k-read"))
        error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert http.get("/v1/collections", headers=bearer("k-admin")).status_code == 200  # per key
