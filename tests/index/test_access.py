"""Index specs reach only the engine servers and key variables the settings allow, and the key a
spec names reaches its server without ever being stored or shown.

The keys are checked on the wire, with the real clients: qdrant-client against ``_remote.Recorder``
(a real HTTP server that records every request), pymilvus against a real gRPC server that records
every call's metadata. Neither is an engine, so the open fails after the first request; what it
sent is the point. Qdrant's local mode and milvus-lite take no key (a spec naming one without a
server is refused), so the embedded modes can't check a key themselves.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _http import error, ok
from _indexes import META, require_engine
from _remote import Recorder, serve
from conftest import ServerThread

from embedswitch import Engine, EngineConfig, IndexNotAllowed, InvalidRequest, Unavailable
from embedswitch.index import index_spec, open_index
from embedswitch.index.access import IndexAccess, engine_key
from embedswitch.index.registry import stored_kinds

SECRET = "engine-key-must-not-show-41d2"
VAR = "EMBEDSWITCH_KEY_ENGINE_TEST"


@pytest.fixture
def recorder() -> Iterator[tuple[str, Recorder]]:
    found = Recorder()
    with serve(found) as url:
        yield url, found


def qdrant(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "qdrant", "url": url, "timeout_s": 5.0, **fields}


def milvus(uri: str, **fields: Any) -> dict[str, Any]:
    return {"type": "milvus", "uri": uri, "timeout_s": 5.0, **fields}


# -- the checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [qdrant("http://evil.example:6333"), milvus("http://evil.example:19530")])
def test_a_server_outside_the_allowlist_is_refused_naming_the_setting(spec: dict[str, Any]) -> None:
    access = IndexAccess(urls=("http://qdrant:6333", "http://milvus:19530"))
    with pytest.raises(IndexNotAllowed, match="EMBEDSWITCH_INDEX_URLS") as err:
        access.check(index_spec(spec))
    assert err.value.status == 403 and err.value.code == "index_not_allowed"
    IndexAccess().check(index_spec(spec))  # no allowlist: any server
    IndexAccess(urls=("http://evil.example:6333/", "http://evil.example:19530")).check(index_spec(spec))


@pytest.mark.parametrize("url", ["http://qdrant:6334", "https://qdrant:6333", "http://qdrant.evil:6333"])
def test_only_the_same_scheme_host_and_port_is_under_a_prefix(url: str) -> None:
    with pytest.raises(IndexNotAllowed):
        IndexAccess(urls=("http://qdrant:6333",)).check(index_spec(qdrant(url)))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (qdrant("http://q:6333", api_key_env="HOME"), "api_key_env"),
        (milvus("http://m:1", token_env="HOME"), "token_env"),
    ],
)
def test_a_key_variable_outside_the_allowlist_is_refused(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(IndexNotAllowed, match="EMBEDSWITCH_INDEX_KEY_ENVS") as err:
        IndexAccess().check(index_spec(spec))
    assert f"{field} 'HOME'" in str(err.value)
    IndexAccess(key_envs=("HOME",)).check(index_spec(spec))


def test_an_unset_key_variable_is_a_4xx_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    spec = index_spec(qdrant("http://q:6333", api_key_env=VAR))
    with pytest.raises(InvalidRequest, match=f"'{VAR}'.*not set") as err:
        IndexAccess().check(spec)
    assert err.value.status == 422
    monkeypatch.setenv(VAR, SECRET)
    IndexAccess().check(spec)
    assert engine_key(spec) == SECRET


@pytest.mark.parametrize(("kind", "field"), [("qdrant", "api_key_env"), ("milvus", "token_env")])
def test_a_key_without_a_server_is_refused(kind: str, field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} names the {kind} server's key"):
        index_spec({"type": kind, field: VAR})


def test_the_settings_build_the_allowlists() -> None:
    access = EngineConfig(index_urls=["http://qdrant:6333"], index_key_envs=["QDRANT_KEY"]).index_access()
    assert access == IndexAccess(("QDRANT_KEY",), ("http://qdrant:6333",))
    assert EngineConfig().index_access() == IndexAccess()
    with pytest.raises(ValueError):
        EngineConfig(index_urls=["qdrant:6333"])
    with pytest.raises(ValueError):
        EngineConfig(index_key_envs=["not a name"])


# -- the keys on the wire ------------------------------------------------------------------


def test_the_qdrant_key_reaches_the_server_as_its_api_key_header(
    recorder: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_engine("qdrant")
    url, seen = recorder
    monkeypatch.setenv(VAR, SECRET)
    spec = index_spec(qdrant(url, api_key_env=VAR))
    with pytest.warns(UserWarning, match="insecure"), pytest.raises(Unavailable) as err:
        stored_kinds(spec, tmp_path, None, "docs", "v1")
    assert [s.headers.get("api-key") for s in seen.seen] == [SECRET]
    assert SECRET not in str(err.value) and SECRET not in json.dumps(spec.model_dump())
    seen.seen.clear()
    monkeypatch.delenv(VAR)
    with pytest.raises(InvalidRequest, match="not set"):
        open_index(spec, tmp_path / "idx", META)
    assert seen.seen == []


class _Calls:
    """A real gRPC server's handler that records each call's method and metadata and implements
    nothing (every call is answered UNIMPLEMENTED)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def service(self, details: Any) -> None:
        self.seen.append((details.method, dict(details.invocation_metadata)))


def test_the_milvus_token_reaches_the_server_as_its_authorization(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_engine("milvus")
    import grpc

    calls = _Calls()
    handler = type("Handler", (grpc.GenericRpcHandler,), {"service": lambda self, d: calls.service(d)})()
    server = grpc.server(ThreadPoolExecutor(2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv(VAR, f"root:{SECRET}")
        spec = index_spec(milvus(f"http://127.0.0.1:{port}", token_env=VAR))
        with pytest.raises(Unavailable, match="Milvus failed") as err:
            open_index(spec, tmp_path / "idx", META)
        assert calls.seen, "the client sent nothing"
        expected = base64.b64encode(f"root:{SECRET}".encode()).decode()
        assert {metadata.get("authorization") for _, metadata in calls.seen} == {expected}
        assert SECRET not in str(err.value)
    finally:
        server.stop(None)


# -- through the engine --------------------------------------------------------------------


def test_a_refused_index_spec_stores_nothing_and_contacts_nothing(
    recorder: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, seen = recorder
    monkeypatch.setenv("OTHER_SECRET", SECRET)
    config = EngineConfig(index_urls=["http://qdrant.internal:6333"])
    refused = [
        qdrant(url),
        qdrant("http://qdrant.internal:6333", api_key_env="OTHER_SECRET"),
        milvus(url),
    ]
    with Engine.open(tmp_path / "data", config) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        for index in refused:
            with pytest.raises(IndexNotAllowed) as err:
                engine.add_version("c", {"name": "v2", "model": "hashing", "index": index})
            assert SECRET not in str(err.value)
            with pytest.raises(IndexNotAllowed):
                engine.create_collection("d", {"name": "v1", "model": "hashing", "index": index})
        assert [v.name for v in engine.describe("c").versions] == ["v1"]
        assert [c.name for c in engine.list_collections()] == ["c"]
    assert seen.seen == []


def test_over_http_a_refused_index_spec_is_403_index_not_allowed(
    recorder: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The key variable is named in the answer, its value never; an unset one is 422."""
    url, seen = recorder
    monkeypatch.setenv("OTHER_SECRET", SECRET)
    monkeypatch.delenv(VAR, raising=False)
    config = EngineConfig(index_urls=["http://qdrant.internal:6333"], checkpoint_interval_s=0.2)
    with (
        Engine.open(tmp_path / "data", config) as engine,
        ServerThread(engine) as running,
        httpx.Client(base_url=running.url, timeout=60) as h,
    ):
        ok(h.post("/v1/collections", json={"name": "c", "version": {"name": "v1", "model": "hashing"}}), 201)
        for index in (qdrant(url), qdrant("http://qdrant.internal:6333", api_key_env="OTHER_SECRET")):
            body = error(
                h.post("/v1/collections/c/versions", json={"name": "v2", "model": "hashing", "index": index}),
                403,
                "index_not_allowed",
            )
            assert SECRET not in json.dumps(body)
        unset = qdrant("http://qdrant.internal:6333", api_key_env=VAR)
        body = error(
            h.post("/v1/collections/c/versions", json={"name": "v2", "model": "hashing", "index": unset}),
            422,
            "invalid_request",
        )
        assert VAR in body["message"]
        assert [v["name"] for v in ok(h.get("/v1/collections/c"))["versions"]] == ["v1"]
    assert seen.seen == []
