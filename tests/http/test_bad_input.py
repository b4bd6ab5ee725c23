"""Bad requests over real HTTP: each gets the right 4xx, a JSON ``{code, message[, context]}`` body
whose message names the problem, and leaves the collection exactly as it was."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from _http import ok
from conftest import FAST, ServerThread

from embedswitch import Engine, EngineConfig
from embedswitch.http.bodies import MAX_JSON_DEPTH, JsonRoute
from embedswitch.http.routes import ROUTERS
from embedswitch.specs import MAX_BATCH, MAX_FIELDS_BYTES, MAX_ID_CHARS, MAX_K, MAX_TEXT_CHARS

C = "/v1/collections/docs"
VEC = "/v1/collections/vec"
GOOD_RECORD = {"id": "good", "text": "a perfectly fine text"}
V1 = {"name": "v1", "model": "hashing"}

DOCS = [{"id": f"d{i}", "text": f"document {i} about cats and dogs", "fields": {"n": i}} for i in range(10)]
FAQS = [{"id": f"f{i}", "kind": "faq", "text": f"question {i} about cats"} for i in range(2)]


@contextmanager
def serving(data: Path, config: EngineConfig) -> Iterator[httpx.Client]:
    with (
        Engine.open(data, config) as engine,
        ServerThread(engine) as running,
        httpx.Client(base_url=running.url, timeout=60) as h,
    ):
        yield h


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the module: ``docs`` (v1, records of two kinds) and ``vec`` (v1, and v2 waiting
    for precomputed vectors)."""
    with serving(tmp_path_factory.mktemp("bad") / "data", FAST) as h:
        assert h.post("/v1/collections", json={"name": "docs", "version": V1}).status_code == 201
        ack = h.put(f"{C}/records", json={"records": DOCS + FAQS}).json()
        assert h.post(f"{C}/search", json={"text": "cats", "min_seq": ack["seq"]}).status_code == 200
        small = {"type": "hashing", "dim": 8}
        assert h.post(
            "/v1/collections", json={"name": "vec", "version": {"name": "v1", "model": small}}
        ).is_success
        assert h.put(f"{VEC}/records", json={"records": DOCS[:3]}).is_success
        v2 = {"name": "v2", "model": {**small, "seed": 2}, "source": "vectors"}
        assert h.post(f"{VEC}/versions", json=v2).status_code == 202
        yield h


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A server whose collection ``docs`` has version v2 stuck building (backfill capped at 1 record/s)."""
    config = EngineConfig(backfill_max_rate=1.0, checkpoint_interval_s=0.2, maintenance_interval_s=0.5)
    with serving(tmp_path_factory.mktemp("slow") / "data", config) as h:
        assert h.post("/v1/collections", json={"name": "docs", "version": V1}).status_code == 201
        records = [{"id": f"r{i}", "text": f"record {i} about cats"} for i in range(300)]
        assert h.put(f"{C}/records", json={"records": records}).status_code == 200
        v2 = {"name": "v2", "model": {"type": "hashing", "seed": 7}}
        assert h.post(f"{C}/versions", json=v2).status_code == 202
        deadline = time.monotonic() + 10
        while h.get(f"{C}/versions/v2").json()["progress"]["done"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        yield h


def snapshot(h: httpx.Client) -> dict[str, Any]:
    """What a bad request must not change: collections, counts, versions, traffic and search results."""
    state: dict[str, Any] = {}
    for info in h.get("/v1/collections").json():
        c = f"/v1/collections/{info['name']}"
        state[info["name"]] = {
            "head_seq": info["head_seq"],
            "records": info["records"],
            "records_by_kind": info["records_by_kind"],
            "versions": [
                (v["name"], v["fingerprint"], v["state"], v["weight"], v["records"]) for v in info["versions"]
            ],
            "traffic": h.get(f"{c}/traffic").json(),
            "events": len(h.get(f"{c}/events").json()),
        }
    found = h.post(f"{C}/search", json={"text": "cats and dogs", "k": 5}).json()
    state["search"] = (found["version"], [(hit["id"], hit["score"], hit["fields"]) for hit in found["hits"]])
    return state


def expect_error(
    h: httpx.Client,
    method: str,
    path: str,
    status: int,
    code: str,
    mentions: tuple[str, ...],
    body: Any = None,
    raw: bytes | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send one bad request; check status, error body and message, and that nothing changed."""
    before = snapshot(h)
    if raw is not None:
        response = h.request(method, path, content=raw, headers={"content-type": "application/json"})
    else:
        body = {} if body is None and method == "POST" else body  # body-less actions are sent as {}
        response = h.request(method, path, json=body, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert set(error) in ({"code", "message"}, {"code", "message", "context"}), error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    for word in mentions:
        assert word in error["message"], (word, error["message"])
    assert snapshot(h) == before
    return error


Case = tuple[str, str, Any, tuple[str, ...]]


def cases(*rows: Case) -> Any:
    return pytest.mark.parametrize(("method", "path", "body", "mentions"), rows)


# -- not found -----------------------------------------------------------------------------

N = "/v1/collections/nope"


@cases(
    ("GET", N, None, ("'nope'",)),
    ("DELETE", N, None, ("'nope'",)),
    ("PUT", f"{N}/records", {"records": [GOOD_RECORD]}, ("'nope'",)),
    ("GET", f"{N}/records/d1", None, ("'nope'",)),
    ("DELETE", f"{N}/records/d1", None, ("'nope'",)),
    ("POST", f"{N}/search", {"text": "cats"}, ("'nope'",)),
    ("POST", f"{N}/versions", {"name": "v2", "model": "hashing"}, ("'nope'",)),
    ("GET", f"{N}/versions", None, ("'nope'",)),
    ("GET", f"{N}/versions/v1", None, ("'nope'",)),
    ("POST", f"{N}/versions/v1/promote", None, ("'nope'",)),
    ("DELETE", f"{N}/versions/v1", None, ("'nope'",)),
    ("GET", f"{N}/traffic", None, ("'nope'",)),
    ("PUT", f"{N}/traffic", {"weights": {"v1": 100}}, ("'nope'",)),
    ("POST", f"{N}/rollback", None, ("'nope'",)),
    ("GET", f"{N}/events", None, ("'nope'",)),
    ("PUT", f"{N}/versions/v2/vectors", {"vectors": [{"id": "d0", "vector": [1.0] * 8}]}, ("'nope'",)),
    ("POST", f"{N}/versions/v2/vectors/commit", None, ("'nope'",)),
)
def test_unknown_collection_is_404_on_every_collection_route(
    http: httpx.Client, method: str, path: str, body: Any, mentions: tuple[str, ...]
) -> None:
    error = expect_error(http, method, path, 404, "collection_not_found", mentions, body)
    assert error["context"] == {"collection": "nope"}


@cases(
    ("POST", f"{C}/search", {"text": "cats", "version": "nope"}, ("'nope'", "v1")),
    ("GET", f"{C}/versions/nope", None, ("'nope'", "v1")),
    ("POST", f"{C}/versions/nope/promote", None, ("'nope'",)),
    ("DELETE", f"{C}/versions/nope", None, ("'nope'",)),
    ("PUT", f"{C}/traffic", {"weights": {"nope": 100}}, ("'nope'",)),
    ("PUT", f"{C}/traffic", {"weights": {"v1": 50, "nope": 50}}, ("'nope'",)),
    ("PUT", f"{C}/versions/nope/vectors", {"vectors": [{"id": "d0", "vector": [1.0] * 8}]}, ("'nope'",)),
    ("POST", f"{C}/versions/nope/vectors/commit", None, ("'nope'",)),
)
def test_unknown_version_is_404_version_not_found(
    http: httpx.Client, method: str, path: str, body: Any, mentions: tuple[str, ...]
) -> None:
    error = expect_error(http, method, path, 404, "version_not_found", mentions, body)
    assert error["context"] == {"collection": "docs", "version": "nope"}


def test_unknown_kind_on_search_is_422_unknown_kind(http: httpx.Client) -> None:
    body = {"text": "cats", "kind": "recipe"}
    expect_error(http, "POST", f"{C}/search", 422, "unknown_kind", ("'recipe'", "doc", "faq"), body)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{C}/records/missing"), ("DELETE", f"{C}/records/missing")],
)
def test_missing_record_is_404_record_not_found(http: httpx.Client, method: str, path: str) -> None:
    expect_error(http, method, path, 404, "record_not_found", ("'missing'",))


def test_record_of_another_kind_is_404_record_not_found(http: httpx.Client) -> None:
    params = {"kind": "faq"}
    before = snapshot(http)
    response = http.delete(f"{C}/records/d1", params=params)
    assert response.status_code == 404 and response.json()["code"] == "record_not_found"
    assert "'faq'" in response.json()["message"] and "'d1'" in response.json()["message"]
    assert snapshot(http) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v2/collections"), ("GET", f"{C}/nothing-here"), ("POST", "/search")],
)
def test_unknown_route_is_404_json(http: httpx.Client, method: str, path: str) -> None:
    expect_error(http, method, path, 404, "not_found", (path, "/docs"))


def test_wrong_method_is_405_json(http: httpx.Client) -> None:
    expect_error(http, "PATCH", "/v1/collections", 405, "method_not_allowed", ())


# -- models and names ----------------------------------------------------------------------

BAD_MODELS = [
    ("nope", ("'nope'", "hashing")),
    ("hashing:foo", ("'hashing:foo'",)),
    ({"type": "nope"}, ("'nope'",)),
    ({"type": "hashing", "dim": 3}, ("dim", "8")),
    ({"type": "hashing", "bogus": 1}, ("'bogus'",)),
    ({"dim": 64}, ("'type'",)),
    (5, ("int",)),
    (None, ("NoneType",)),
    ("{not json", ("JSON",)),
]


@pytest.mark.parametrize(("model", "mentions"), BAD_MODELS)
def test_bad_model_on_create_is_422_unknown_model(
    http: httpx.Client, model: Any, mentions: tuple[str, ...]
) -> None:
    body = {"name": "fresh", "version": {"name": "v1", "model": model}}
    expect_error(http, "POST", "/v1/collections", 422, "unknown_model", mentions, body)


@pytest.mark.parametrize(("model", "mentions"), BAD_MODELS)
def test_bad_model_on_add_version_is_422_unknown_model(
    http: httpx.Client, model: Any, mentions: tuple[str, ...]
) -> None:
    body = {"name": "v2", "model": model}
    expect_error(http, "POST", f"{C}/versions", 422, "unknown_model", mentions, body)


def test_duplicate_collection_is_409_collection_exists(http: httpx.Client) -> None:
    body = {"name": "docs", "version": {"name": "other", "model": {"type": "hashing", "seed": 3}}}
    error = expect_error(http, "POST", "/v1/collections", 409, "collection_exists", ("'docs'",), body)
    assert error["context"] == {"collection": "docs"}


def test_duplicate_version_is_409_version_exists(http: httpx.Client) -> None:
    body = {"name": "v1", "model": {"type": "hashing", "seed": 3}}
    error = expect_error(http, "POST", f"{C}/versions", 409, "version_exists", ("'v1'",), body)
    assert error["context"] == {"collection": "docs", "version": "v1"}


@pytest.mark.parametrize("name", ["a b", "-x", "x" * 70, "", "a/b", ".hidden", "ünïcode"])
def test_invalid_collection_name_is_422(http: httpx.Client, name: str) -> None:
    body = {"name": name, "version": V1}
    expect_error(http, "POST", "/v1/collections", 422, "invalid_request", ("name",), body)


@pytest.mark.parametrize("name", ["a b", "-x", "x" * 70, ""])
def test_invalid_version_name_is_422(http: httpx.Client, name: str) -> None:
    body = {"name": name, "model": "hashing"}
    expect_error(http, "POST", f"{C}/versions", 422, "invalid_request", ("name",), body)


# -- records -------------------------------------------------------------------------------

TOO_LONG_TEXT = "x" * (MAX_TEXT_CHARS + 1)


@pytest.mark.parametrize(
    ("record", "mentions"),
    [
        ({"id": "new", "text": ""}, ("records.0.text", "empty")),
        ({"id": "new", "text": " \n\t "}, ("records.0.text", "whitespace")),
        ({"id": "new", "text": TOO_LONG_TEXT}, ("records.0.text", str(MAX_TEXT_CHARS))),
        ({"id": "", "text": "fine"}, ("records.0.id", "at least 1")),
        ({"id": "   ", "text": "fine"}, ("records.0.id", "blank")),
        ({"id": "x" * (MAX_ID_CHARS + 1), "text": "fine"}, ("records.0.id", str(MAX_ID_CHARS))),
        ({"id": 7, "text": "fine"}, ("records.0.id", "string")),
        ({"id": ["a"], "text": "fine"}, ("records.0.id", "string")),
        ({"id": "new", "text": 7}, ("records.0.text", "string")),
        ({"id": "new", "text": None}, ("records.0", '"text"', '"vector"')),
        ({"id": "new", "text": "fine", "kind": 7}, ("records.0.kind", "string")),
        ({"id": "new", "text": "fine", "kind": "Bad Kind"}, ("records.0.kind", "pattern")),
        ({"id": "new", "text": "fine", "fields": ["a"]}, ("records.0.fields", "dictionary")),
        ({"id": "new", "text": "fine", "fields": "a"}, ("records.0.fields", "dictionary")),
        (
            {"id": "new", "text": "fine", "fields": {"blob": "x" * MAX_FIELDS_BYTES}},
            ("records.0.fields", str(MAX_FIELDS_BYTES)),
        ),
        ({"text": "fine"}, ("records.0.id", "required")),
        ({"id": "new"}, ("records.0", '"text"', '"vector"')),
        ({"id": "new", "text": "fine", "vector": "a"}, ("records.0.vector", "list")),
        ({"id": "new", "text": "fine", "vector": []}, ("records.0.vector", "at least 1")),
        ("not a record", ("records.0",)),
    ],
)
def test_bad_record_is_422_invalid_request(
    http: httpx.Client, record: Any, mentions: tuple[str, ...]
) -> None:
    body = {"records": [record]}
    expect_error(http, "PUT", f"{C}/records", 422, "invalid_request", mentions, body)
    assert http.get(f"{C}/records/new").status_code == 404


def test_one_bad_record_rejects_the_whole_batch(http: httpx.Client) -> None:
    good = [{"id": f"batch{i}", "text": f"good record {i}"} for i in range(5)]
    body = {"records": [*good, {"id": "batch5", "text": "   "}]}
    expect_error(http, "PUT", f"{C}/records", 422, "invalid_request", ("records.5.text",), body)
    for record in good:
        assert http.get(f"{C}/records/{record['id']}").json()["code"] == "record_not_found"


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"records": []}, ("records", "at least 1")),
        ({"records": [GOOD_RECORD] * (MAX_BATCH + 1)}, ("records", str(MAX_BATCH))),
        ({"records": "x"}, ("records", "list")),
        ({"records": GOOD_RECORD}, ("records", "list")),
        ({}, ("records", "required")),
        ([GOOD_RECORD], ("body",)),
        ({"records": [GOOD_RECORD], "upsert": True}, ("upsert",)),
    ],
)
def test_bad_batch_is_422_invalid_request(http: httpx.Client, body: Any, mentions: tuple[str, ...]) -> None:
    expect_error(http, "PUT", f"{C}/records", 422, "invalid_request", mentions, body)
    assert http.get(f"{C}/records/good").status_code == 404


def test_bad_kind_in_the_query_is_422(http: httpx.Client) -> None:
    expect_error(http, "GET", f"{C}/records/d1", 422, "invalid_request", ("kind",), params={"kind": "NO"})
    expect_error(http, "DELETE", f"{C}/records/d1", 422, "invalid_request", ("kind",), params={"kind": "NO"})


# -- search --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"text": ""}, ("text", "empty")),
        ({"text": "   \n"}, ("text", "whitespace")),
        ({"text": TOO_LONG_TEXT}, ("text", str(MAX_TEXT_CHARS))),
        ({"text": 7}, ("text", "string")),
        ({"text": ["cats"]}, ("text", "string")),
        ({}, ("text", "exactly one")),
        ({"text": "cats", "k": 0}, ("k", "greater than or equal to 1")),
        ({"text": "cats", "k": -3}, ("k", "greater than or equal to 1")),
        ({"text": "cats", "k": MAX_K + 1}, ("k", str(MAX_K))),
        ({"text": "cats", "k": "5"}, ("k", "integer")),
        ({"text": "cats", "k": 2.5}, ("k", "integer")),
        ({"text": "cats", "k": True}, ("k", "integer")),
        ({"text": "cats", "k": None}, ("k", "integer")),
        ({"text": "cats", "kind": 1}, ("kind", "string")),
        ({"text": "cats", "kind": "Doc"}, ("kind", "pattern")),
        ({"text": "cats", "version": 1}, ("version", "string")),
        ({"text": "cats", "version": "a b"}, ("version", "pattern")),
        ({"text": "cats", "key": 42}, ("key", "string")),
        ({"text": "cats", "key": ""}, ("key", "at least 1")),
        ({"text": "cats", "key": "k" * (MAX_ID_CHARS + 1)}, ("key", str(MAX_ID_CHARS))),
        ({"text": "cats", "min_seq": "3"}, ("min_seq", "integer")),
        ({"text": "cats", "min_seq": 1.5}, ("min_seq", "integer")),
        ({"text": "cats", "min_seq": -1}, ("min_seq", "greater than or equal to 0")),
        ({"text": "cats", "top_k": 3}, ("top_k", "Extra")),
        (["cats"], ("body",)),
    ],
)
def test_bad_search_is_422_invalid_request(http: httpx.Client, body: Any, mentions: tuple[str, ...]) -> None:
    expect_error(http, "POST", f"{C}/search", 422, "invalid_request", mentions, body)


def test_limits_are_inclusive(http: httpx.Client) -> None:
    found = http.post(
        f"{C}/search", json={"text": "y" * MAX_TEXT_CHARS, "k": MAX_K, "key": "k" * MAX_ID_CHARS}
    )
    assert found.status_code == 200, found.text
    assert http.post(f"{C}/search", json={"text": "cats", "k": 1, "min_seq": 0}).status_code == 200
    edge = "/v1/collections/" + "e" * 64
    assert http.post("/v1/collections", json={"name": "e" * 64, "version": V1}).status_code == 201
    try:
        long_id = "i" * MAX_ID_CHARS
        ack = http.put(f"{edge}/records", json={"records": [{"id": long_id, "text": "z" * MAX_TEXT_CHARS}]})
        assert ack.status_code == 200, ack.text
        assert len(http.get(f"{edge}/records/{long_id}").json()["text"]) == MAX_TEXT_CHARS
    finally:
        assert http.delete(edge).status_code == 200


# -- malformed JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/collections"),
        ("PUT", f"{C}/records"),
        ("POST", f"{C}/search"),
        ("POST", f"{C}/versions"),
        ("PUT", f"{C}/traffic"),
    ],
)
@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"text": "cats",}', b'{"records": [', b"\xff\xfe", b"\xe9\x1a\x80"]
)
def test_malformed_json_is_400(http: httpx.Client, method: str, path: str, raw: bytes) -> None:
    expect_error(http, method, path, 400, "malformed_json", ("JSON",), raw=raw)


def test_empty_body_is_422_naming_the_body(http: httpx.Client) -> None:
    expect_error(http, "POST", f"{C}/search", 422, "invalid_request", ("body",), raw=b"")


# -- traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "mentions"),
    [
        ({"weights": {"v1": 0}}, "invalid_request", ("positive",)),
        ({"weights": {}}, "invalid_request", ("weights", "at least 1")),
        ({"weights": {"v1": -1}}, "invalid_request", ("weights.v1", "greater than or equal to 0")),
        ({"weights": {"v1": "100"}}, "invalid_request", ("weights.v1", "integer")),
        ({"weights": {"v1": 12.5}}, "invalid_request", ("weights.v1", "integer")),
        ({"weights": {"v1": True}}, "invalid_request", ("weights.v1", "integer")),
        ({"weights": {"v1": None}}, "invalid_request", ("weights.v1", "integer")),
        ({"weights": {"v1": 1_000_001}}, "invalid_request", ("weights.v1", "1000000")),
        ({"weights": {"a b": 1}}, "invalid_request", ("weights", "pattern")),
        ({"weights": [["v1", 100]]}, "invalid_request", ("weights", "dictionary")),
        ({"weights": "v1"}, "invalid_request", ("weights", "dictionary")),
        ({}, "invalid_request", ("weights", "required")),
        ({"weights": {"v1": 100}, "reason": "x"}, "invalid_request", ("reason", "Extra")),
    ],
)
def test_bad_traffic_is_422(http: httpx.Client, body: Any, code: str, mentions: tuple[str, ...]) -> None:
    expect_error(http, "PUT", f"{C}/traffic", 422, code, mentions, body)


def test_traffic_to_a_building_version_is_409_version_not_ready(slow: httpx.Client) -> None:
    assert slow.get(f"{C}/versions/v2").json()["state"] == "building"
    for method, path, body in [
        ("PUT", f"{C}/traffic", {"weights": {"v1": 90, "v2": 10}}),
        ("PUT", f"{C}/traffic", {"weights": {"v2": 100}}),
        ("POST", f"{C}/versions/v2/promote", None),
    ]:
        error = expect_error(slow, method, path, 409, "version_not_ready", ("'v2'", "building", "%"), body)
        assert error["context"] == {"collection": "docs", "version": "v2"}
    assert slow.get(f"{C}/traffic").json()["weights"] == {"v1": 100}
    assert slow.get(f"{C}/versions/v2").json()["state"] == "building"


def test_duplicate_version_while_building_is_409(slow: httpx.Client) -> None:
    body = {"name": "v2", "model": "hashing"}
    expect_error(slow, "POST", f"{C}/versions", 409, "version_exists", ("'v2'",), body)


# -- precomputed vectors -------------------------------------------------------------------

EIGHT = [0.5] * 8


@pytest.mark.parametrize(
    ("rows", "status", "code", "mentions"),
    [
        ([{"id": "d0", "vector": [1.0] * 3}], 422, "invalid_request", ("dimension 8",)),
        ([{"id": "d0", "vector": EIGHT}, {"id": "d1", "vector": [1.0] * 9}], 422, "invalid_request", ("8",)),
        ([{"id": "d0", "vector": [float("nan")] * 8}], 422, "invalid_request", ("NaN",)),
        (
            [{"id": "d0", "vector": EIGHT}, {"id": "zz", "vector": EIGHT}],
            404,
            "record_not_found",
            ("doc/zz",),
        ),
        ([{"id": "d0", "kind": "faq", "vector": EIGHT}], 404, "record_not_found", ("faq/d0",)),
        ([{"id": "d0", "vector": ["1"] * 8}], 422, "invalid_request", ("vectors.0.vector.0", "number")),
        ([{"id": "d0", "vector": [True] * 8}], 422, "invalid_request", ("vectors.0.vector.0", "number")),
        ([{"id": "d0", "vector": []}], 422, "invalid_request", ("vectors.0.vector", "at least 1")),
        ([{"id": "d0", "vector": "0.5"}], 422, "invalid_request", ("vectors.0.vector", "list")),
        ([{"id": 0, "vector": EIGHT}], 422, "invalid_request", ("vectors.0.id", "string")),
        ([{"id": "", "vector": EIGHT}], 422, "invalid_request", ("vectors.0.id",)),
        ([{"vector": EIGHT}], 422, "invalid_request", ("vectors.0.id", "required")),
        ([{"id": "d0", "vector": EIGHT, "text": "x"}], 422, "invalid_request", ("vectors.0.text", "Extra")),
        ([], 422, "invalid_request", ("vectors", "at least 1")),
    ],
)
def test_bad_vectors_are_refused_and_none_is_loaded(
    http: httpx.Client, rows: list[Any], status: int, code: str, mentions: tuple[str, ...]
) -> None:
    raw = json.dumps({"vectors": rows}).encode()  # Python's json writes NaN, as many clients do
    expect_error(http, "PUT", f"{VEC}/versions/v2/vectors", status, code, mentions, raw=raw)
    assert http.get(f"{VEC}/versions/v2").json()["records"] == 0


def test_vectors_for_a_model_version_are_409_conflict(http: httpx.Client) -> None:
    body = {"vectors": [{"id": "d0", "vector": EIGHT}]}
    expect_error(http, "PUT", f"{VEC}/versions/v1/vectors", 409, "conflict", ("'v1'", "source"), body)
    expect_error(http, "POST", f"{VEC}/versions/v1/vectors/commit", 409, "conflict", ("'v1'",))


def test_traffic_to_a_version_awaiting_vectors_is_409_version_not_ready(http: httpx.Client) -> None:
    body = {"weights": {"v1": 50, "v2": 50}}
    expect_error(http, "PUT", f"{VEC}/traffic", 409, "version_not_ready", ("'v2'", "building"), body)


# -- numbers at the edges ------------------------------------------------------------------

BIG = 2**63  # one past SQLite's largest integer
HUGE = 2**1100  # past a float


@pytest.mark.parametrize("id", [BIG, -BIG - 1, HUGE, 0, -1])
def test_a_rollout_id_out_of_range_is_404_rollout_not_found(http: httpx.Client, id: int) -> None:
    expect_error(http, "GET", f"{C}/rollouts/{id}", 404, "rollout_not_found", (f"#{id}",))
    expect_error(http, "POST", f"{C}/rollouts/{id}/stop", 404, "rollout_not_found", (f"#{id}",))


MODEL_NUMBERS = [
    ({"type": "openai", "url": "http://127.0.0.1:9", "model": "m", "timeout_s": "Infinity"}, "timeout_s"),
    ({"type": "openai", "url": "http://127.0.0.1:9", "model": "m", "timeout_s": "1e400"}, "timeout_s"),
    ({"type": "openai", "url": "http://127.0.0.1:9", "model": "m", "timeout_s": BIG}, "timeout_s"),
    ({"type": "openai", "url": "http://127.0.0.1:9", "model": "m", "dimensions": BIG}, "dimensions"),
    ({"type": "openai", "url": "file:///etc/passwd", "model": "m"}, "url"),
    ({"type": "hashing", "seed": BIG}, "seed"),
    ({"type": "hashing", "seed": -BIG - 1}, "seed"),
    ({"type": "history-mean", "text": "hashing", "half_life_days": "Infinity"}, "half_life_days"),
    ({"type": "history-mean", "text": "hashing", "half_life_days": "NaN"}, "half_life_days"),
    ({"type": "als", "alpha": "Infinity"}, "alpha"),
    ({"type": "als", "regularization": "1e308"}, "regularization"),
    ({"type": "als", "seed": BIG}, "seed"),
]


def _raw(value: Any) -> bytes:
    """``value`` as JSON, with the strings "Infinity", "NaN" and "1e400"/"1e308" written as those
    bare numbers (Python's json writes NaN and Infinity, as many clients do)."""
    text = json.dumps(value)
    for word in ("Infinity", "NaN", "1e400", "1e308"):
        text = text.replace(f'"{word}"', word)
    return text.encode()


@pytest.mark.parametrize(("model", "field"), MODEL_NUMBERS)
def test_model_numbers_out_of_range_are_refused(
    http: httpx.Client, model: dict[str, Any], field: str
) -> None:
    raw = _raw({"name": "v9", "model": model, **({"source": "vectors"} if model["type"] == "als" else {})})
    expect_error(http, "POST", f"{C}/versions", 422, "unknown_model", (field,), raw=raw)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", f"{C}/search", {"text": "cats", "min_seq": BIG}, "min_seq"),
        ("POST", f"{C}/search", {"text": "cats", "min_seq": HUGE}, "min_seq"),
        (
            "POST",
            f"{C}/versions",
            {"name": "v9", "model": "hashing", "index": {"ef_search": BIG}},
            "ef_search",
        ),
        (
            "POST",
            f"{C}/versions",
            {"name": "v9", "model": "hashing", "index": {"type": "hnsw", "ef_construction": HUGE}},
            "ef_construction",
        ),
        ("POST", f"{C}/train", {"version": "v9", "model": {"seed": -1}}, "seed"),
        ("POST", f"{C}/train", {"version": "v9", "model": {"alpha": "Infinity"}}, "alpha"),
        ("POST", f"{C}/interactions", [{"user": "u", "item": "d1", "weight": "1e308"}], "weight"),
        (
            "POST",
            f"{C}/evaluate",
            {"versions": ["v1"], "queries": {"q": "cats"}, "qrels": {"q": {"d1": HUGE}}},
            "qrels",
        ),
    ],
)
def test_body_numbers_out_of_range_are_422(
    http: httpx.Client, method: str, path: str, body: Any, field: str
) -> None:
    expect_error(http, method, path, 422, "invalid_request", (field,), raw=_raw(body))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400", '[1, {"x": NaN}]'])
def test_fields_holding_nan_or_infinity_are_refused(http: httpx.Client, value: str) -> None:
    raw = b'{"records": [{"id": "new", "text": "fine", "fields": {"n": %s}}]}' % value.encode()
    expect_error(http, "PUT", f"{C}/records", 422, "invalid_request", ("records.0.fields", "NaN"), raw=raw)
    assert http.get(f"{C}/records/new").status_code == 404


def test_fields_keep_big_integers_and_finite_numbers(http: httpx.Client) -> None:
    fields = {"big": HUGE, "small": -BIG, "x": 1e308, "nested": [[{"n": 0.5}]]}
    ack = ok(http.put(f"{C}/records", json={"records": [{"id": "edge", "text": "edge", "fields": fields}]}))
    assert ok(http.get(f"{C}/records/edge"))["fields"] == fields
    assert ack["seq"] > 0
    _remove(http, "edge")


def _remove(http: httpx.Client, id: str) -> None:
    """Delete a record a test added, and wait until v1 has applied the delete."""
    gone = ok(http.delete(f"{C}/records/{id}"))
    ok(http.post(f"{C}/search", json={"text": "cats", "min_seq": gone["seq"]}))


# -- JSON at the edges ---------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("PUT", f"{C}/records", '{"records": [{"id": "new", "text": "t", "fields": {"a": %s}}]}'),
        ("POST", f"{C}/search", '{"text": %s}'),
        ("POST", f"{C}/versions", '{"name": "v9", "model": {"type": "hashing", "dim": %s}}'),
        ("PUT", f"{C}/traffic", "%s"),
    ],
)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 2, 100_000])
def test_over_deep_json_is_400_malformed_json(
    http: httpx.Client, method: str, path: str, template: str, depth: int
) -> None:
    raw = (template % _nested(depth)).encode()
    expect_error(
        http, method, path, 400, "malformed_json", ("JSON", "recursion", str(MAX_JSON_DEPTH)), raw=raw
    )
    assert http.get(f"{C}/records/new").status_code == 404


def test_json_as_deep_as_allowed_is_stored_and_read_back(http: httpx.Client) -> None:
    """Nested a few levels under the limit, fields are kept and read back whole (a few hundred
    levels used to be stored, and then every read of the record was a 500)."""
    deep = _nested(MAX_JSON_DEPTH - 5)
    raw = b'{"records": [{"id": "deep", "text": "t", "fields": {"a": %s}}]}' % deep.encode()
    ok(http.put(f"{C}/records", content=raw, headers={"content-type": "application/json"}))
    assert ok(http.get(f"{C}/records/deep"))["fields"] == {"a": json.loads(deep)}
    _remove(http, "deep")


@pytest.mark.parametrize("text", [rb"a \ud800 lone surrogate", rb"\udc00", b"\xff\xfe"])
def test_text_that_is_not_unicode_is_400_malformed_json(http: httpx.Client, text: bytes) -> None:
    raw = b'{"records": [{"id": "new", "text": "%s"}]}' % text
    expect_error(http, "PUT", f"{C}/records", 400, "malformed_json", ("JSON",), raw=raw)


def test_every_api_route_reads_its_body_as_checked_json() -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    assert routes and all(isinstance(route, JsonRoute) for route in routes)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/v1/collections", "GET, POST"),
        ("PUT", f"{C}/search", "POST"),
        ("DELETE", f"{C}/traffic", "GET, PUT"),
        ("GET", f"{C}/rollouts/1/stop", "POST"),
        ("POST", f"{C}/records/d1", "DELETE, GET"),
        ("PUT", "/healthz", "GET"),
    ],
)
def test_wrong_method_is_405_naming_the_allowed_ones(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    before = snapshot(http)
    response = http.request(method, path, json=body)
    error = response.json()
    assert response.status_code == 405 and error["code"] == "method_not_allowed" and error["message"]
    assert response.headers["allow"] == allow
    assert snapshot(http) == before


# -- filters, batches, cursors --------------------------------------------------------------------


@cases(
    (
        "POST",
        f"{C}/search",
        {"text": "cats", "filter": {"n": {"gtee": 3}}},
        ("n", "unknown operator 'gtee'", "gte"),
    ),
    (
        "POST",
        f"{C}/search",
        {"text": "cats", "filter": {"n": {"gte": "3"}}},
        ("n.gte", "numbers", "a string"),
    ),
    ("POST", f"{C}/search", {"text": "cats", "filter": {"n": None}}, ("n", '"exists": false')),
    ("POST", f"{C}/search", {"text": "cats", "filter": {"n": [1, 2]}}, ("n", '"in"')),
    ("POST", f"{C}/search", {"text": "cats", "filter": {}}, ("filter", 'leave "filter" out')),
    ("POST", f"{C}/search", {"text": "cats", "filter": "n = 1"}, ("filter", "JSON object")),
    ("POST", f"{C}/search", {"text": "cats", "filter": {"or": {"n": 1}}}, ("or", "list of filters")),
    ("POST", f"{C}/search", {"text": "cats", "filter": {"a..b": 1}}, ("'a..b'", "empty key", "dot")),
    ("POST", f"{C}/scroll", {"filter": {"meta.": {"exists": True}}}, ("'meta.'", "empty key")),
    ("POST", f"{C}/search", {"text": "cats", "ef": 0}, ("ef",)),
    ("POST", f"{C}/search", {"text": "cats", "fields": "n"}, ("fields",)),
    ("POST", f"{C}/recommend", {"item": "d1", "filter": {"n": {"lt": "x"}}}, ("n.lt", "numbers")),
    ("POST", f"{C}/search/batch", {"searches": []}, ("searches",)),
    ("POST", f"{C}/search/batch", {"searches": [{"text": "cats"}] * 257}, ("searches", "256")),
    ("POST", f"{C}/search/batch", {"searches": [{"text": "cats", "filter": {"n": {"in": []}}}]}, ("n.in",)),
    ("POST", f"{C}/scroll", {"cursor": "not-a-cursor"}, ("cursor", "leave it out")),
    ("POST", f"{C}/scroll", {"limit": 1001}, ("limit", "1000")),
    ("POST", f"{C}/get-records", {"ids": [f"d{i}" for i in range(1001)]}, ("ids", "1000")),
    ("POST", f"{C}/delete-records", {"ids": []}, ("ids",)),
    ("POST", f"{C}/delete-records", {"ids": [f"d{i}" for i in range(1001)]}, ("ids", "1000")),
    ("POST", f"{C}/delete-where", {}, ("filter",)),
    ("POST", f"{C}/delete-where", {"filter": {"n": {"exists": "yes"}}}, ("n.exists",)),
)
def test_bad_filter_batch_or_page_is_422(
    http: httpx.Client, method: str, path: str, body: Any, mentions: tuple[str, ...]
) -> None:
    expect_error(http, method, path, 422, "invalid_request", mentions, body)


def test_a_cursor_of_another_kind_is_422(http: httpx.Client) -> None:
    page = ok(http.post(f"{C}/scroll", json={"limit": 1, "kind": "faq"}))
    assert page["cursor"]
    body = {"cursor": page["cursor"], "kind": "doc"}
    expect_error(http, "POST", f"{C}/scroll", 422, "invalid_request", ("'faq'", "'doc'"), body)


def test_a_filter_on_a_field_no_record_has_matches_nothing(http: httpx.Client) -> None:
    before = snapshot(http)
    found = ok(http.post(f"{C}/search", json={"text": "cats", "filter": {"nobody": "x"}}))
    assert found["hits"] == []
    everyone = ok(
        http.post(f"{C}/search", json={"text": "cats", "k": 20, "filter": {"not": {"nobody": "x"}}})
    )
    assert len(everyone["hits"]) == len(DOCS)
    assert ok(http.post(f"{C}/delete-where", json={"filter": {"nobody": 1}}))["count"] == 0
    assert snapshot(http) == before
