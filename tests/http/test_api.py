"""The HTTP API over real HTTP against a real server: every route, its status and its answer."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
from _http import error, ok
from conftest import ServerThread

from embedswitch import EmbedswitchError, Engine, EngineConfig, specs

V1 = {"name": "v1", "model": "hashing"}
V2 = {"name": "v2", "model": {"type": "hashing", "seed": 1}}
VERSION_KEYS = {"name", "model", "dim", "state", "applied_seq", "records"}


def create(http: httpx.Client, name: str = "docs", version: dict[str, Any] = V1) -> dict[str, Any]:
    return ok(http.post("/v1/collections", json={"name": name, "version": version}), 201)


def put(http: httpx.Client, records: list[dict[str, Any]], c: str = "docs") -> dict[str, Any]:
    return ok(http.put(f"/v1/collections/{c}/records", json={"records": records}))


def search(http: httpx.Client, c: str = "docs", **body: Any) -> dict[str, Any]:
    return ok(http.post(f"/v1/collections/{c}/search", json=body))


def some_records(n: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "text": f"record {i} about cats and dogs"} for i in range(n)]


def wait_ready(http: httpx.Client, version: str, c: str = "docs", timeout_s: float = 20) -> dict[str, Any]:
    head = ok(http.get(f"/v1/collections/{c}"))["head_seq"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = ok(http.get(f"/v1/collections/{c}/versions/{version}"))
        if info["state"] == "ready" and info["applied_seq"] >= head:
            return info
        time.sleep(0.02)
    raise AssertionError(f"version {version} of {c} not ready after {timeout_s} s")


def with_ready_v2(http: httpx.Client, records: int = 20) -> None:
    create(http)
    put(http, some_records(records))
    ok(http.post("/v1/collections/docs/versions", json=V2), 202)
    wait_ready(http, "v2")


# -- collections ---------------------------------------------------------------------------


def test_create_collection_is_201_with_its_first_version_taking_all_traffic(http: httpx.Client) -> None:
    body = create(http)
    assert {"name", "head_seq", "records", "versions"} <= set(body)
    assert (body["name"], body["head_seq"], body["records"], body["traffic"]) == ("docs", 0, 0, {"v1": 100})
    [version] = body["versions"]
    assert set(version) >= VERSION_KEYS
    assert version["model"] == {"type": "hashing", "dim": 256, "seed": 0}
    assert (version["name"], version["dim"], version["state"], version["weight"]) == ("v1", 256, "ready", 100)


def test_list_collections_returns_every_collection_by_name(http: httpx.Client) -> None:
    assert ok(http.get("/v1/collections")) == []
    create(http, "beta")
    create(http, "alpha")
    listed = ok(http.get("/v1/collections"))
    assert [c["name"] for c in listed] == ["alpha", "beta"]
    assert all(set(v) >= VERSION_KEYS for c in listed for v in c["versions"])


def test_describe_counts_records_and_versions(http: httpx.Client) -> None:
    create(http)
    put(http, some_records(3) + [{"id": "q1", "kind": "faq", "text": "a question"}])
    body = ok(http.get("/v1/collections/docs"))
    assert {"name", "head_seq", "records", "versions"} <= set(body)
    assert (body["head_seq"], body["records"], body["records_by_kind"]) == (4, 4, {"doc": 3, "faq": 1})
    assert [v["name"] for v in body["versions"]] == ["v1"]
    assert set(body["versions"][0]) >= VERSION_KEYS


def test_delete_collection_removes_it_and_its_records(http: httpx.Client) -> None:
    create(http)
    put(http, some_records(3))
    assert ok(http.delete("/v1/collections/docs")) == {"deleted": "docs"}
    error(http.get("/v1/collections/docs"), 404, "collection_not_found")
    assert ok(http.get("/v1/collections")) == []
    again = create(http)
    assert (again["head_seq"], again["records"]) == (0, 0)
    error(http.get("/v1/collections/docs/records/r0"), 404, "record_not_found")
    assert search(http, text="cats")["hits"] == []


# -- records -------------------------------------------------------------------------------


def test_put_records_acks_count_changed_and_seq(http: httpx.Client) -> None:
    create(http)
    assert put(http, some_records(3)) == {"count": 3, "changed": 3, "seq": 3}
    assert put(http, some_records(3)) == {"count": 3, "changed": 0, "seq": 3}
    edited = [{"id": "r1", "text": "an edited text"}, *some_records(1)]
    assert put(http, edited) == {"count": 2, "changed": 1, "seq": 4}


def test_get_record_returns_text_fields_and_seq(http: httpx.Client) -> None:
    create(http)
    fields = {"title": "Cats", "year": 2024, "tags": ["a", "b"], "nested": {"x": 1.5, "ok": True}}
    ack = put(http, [{"id": "r1", "text": "cats purr", "fields": fields}])
    record = ok(http.get("/v1/collections/docs/records/r1"))
    assert record == {"id": "r1", "kind": "doc", "text": "cats purr", "fields": fields, "seq": ack["seq"]}


def test_delete_record_acks_seq_and_removes_it_from_search(http: httpx.Client) -> None:
    create(http)
    put(http, some_records(3))
    ack = ok(http.delete("/v1/collections/docs/records/r1"))
    assert ack == {"seq": 4}
    error(http.get("/v1/collections/docs/records/r1"), 404, "record_not_found")
    hits = search(http, text="record 1 about cats", min_seq=ack["seq"])["hits"]
    assert {h["id"] for h in hits} == {"r0", "r2"}
    assert ok(http.get("/v1/collections/docs"))["records"] == 2


def test_kinds_are_separate_namespaces_chosen_with_the_kind_query(http: httpx.Client) -> None:
    create(http)
    put(http, [{"id": "x", "text": "a document about cats"}, {"id": "x", "kind": "faq", "text": "why purr"}])
    assert ok(http.get("/v1/collections/docs/records/x"))["text"] == "a document about cats"
    faq = ok(http.get("/v1/collections/docs/records/x", params={"kind": "faq"}))
    assert (faq["kind"], faq["text"]) == ("faq", "why purr")
    found = search(http, text="why purr", kind="faq", min_seq=2)
    assert [h["id"] for h in found["hits"]] == ["x"]
    ack = ok(http.delete("/v1/collections/docs/records/x", params={"kind": "faq"}))
    error(http.get("/v1/collections/docs/records/x", params={"kind": "faq"}), 404, "record_not_found")
    assert ok(http.get("/v1/collections/docs/records/x"))["text"] == "a document about cats"
    assert search(http, text="why purr", kind="faq", min_seq=ack["seq"])["hits"] == []


def test_record_ids_with_a_slash_can_be_read_back_or_are_refused(http: httpx.Client) -> None:
    create(http)
    stored = http.put("/v1/collections/docs/records", json={"records": [{"id": "a/b", "text": "slashed"}]})
    if stored.status_code == 200:
        fetched = http.get("/v1/collections/docs/records/a%2Fb")
        assert fetched.status_code == 200, (
            "BUG (embedswitch/http/app.py:83/87, routes records/{id}): PUT accepts the id 'a/b' but GET "
            f"and DELETE can never reach it: {fetched.status_code} {fetched.text}"
        )
    else:
        error(stored, 422, "invalid_request")


# -- search --------------------------------------------------------------------------------


def test_search_returns_version_seq_request_id_and_hits_with_fields(http: httpx.Client) -> None:
    create(http)
    put(
        http,
        [
            {"id": "cat", "text": "the cat sat on the mat", "fields": {"animal": "cat"}},
            {"id": "dog", "text": "the dog barked at the mailman", "fields": {"animal": "dog"}},
            {"id": "fish", "text": "fish swim in the sea"},
        ],
    )
    result = search(http, text="a cat on a mat", k=2, min_seq=3)
    assert set(result) == {"version", "applied_seq", "request_id", "hits"}
    assert (result["version"], result["applied_seq"]) == ("v1", 3)
    assert len(result["hits"]) == 2
    assert all(set(hit) == {"id", "score", "fields"} for hit in result["hits"])
    top = result["hits"][0]
    assert (top["id"], top["fields"]) == ("cat", {"animal": "cat"})
    scores = [hit["score"] for hit in result["hits"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    fish = search(http, text="fish swim", k=1)["hits"]
    assert [(hit["id"], hit["fields"]) for hit in fish] == [("fish", {})]
    assert search(http, text="cat")["request_id"] != result["request_id"]


def test_min_seq_reads_your_writes_on_every_version(http: httpx.Client) -> None:
    with_ready_v2(http)
    ok(http.put("/v1/collections/docs/traffic", json={"weights": {"v1": 50, "v2": 50}}))
    served = set()
    for n in range(30):
        ack = put(http, [{"id": f"new{n}", "text": f"fresh token{n}x arrived"}])
        result = search(http, text=f"token{n}x", k=1, min_seq=ack["seq"])
        assert result["applied_seq"] >= ack["seq"]
        assert result["hits"][0]["id"] == f"new{n}", (n, result)
        served.add(result["version"])
    assert served == {"v1", "v2"}


def test_min_seq_beyond_the_log_is_503_not_caught_up_after_the_timeout(tmp_path: Path) -> None:
    config = EngineConfig(min_seq_timeout_s=0.3)
    with (
        Engine.open(tmp_path / "data", config) as engine,
        ServerThread(engine) as running,
        httpx.Client(base_url=running.url, timeout=30) as http,
    ):
        create(http)
        ack = put(http, some_records(2))
        start = time.monotonic()
        response = http.post(
            "/v1/collections/docs/search", json={"text": "cats", "min_seq": ack["seq"] + 1000}
        )
        elapsed = time.monotonic() - start
        body = error(response, 503, "not_caught_up")
        assert 0.3 <= elapsed < 5
        assert "'v1'" in body["message"] and str(ack["seq"] + 1000) in body["message"]
        assert body["context"] == {"collection": "docs", "version": "v1"}
        assert search(http, text="cats", min_seq=ack["seq"])["applied_seq"] >= ack["seq"]


def test_key_routing_is_sticky_and_spreads_keys_over_versions(http: httpx.Client) -> None:
    with_ready_v2(http)
    ok(http.put("/v1/collections/docs/traffic", json={"weights": {"v1": 50, "v2": 50}}))
    by_key = {}
    for n in range(30):
        seen = {search(http, text="cats", key=f"user-{n}")["version"] for _ in range(3)}
        assert len(seen) == 1, (n, seen)
        by_key[n] = seen.pop()
    assert set(by_key.values()) == {"v1", "v2"}


def test_explicit_version_answers_even_without_traffic(http: httpx.Client) -> None:
    with_ready_v2(http)
    assert search(http, text="cats", version="v2")["version"] == "v2"
    assert search(http, text="cats", version="v1")["version"] == "v1"
    assert {search(http, text="cats")["version"] for _ in range(10)} == {"v1"}


# -- versions and traffic ------------------------------------------------------------------


def test_add_version_is_202_building_then_ready_after_backfill(http: httpx.Client) -> None:
    create(http)
    put(http, some_records(500))
    added = ok(http.post("/v1/collections/docs/versions", json=V2), 202)
    assert set(added) >= VERSION_KEYS
    assert (added["name"], added["state"], added["weight"]) == ("v2", "building", 0)
    assert added["model"] == {"type": "hashing", "dim": 256, "seed": 1}
    assert added["progress"]["total"] == 500
    ready = wait_ready(http, "v2")
    assert (ready["records"], ready["progress"]["done"], ready["lag"]) == (500, 500, 0)
    listed = ok(http.get("/v1/collections/docs/versions"))
    assert [v["name"] for v in listed] == ["v1", "v2"]
    assert all(set(v) >= VERSION_KEYS for v in listed)


def test_traffic_set_promote_and_rollback_keep_a_history(http: httpx.Client) -> None:
    with_ready_v2(http)
    initial = ok(http.get("/v1/collections/docs/traffic"))
    assert initial["weights"] == {"v1": 100}
    assert [h["reason"] for h in initial["history"]] == ["created"]
    split = ok(http.put("/v1/collections/docs/traffic", json={"weights": {"v1": 90, "v2": 10}}))
    assert split["weights"] == {"v1": 90, "v2": 10}
    assert split["history"][0]["weights"] == {"v1": 90, "v2": 10}
    assert ok(http.get("/v1/collections/docs"))["traffic"] == {"v1": 90, "v2": 10}
    promoted = ok(http.post("/v1/collections/docs/versions/v2/promote", json={}))
    assert promoted["weights"] == {"v2": 100}
    assert promoted["history"][0]["reason"] == "promote v2"
    assert ok(http.get("/v1/collections/docs/versions/v2"))["weight"] == 100
    assert {search(http, text="cats")["version"] for _ in range(5)} == {"v2"}
    assert ok(http.post("/v1/collections/docs/rollback", json={}))["weights"] == {"v1": 90, "v2": 10}
    assert ok(http.post("/v1/collections/docs/rollback", json={}))["weights"] == {"v1": 100}
    error(http.post("/v1/collections/docs/rollback", json={}), 409, "nothing_to_roll_back")
    final = ok(http.get("/v1/collections/docs/traffic"))
    assert final["weights"] == {"v1": 100}
    ids = [h["id"] for h in final["history"]]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    assert {search(http, text="cats")["version"] for _ in range(5)} == {"v1"}


def test_retire_refuses_a_version_with_traffic_then_removes_it(http: httpx.Client) -> None:
    with_ready_v2(http)
    ok(http.post("/v1/collections/docs/versions/v2/promote", json={}))
    error(http.delete("/v1/collections/docs/versions/v2"), 409, "version_has_traffic")
    ok(http.post("/v1/collections/docs/versions/v1/promote", json={}))
    assert ok(http.delete("/v1/collections/docs/versions/v2")) == {"retired": "v2"}
    error(http.get("/v1/collections/docs/versions/v2"), 404, "version_not_found")
    assert [v["name"] for v in ok(http.get("/v1/collections/docs/versions"))] == ["v1"]
    error(
        http.post("/v1/collections/docs/search", json={"text": "cats", "version": "v2"}),
        404,
        "version_not_found",
    )
    assert search(http, text="cats")["version"] == "v1"
    retired = ok(http.get("/v1/collections/docs/events", params={"version": "v2"}))
    assert retired[0]["event"] == "retired"


def test_retire_of_the_last_version_is_409_last_version(http: httpx.Client) -> None:
    create(http)
    response = http.delete("/v1/collections/docs/versions/v1")
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "last_version", (
        "BUG (embedswitch/collection.py:365-381, Collection.retire): the traffic check runs before the "
        "last-version check, and the last version always has traffic, so LastVersion is unreachable; "
        f"got {response.json()}"
    )
    assert [v["name"] for v in ok(http.get("/v1/collections/docs/versions"))] == ["v1"]


def test_events_list_the_history_newest_first(http: httpx.Client) -> None:
    with_ready_v2(http)
    ok(http.post("/v1/collections/docs/versions/v2/promote", json={}))
    events = ok(http.get("/v1/collections/docs/events"))
    assert all(set(e) == {"id", "version", "event", "detail", "at"} for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, reverse=True)
    names = [(e["version"], e["event"]) for e in reversed(events)]
    assert names[0] == ("v1", "created")
    assert {("v2", "created"), ("v2", "backfill_finished"), ("v2", "ready"), (None, "traffic")} <= set(names)
    assert events[0]["detail"] == {"weights": {"v2": 100}, "reason": "promote v2"}
    only_v2 = ok(http.get("/v1/collections/docs/events", params={"version": "v2"}))
    assert only_v2 and all(e["version"] == "v2" for e in only_v2)
    created = [e for e in only_v2 if e["event"] == "created"]
    assert created[0]["detail"] == {"model": {"type": "hashing", "dim": 256, "seed": 1}, "seq": 20}


def test_vectors_version_loads_precomputed_vectors_then_commits(http: httpx.Client) -> None:
    create(http)
    put(http, some_records(10))
    spec = {"name": "v2", "model": {"type": "hashing", "dim": 8, "seed": 2}, "source": "vectors"}
    added = ok(http.post("/v1/collections/docs/versions", json=spec), 202)
    assert (added["source"], added["state"], added["dim"], added["records"]) == ("vectors", "building", 8, 0)
    one_hot = [[1.0 if j == i else 0.0 for j in range(8)] for i in range(4)]
    rows = [{"id": f"r{i}", "vector": vector} for i, vector in enumerate(one_hot)]
    assert ok(http.put("/v1/collections/docs/versions/v2/vectors", json={"vectors": rows})) == {
        "count": 4,
        "written": 4,
    }
    assert ok(http.get("/v1/collections/docs/versions/v2"))["records"] == 4
    error(http.post("/v1/collections/docs/versions/v2/promote", json={}), 409, "version_not_ready")
    committed = ok(http.post("/v1/collections/docs/versions/v2/vectors/commit", json={}))
    assert (committed["name"], committed["source"]) == ("v2", "vectors")
    ready = wait_ready(http, "v2")
    assert ready["records"] == 10
    error(http.post("/v1/collections/docs/versions/v2/vectors/commit", json={}), 409, "conflict")
    events = ok(http.get("/v1/collections/docs/events", params={"version": "v2"}))
    assert "vectors_committed" in [e["event"] for e in events]
    ok(http.post("/v1/collections/docs/versions/v2/promote", json={}))
    assert search(http, text="record 3 about cats")["version"] == "v2"


# -- operations ----------------------------------------------------------------------------


def test_healthz_and_readyz(http: httpx.Client) -> None:
    assert ok(http.get("/healthz")) == {"status": "ok"}
    create(http)
    assert ok(http.get("/readyz")) == {"ready": True, "problems": [], "candidates": []}


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            samples.append((labels, float(match.group(2))))
    return samples


def test_metrics_are_prometheus_text_per_collection_and_version(http: httpx.Client) -> None:
    create(http)
    ack = put(http, some_records(5))
    search(http, text="cats", min_seq=ack["seq"])
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    key = {"collection": "docs", "version": "v1"}
    latency = metric_samples(text, "embedswitch_request_seconds_count")
    assert any(labels.items() >= key.items() and value >= 1 for labels, value in latency), latency
    for name, check in [
        ("embedswitch_applier_lag_seqs", lambda v: v == 0),
        ("embedswitch_version_records", lambda v: v == 5),
        ("embedswitch_index_bytes", lambda v: v > 0),
    ]:
        samples = metric_samples(text, name)
        assert [value for labels, value in samples if labels == key], (name, samples)
        assert all(check(value) for labels, value in samples if labels == key), (name, samples)


def test_docs_and_openapi_are_served(http: httpx.Client) -> None:
    docs = http.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "swagger" in docs.text.lower()
    schema = ok(http.get("/openapi.json"))
    assert schema["info"]["title"] == "embedswitch"
    expected = {
        "/healthz": {"get"},
        "/readyz": {"get"},
        "/metrics": {"get"},
        "/v1/collections": {"get", "post"},
        "/v1/collections/{c}": {"get", "delete"},
        "/v1/collections/{c}/records": {"put"},
        "/v1/collections/{c}/records/{id}": {"get", "delete"},
        "/v1/collections/{c}/search": {"post"},
        "/v1/collections/{c}/versions": {"get", "post"},
        "/v1/collections/{c}/versions/{v}": {"get", "delete"},
        "/v1/collections/{c}/versions/{v}/vectors": {"put"},
        "/v1/collections/{c}/versions/{v}/vectors/commit": {"post"},
        "/v1/collections/{c}/versions/{v}/promote": {"post"},
        "/v1/collections/{c}/traffic": {"get", "put"},
        "/v1/collections/{c}/rollback": {"post"},
        "/v1/collections/{c}/events": {"get"},
    }
    served = {path: set(ops) for path, ops in schema["paths"].items()}
    assert {path: served.get(path) for path in expected} == expected


def test_docs_api_md_names_every_route_error_code_and_limit(http: httpx.Client) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for path, ops in ok(http.get("/openapi.json"))["paths"].items():
        for op in ops:
            assert f"| `{op.upper()}` | `{path}" in text, f"docs/api.md lacks {op.upper()} {path}"
    codes, stack = set(), [EmbedswitchError]
    while stack:
        cls = stack.pop()
        codes.add(cls.code)
        stack.extend(cls.__subclasses__())
    codes |= {"malformed_json", "not_found", "method_not_allowed"}
    missing = sorted(code for code in codes if f"| `{code}` |" not in text)
    assert not missing, f"docs/api.md lacks error codes {missing}"
    for limit in (
        specs.MAX_TEXT_CHARS,
        specs.MAX_ID_CHARS,
        specs.MAX_FIELDS_BYTES,
        specs.MAX_BATCH,
        specs.MAX_K,
    ):
        assert f"{limit:,}" in text, limit
    assert specs.NAME_PATTERN in text and specs.KIND_PATTERN in text


def test_a_collection_of_vectors_alone_over_http(http: httpx.Client) -> None:
    """Created with model "none", fed rows carrying "vector", searched by vector and like; a text
    search is a 422 naming the fix, a malformed row a 422 that writes nothing."""
    create(http, "vecs", {"name": "v1", "model": {"type": "none", "dim": 4}})
    rows = [{"id": f"p{i}", "vector": [1.0, float(i), 0.0, 2.0], "fields": {"i": i}} for i in range(10)]
    seq = put(http, rows, "vecs")["seq"]
    found = search(http, "vecs", vector=[1.0, 3.0, 0.0, 2.0], k=2, min_seq=seq)
    assert found["hits"][0]["id"] == "p3" and found["hits"][0]["fields"] == {"i": 3}
    assert found["hits"][0]["score"] > 0.999
    liked = search(http, "vecs", like={"kind": "doc", "id": "p9"}, k=1)
    assert liked["hits"][0]["id"] == "p8"
    body = error(http.post("/v1/collections/vecs/search", json={"text": "cats"}), 422, "text_not_supported")
    assert '"vector"' in body["message"] and '"query"' in body["message"]
    bad = {"records": [{"id": "q", "vector": [1.0, 2.0]}]}
    body = error(http.put("/v1/collections/vecs/records", json=bad), 422, "invalid_request")
    assert "dimension 4" in body["message"]
    neither = {"records": [{"id": "q"}]}
    error(http.put("/v1/collections/vecs/records", json=neither), 422, "invalid_request")
    assert ok(http.get("/v1/collections/vecs"))["head_seq"] == seq
    info = ok(http.get("/v1/collections/vecs/versions/v1"))
    assert info["model"]["type"] == "none" and info["indexes"]["doc"]["vectors"] == 10
