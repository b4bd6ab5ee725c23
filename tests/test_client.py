"""``Client`` against a real server: every method, and errors as the engine's exception classes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FAST, ServerThread

from embedswitch import (
    Client,
    CollectionExists,
    CollectionNotFound,
    Conflict,
    EmbedswitchError,
    Engine,
    EngineConfig,
    InvalidRequest,
    LastVersion,
    ModelNotAllowed,
    ModelUnavailable,
    NotCaughtUp,
    NotFound,
    NothingToRollBack,
    RecordNotFound,
    Unavailable,
    UnknownKind,
    UnknownModel,
    VersionExists,
    VersionNotFound,
    VersionNotReady,
)
from embedswitch.results import (
    CollectionInfo,
    DeleteAck,
    EventOut,
    RecordOut,
    SearchResult,
    TrafficInfo,
    VectorAck,
    VersionInfo,
    WriteAck,
)

V1 = {"name": "v1", "model": "hashing"}
V2 = {"name": "v2", "model": {"type": "hashing", "seed": 1}}


def records(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "text": f"record {i} about cats", "fields": {"n": i}} for i in range(n)]


@pytest.fixture
def docs(client: Client) -> Client:
    """A client whose server has collection ``docs`` with version v1 and 20 records."""
    client.create_collection("docs", V1)
    client.upsert("docs", records(20))
    return client


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One server for the error cases, with collection ``docs``: version v1 and 20 records."""
    with (
        Engine.open(tmp_path_factory.mktemp("shared") / "data", FAST) as engine,
        ServerThread(engine) as running,
        Client(running.url) as client,
    ):
        client.create_collection("docs", V1)
        client.upsert("docs", records(20))
        yield client


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A server whose v2 stays building (backfill capped at 1 record/s) and whose min_seq wait is 0.3 s."""
    config = EngineConfig(backfill_max_rate=1.0, min_seq_timeout_s=0.3, checkpoint_interval_s=0.2)
    with (
        Engine.open(tmp_path_factory.mktemp("slow") / "data", config) as engine,
        ServerThread(engine) as running,
        Client(running.url) as client,
    ):
        client.create_collection("docs", V1)
        client.upsert("docs", [{"id": f"r{i}", "text": f"record {i}"} for i in range(300)])
        client.add_version("docs", {"name": "v2", "model": {"type": "hashing", "seed": 7}})
        yield client


# -- every method --------------------------------------------------------------------------


def test_collections(client: Client) -> None:
    created = client.create_collection("docs", V1)
    assert isinstance(created, CollectionInfo)
    assert (created.name, created.head_seq, created.traffic) == ("docs", 0, {"v1": 100})
    assert created.versions[0].model == {"type": "hashing", "dim": 256, "seed": 0}
    client.create_collection("alpha", {"name": "only", "model": {"type": "hashing", "dim": 64}})
    listed = client.list_collections()
    assert [c.name for c in listed] == ["alpha", "docs"]
    assert all(isinstance(c, CollectionInfo) for c in listed)
    assert client.describe("alpha").versions[0].dim == 64
    assert client.delete_collection("alpha") is None
    assert [c.name for c in client.list_collections()] == ["docs"]


def test_records(client: Client) -> None:
    client.create_collection("docs", V1)
    ack = client.upsert("docs", [{"id": "a", "text": "cats purr", "fields": {"x": [1, 2]}}])
    assert ack == WriteAck(count=1, changed=1, seq=1)
    faq = client.upsert("docs", [{"id": "a", "kind": "faq", "text": "why do cats purr"}])
    assert faq.seq == 2
    record = client.get_record("docs", "a")
    assert record == RecordOut(id="a", kind="doc", text="cats purr", fields={"x": [1, 2]}, seq=1)
    assert client.get_record("docs", "a", kind="faq").text == "why do cats purr"
    deleted = client.delete("docs", "a", kind="faq")
    assert deleted == DeleteAck(seq=3)
    with pytest.raises(RecordNotFound):
        client.get_record("docs", "a", kind="faq")
    assert client.get_record("docs", "a").seq == 1
    assert client.describe("docs").records_by_kind == {"doc": 1}


def test_search(docs: Client) -> None:
    head = docs.describe("docs").head_seq
    result = docs.search("docs", "record 7 about cats", k=3, min_seq=head)
    assert isinstance(result, SearchResult)
    assert (result.version, result.applied_seq, len(result.hits)) == ("v1", head, 3)
    assert (result.hits[0].id, result.hits[0].fields) == ("r7", {"n": 7})
    assert docs.search("docs", "cats", key="user-1", version="v1").version == "v1"
    docs.upsert("docs", [{"id": "q", "kind": "faq", "text": "purring question"}])
    faq = docs.search("docs", "purring", kind="faq", min_seq=head + 1)
    assert [hit.id for hit in faq.hits] == ["q"]
    assert docs.search("docs", "cats", min_seq=0).hits


def test_search_by_vector(client: Client) -> None:
    client.create_collection("vecs", {"name": "v1", "model": {"type": "none", "dim": 3}})
    ack = client.upsert("vecs", [{"id": "a", "vector": [1, 0, 0]}, {"id": "b", "vector": [0, 1, 0]}])
    result = client.search("vecs", vector=[0.1, 0.9, 0.0], k=1, min_seq=ack.seq)
    assert [hit.id for hit in result.hits] == ["b"]


def test_versions_traffic_and_events(docs: Client) -> None:
    added = docs.add_version("docs", V2)
    assert isinstance(added, VersionInfo)
    assert (added.name, added.state, added.weight) == ("v2", "building", 0)
    ready = docs.wait_ready("docs", "v2", timeout_s=20)
    assert (ready.state, ready.records) == ("ready", 20)
    assert docs.describe_version("docs", "v2").fingerprint == ready.fingerprint
    split = docs.set_traffic("docs", {"v1": 80, "v2": 20})
    assert isinstance(split, TrafficInfo) and split.weights == {"v1": 80, "v2": 20}
    assert docs.traffic("docs").weights == {"v1": 80, "v2": 20}
    assert docs.promote("docs", "v2").weights == {"v2": 100}
    assert docs.search("docs", "cats").version == "v2"
    assert docs.rollback("docs").weights == {"v1": 80, "v2": 20}
    assert docs.promote("docs", "v1").weights == {"v1": 100}
    assert docs.retire("docs", "v2") is None
    assert [v.name for v in docs.describe("docs").versions] == ["v1"]
    events = docs.events("docs")
    assert all(isinstance(e, EventOut) for e in events)
    assert {"created", "backfill_finished", "ready", "traffic", "retired"} <= {e.event for e in events}
    only_v2 = docs.events("docs", version="v2")
    assert only_v2 and {e.version for e in only_v2} == {"v2"}


def test_precomputed_vectors(docs: Client) -> None:
    spec = {"name": "v2", "model": {"type": "hashing", "dim": 16, "seed": 3}, "source": "vectors"}
    added = docs.add_version("docs", spec)
    assert (added.source, added.state, added.dim) == ("vectors", "building", 16)
    ack = docs.put_vectors("docs", "v2", [{"id": f"r{i}", "vector": [float(i + 1)] * 16} for i in range(5)])
    assert ack == VectorAck(count=5, written=5)
    committed = docs.commit_vectors("docs", "v2")
    assert isinstance(committed, VersionInfo) and committed.name == "v2"
    assert docs.wait_ready("docs", "v2", timeout_s=20).records == 20
    with pytest.raises(Conflict) as raised:
        docs.commit_vectors("docs", "v2")
    assert (type(raised.value), raised.value.code, raised.value.status) == (Conflict, "conflict", 409)


def test_wait_ready_times_out_on_a_building_version(slow: Client) -> None:
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="v2"):
        slow.wait_ready("docs", "v2", timeout_s=0.3)
    assert time.monotonic() - start < 5


def test_client_is_a_context_manager_and_strips_the_trailing_slash(server: ServerThread) -> None:
    with Client(server.url + "/") as client:
        assert client.url == server.url
        assert client.list_collections() == []


# -- errors --------------------------------------------------------------------------------

ErrorCase = tuple[Callable[[Client], object], type[EmbedswitchError], str, int]

ERRORS: dict[str, ErrorCase] = {
    "describe unknown collection": (
        lambda c: c.describe("nope"),
        CollectionNotFound,
        "collection_not_found",
        404,
    ),
    "upsert unknown collection": (
        lambda c: c.upsert("nope", records(1)),
        CollectionNotFound,
        "collection_not_found",
        404,
    ),
    "delete unknown collection": (
        lambda c: c.delete_collection("nope"),
        CollectionNotFound,
        "collection_not_found",
        404,
    ),
    "unknown version": (
        lambda c: c.describe_version("docs", "v9"),
        VersionNotFound,
        "version_not_found",
        404,
    ),
    "search unknown version": (
        lambda c: c.search("docs", "cats", version="v9"),
        VersionNotFound,
        "version_not_found",
        404,
    ),
    "promote unknown version": (lambda c: c.promote("docs", "v9"), VersionNotFound, "version_not_found", 404),
    "missing record": (lambda c: c.get_record("docs", "missing"), RecordNotFound, "record_not_found", 404),
    "delete missing record": (lambda c: c.delete("docs", "missing"), RecordNotFound, "record_not_found", 404),
    "duplicate collection": (
        lambda c: c.create_collection("docs", V1),
        CollectionExists,
        "collection_exists",
        409,
    ),
    "duplicate version": (lambda c: c.add_version("docs", V1), VersionExists, "version_exists", 409),
    "retire the last version": (lambda c: c.retire("docs", "v1"), LastVersion, "last_version", 409),
    "nothing to roll back": (lambda c: c.rollback("docs"), NothingToRollBack, "nothing_to_roll_back", 409),
    "unknown model on create": (
        lambda c: c.create_collection("new", {"name": "v1", "model": "word2vec"}),
        UnknownModel,
        "unknown_model",
        422,
    ),
    "unknown model on add": (
        lambda c: c.add_version("docs", {"name": "v2", "model": {"type": "hashing", "dim": 2}}),
        UnknownModel,
        "unknown_model",
        422,
    ),
    "unknown kind": (lambda c: c.search("docs", "cats", kind="recipe"), UnknownKind, "unknown_kind", 422),
    "k out of range": (lambda c: c.search("docs", "cats", k=0), InvalidRequest, "invalid_request", 422),
    "blank text": (lambda c: c.search("docs", "  "), InvalidRequest, "invalid_request", 422),
    "empty batch": (lambda c: c.upsert("docs", []), InvalidRequest, "invalid_request", 422),
    "bad record": (
        lambda c: c.upsert("docs", [{"id": "", "text": "x"}]),
        InvalidRequest,
        "invalid_request",
        422,
    ),
    "zero weights": (lambda c: c.set_traffic("docs", {"v1": 0}), InvalidRequest, "invalid_request", 422),
    "bad collection name": (
        lambda c: c.create_collection("a b", V1),
        InvalidRequest,
        "invalid_request",
        422,
    ),
    "vectors for a model version": (
        lambda c: c.put_vectors("docs", "v1", [{"id": "r1", "vector": [1.0] * 256}]),
        Conflict,
        "conflict",
        409,
    ),
    "model endpoint unavailable": (
        lambda c: c.add_version(
            "docs",
            {
                "name": "remote",
                "model": {
                    "type": "openai",
                    "url": "http://127.0.0.1:9",
                    "model": "m",
                    "api_key_env": "EMBEDSWITCH_KEY_TEST_THAT_IS_NOT_SET",
                },
            },
        ),
        ModelUnavailable,
        "model_unavailable",
        503,
    ),
    "model spec reaching too far": (
        lambda c: c.add_version(
            "docs",
            {"name": "remote", "model": {"type": "model2vec", "path": "/etc"}},
        ),
        ModelNotAllowed,
        "model_not_allowed",
        403,
    ),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_errors_come_back_as_the_engine_exception_classes(
    shared: Client, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMBEDSWITCH_KEY_TEST_THAT_IS_NOT_SET", raising=False)
    call, cls, code, status = ERRORS[case]
    before = shared.describe("docs")
    with pytest.raises(cls) as raised:
        call(shared)
    assert type(raised.value) is cls
    assert (raised.value.code, raised.value.status) == (code, status)
    assert raised.value.message and str(raised.value) == raised.value.message
    after = shared.describe("docs")
    assert (after.head_seq, after.records, after.traffic) == (before.head_seq, before.records, before.traffic)
    assert [v.name for v in after.versions] == [v.name for v in before.versions]


def test_error_classes_keep_their_place_in_the_tree(shared: Client) -> None:
    with pytest.raises(NotFound):
        shared.describe("nope")
    with pytest.raises(Conflict):
        shared.rollback("docs")
    with pytest.raises(InvalidRequest):
        shared.search("docs", "cats", kind="recipe")
    with pytest.raises(EmbedswitchError):
        shared.get_record("docs", "missing")


def test_version_not_ready_and_not_caught_up(slow: Client) -> None:
    with pytest.raises(VersionNotReady) as not_ready:
        slow.set_traffic("docs", {"v1": 50, "v2": 50})
    assert (not_ready.value.code, not_ready.value.status) == ("version_not_ready", 409)
    assert "'v2'" in not_ready.value.message and "building" in not_ready.value.message
    with pytest.raises(VersionNotReady):
        slow.promote("docs", "v2")
    assert slow.traffic("docs").weights == {"v1": 100}
    head = slow.describe("docs").head_seq
    with pytest.raises(NotCaughtUp) as behind:
        slow.search("docs", "record", min_seq=head + 100)
    assert (behind.value.code, behind.value.status) == ("not_caught_up", 503)
    assert isinstance(behind.value, Unavailable)


def test_an_unknown_route_is_a_not_found_error(server: ServerThread) -> None:
    with Client(server.url + "/prefix") as client, pytest.raises(NotFound) as raised:
        client.list_collections()
    assert (type(raised.value), raised.value.code, raised.value.status) == (NotFound, "not_found", 404)
    assert "/prefix/v1/collections" in raised.value.message


def test_errors_keep_the_context_the_server_sent(shared: Client) -> None:
    with pytest.raises(VersionNotFound) as raised:
        shared.describe_version("docs", "v9")
    assert raised.value.context == {"collection": "docs", "version": "v9"}, (
        "BUG (embedswitch/client.py:37-50, _raise_for): the error body's 'context' is dropped, so "
        f"client errors carry no context while the engine's do; got {raised.value.context!r}"
    )


@pytest.mark.parametrize("rid", ["x?y", "h#1", "p%20q", "a b", "ü-ñ"])
def test_ids_with_url_reserved_characters_reach_their_own_record(shared: Client, rid: str) -> None:
    shared.create_collection("ids", V1)
    try:
        shared.upsert(
            "ids", [{"id": "x", "text": "plain"}, {"id": "h", "text": "plain"}, {"id": rid, "text": "mine"}]
        )
        bug = (
            "BUG (embedswitch/client.py:94 and :98, Client.delete/get_record): the id is put in the URL "
            f"unquoted, so id {rid!r} reaches"
        )
        try:
            fetched = shared.get_record("ids", rid)
        except RecordNotFound as exc:
            pytest.fail(f"{bug} another id: {exc.message}")
        assert fetched.id == rid, f"{bug} record {fetched.id!r}"
        shared.delete("ids", rid)
        assert shared.get_record("ids", "x").text == "plain"
        assert shared.get_record("ids", "h").text == "plain"
        with pytest.raises(RecordNotFound):
            shared.get_record("ids", rid)
    finally:
        shared.delete_collection("ids")
