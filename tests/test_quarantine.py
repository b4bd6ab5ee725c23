"""Quarantine: records a model rejects are found by bisection, kept with their error, resolved by a
later write, a retry or a skip, and never let a stale text in or a deleted record back.

The rejecting model is either the real hashing model wrapped to refuse some texts (``Refusing``)
or the real ``openai`` adapter in front of ``_endpoint.py``'s endpoint; both are fakes only in the
fault they inject on demand: a provider's 400 for a text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from _checks import assert_end_state
from _endpoint import Faults, endpoint, spec
from _http import error, ok
from conftest import FAST, ServerProcess, ServerThread

from embedswitch import Client, Engine, InputRejected, ModelUnavailable, RecordNotFound, VersionNotReady
from embedswitch.http.settings import HttpConfig
from embedswitch.index import IndexMeta, open_index
from embedswitch.index.specs import ExactSpec
from embedswitch.models.hashing import HashingModel
from embedswitch.quarantine import Quarantine, embed_rejecting
from embedswitch.specs import RecordIn
from embedswitch.store.base import QuarantineRow, VersionRow
from embedswitch.store.sqlite import SqliteStore

REFUSED = "refused text"


class Refusing:
    """The hashing model, refusing any batch that holds a refused text (as an endpoint's 400)."""

    def __init__(self, refused: set[str]) -> None:
        self.model = HashingModel(dim=32)
        self.refused = refused
        self.calls: list[int] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        if self.refused.intersection(texts):
            raise InputRejected(f"rejected {sorted(self.refused.intersection(texts))[0]!r}")
        return self.model.encode(texts)


# -- bisection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [[], [0], [63], [5, 6], [3, 40, 41, 62], list(range(64))])
def test_bisection_finds_exactly_the_rejected_texts(bad: list[int]) -> None:
    texts = [f"text {i}" for i in range(64)]
    refusing = Refusing({texts[i] for i in bad})
    embedded = embed_rejecting(refusing, texts)
    assert sorted(embedded.rejected) == bad
    assert embedded.rows == [i for i in range(64) if i not in bad]
    assert all(f"text {i}" in message for i, message in embedded.rejected.items())
    if embedded.rows:
        expected = refusing.model.encode([texts[i] for i in embedded.rows])
        assert embedded.vectors is not None and np.allclose(embedded.vectors, expected)
    else:
        assert embedded.vectors is None
    if len(bad) == 1:
        assert len(refusing.calls) <= 1 + 2 * 6  # 2 log2(64) calls beyond the first


def test_bisection_of_nothing_and_other_errors() -> None:
    nothing = Refusing(set())
    assert embed_rejecting(nothing, []).rows == [] and nothing.calls == []  # no call for nothing

    def down(texts: list[str]) -> np.ndarray:
        raise ModelUnavailable("the endpoint is down")

    with pytest.raises(ModelUnavailable):
        embed_rejecting(down, ["a", "b"])


# -- the quarantine, over a real store and a real index ---------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "store.db")
    yield opened
    opened.close()


def row(id: str, seq: int, error: str = "HTTP 400") -> QuarantineRow:
    return QuarantineRow("doc", id, seq, error)


def test_rows_persist_and_follow_the_seq_rules(store: SqliteStore) -> None:
    seen: dict[str, int] = {"b": 7}
    quarantine = Quarantine("c", "v2", store)
    quarantine.add([row("a", 5), row("b", 6)], lambda kind, id: seen.get(id))
    assert [(r.id, r.seq) for r in quarantine.info().records] == [("a", 5)]  # b: a newer write was seen
    quarantine.add([row("a", 3, "older")], lambda kind, id: None)  # an older rejection changes nothing
    quarantine.add([row("a", 9, "newer")], lambda kind, id: None)
    assert [(r.id, r.seq, r.error) for r in quarantine.info().records] == [("a", 9, "newer")]
    quarantine.skip(None)
    quarantine.add([row("a", 9, "again")], lambda kind, id: None)  # rejected again: still skipped
    quarantine.add([row("z", 1)], lambda kind, id: None)
    again = Quarantine("c", "v2", store)  # as after a restart
    assert [(r.id, r.seq, r.error, r.skipped) for r in again.info().records] == [
        ("a", 9, "again", True),
        ("z", 1, "HTTP 400", False),
    ]
    assert (again.open_count(), again.skipped_count()) == (1, 1)
    again.settle({("doc", "a"): 8, ("doc", "z"): 1, ("doc", "unknown"): 4})  # a: 8 is older than 9
    assert [r.id for r in Quarantine("c", "v2", store).info().records] == ["a"]
    events = [e.event for e in store.events("c", "v2")]
    assert (
        events.count("quarantined") == 3  # a at 5, a at 9, z; not the repeated rejection of a at 9
        and "quarantine_skipped" in events
        and "quarantine_resolved" in events
    )


def test_skip_or_retry_of_a_record_not_quarantined_changes_nothing(store: SqliteStore) -> None:
    quarantine = Quarantine("c", "v2", store)
    quarantine.add([row("a", 5)], lambda kind, id: None)
    with pytest.raises(RecordNotFound, match="doc/nope"):
        quarantine.skip([("doc", "a"), ("doc", "nope")])
    assert quarantine.info().open == 1 and not store.quarantined("c", "v2")[0].skipped


def test_retry_writes_only_records_still_at_their_rejected_seq(store: SqliteStore, tmp_path: Path) -> None:
    """Records rewritten or deleted since their rejection are left to the stream (the applier's
    newer write or tombstone): a retry never writes a stale text or brings a deleted record back."""
    store.create_collection("c", _version_row(), {"v1": 100})
    store.write("c", [_rec("a", "fine now"), _rec("b", "b text"), _rec("d", "d text")], [])  # seqs 1, 2, 3
    index = open_index(ExactSpec(), tmp_path / "idx", IndexMeta("c", "v2", "doc", "fp", 32))
    quarantine = Quarantine("c", "v2", store)
    quarantine.add([row("a", 1), row("b", 2), row("d", 3)], lambda kind, id: index.seq_of(id))
    store.write("c", [_rec("b", "b rewritten")], [("doc", "d")])  # b at seq 4, d deleted at 5
    model = HashingModel(dim=32)
    ack = quarantine.retry(
        None,
        lambda keys: store.get_records("c", keys),
        model.encode,
        lambda kind, ids, vectors, seqs, durable=False, texts=None: index.upsert(ids, vectors, seqs),
        lambda kind, id: index.seq_of(id),
    )
    assert (ack.changed, ack.rejected, ack.pending, ack.open) == (1, 0, 2, 2)
    assert set(index.ids()) == {"a"} and index.seq_of("a") == 1
    assert np.allclose(index.get(["a"])["a"], model.encode(["fine now"])[0])
    # the stream applies b's rewrite and d's delete: their quarantine is resolved
    index.upsert(["b"], model.encode(["b rewritten"]), [4])
    index.delete(["d"], [5])
    quarantine.settle({("doc", "b"): 4, ("doc", "d"): 5})
    assert quarantine.info().records == []
    index.close()


def _version_row() -> VersionRow:
    return VersionRow("c", "v1", {"name": "v1", "model": "hashing"}, "ready", 0, 0, None, 1.0)


def _rec(id: str, text: str) -> RecordIn:
    return RecordIn(id=id, text=text)


# -- a hosted model behind a real endpoint -----------------------------------------------------------


@pytest.fixture
def faults() -> Faults:
    return Faults(rejected={REFUSED})


@pytest.fixture
def url(faults: Faults) -> Iterator[str]:
    with endpoint(faults) as base:
        yield base


def test_a_live_version_keeps_serving_while_a_streamed_record_is_quarantined(
    engine: Engine, url: str
) -> None:
    engine.create_collection("c", {"name": "v1", "model": spec(url)})
    first = engine.upsert("c", [{"id": "x", "text": "an accepted first text"}])
    engine.search("c", "an accepted first text", k=1, min_seq=first.seq)  # x is applied before it changes
    ack = engine.upsert(
        "c",
        [{"id": "x", "text": REFUSED}] + [{"id": f"ok{i}", "text": f"accepted text {i}"} for i in range(40)],
    )
    hits = engine.search("c", "accepted text 7", k=1, min_seq=ack.seq).hits  # the batch went on
    assert hits[0].id == "ok7"
    info = engine.describe_version("c", "v1")
    assert (info.state, info.weight, info.quarantined) == ("ready", 100, 1)  # serving stays on
    assert engine.quarantine("c", "v1").records[0].id == "x"
    # x keeps its last accepted vector until its quarantine is resolved
    held = engine.collection("c").get_version("v1").index("doc").get(["x"])["x"]
    assert np.allclose(
        held, engine.collection("c").get_version("v1").model.encode(["an accepted first text"])[0]
    )
    assert_end_state(engine, "c")
    ack = engine.delete("c", "x")  # a delete resolves it, and it stays deleted
    assert engine.collection("c").get_version("v1").wait_applied(ack.seq, 10)
    assert engine.describe_version("c", "v1").quarantined == 0
    assert engine.retry_quarantined("c", "v1").changed == 0
    assert_end_state(engine, "c")


def test_a_quarantined_query_is_a_422_and_other_queries_go_on(engine: Engine, url: str) -> None:
    engine.create_collection("c", {"name": "v1", "model": spec(url)})
    engine.upsert("c", [{"id": "a", "text": "some text"}])
    with pytest.raises(InputRejected) as info:
        engine.search("c", REFUSED, k=1)
    assert info.value.status == 422 and info.value.code == "input_rejected"
    assert engine.search("c", "some text", k=1).hits[0].id == "a"


def test_the_quarantine_survives_a_restart_and_still_holds_the_version_back(tmp_path: Path, url: str) -> None:
    with Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert(
            "c", [{"id": f"d{i}", "text": f"text {i}"} for i in range(20)] + [{"id": "bad", "text": REFUSED}]
        )
        engine.add_version("c", {"name": "v2", "model": spec(url)})
        _wait(lambda: engine.describe_version("c", "v2").quarantined == 1)
        engine.set_traffic("c", {"v1": 100})
    with Engine.open(tmp_path, FAST) as engine:
        v2 = engine.collection("c").get_version("v2")
        v2.checkpoint()
        info = engine.describe_version("c", "v2")
        assert (info.state, info.quarantined) == ("building", 1)
        with pytest.raises(VersionNotReady, match="quarantined"):
            engine.set_traffic("c", {"v1": 50, "v2": 50})
        engine.skip_quarantined("c", "v2", {"records": [{"id": "bad"}]})
        engine.wait_ready("c", "v2", 30)
        assert_end_state(engine, "c")


def test_a_ready_version_without_traffic_takes_none_while_records_are_quarantined(
    engine: Engine, url: str
) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.add_version("c", {"name": "v2", "model": spec(url)})
    engine.wait_ready("c", "v2", 30)
    ack = engine.upsert("c", [{"id": "bad", "text": REFUSED}])
    assert engine.collection("c").get_version("v2").wait_applied(ack.seq, 10)
    with pytest.raises(VersionNotReady, match="1 quarantined record"):
        engine.promote("c", "v2")
    assert engine.traffic("c").weights == {"v1": 100}
    engine.skip_quarantined("c", "v2")
    engine.promote("c", "v2")
    assert engine.traffic("c").weights == {"v2": 100}


def test_quarantine_routes_check_their_input_and_their_role(tmp_path: Path, url: str) -> None:
    keys = "read:r-key,write:w-key,admin:a-key"
    with Engine.open(tmp_path, FAST) as engine, ServerThread(engine, HttpConfig(api_keys=keys)) as server:
        engine.create_collection("c", {"name": "v1", "model": spec(url)})
        engine.upsert("c", [{"id": "bad", "text": REFUSED}, {"id": "good", "text": "fine"}])
        _wait(lambda: engine.describe_version("c", "v1").quarantined == 1)
        base = f"{server.url}/v1/collections/c/versions/v1/quarantine"

        def call(method: str, path: str, key: str, body: object = None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"}
            return httpx.request(method, base + path, json=body, headers=headers, timeout=30)

        assert ok(call("GET", "", "r-key"))["open"] == 1
        error(call("POST", "/retry", "w-key", {}), 403, "forbidden")
        error(call("POST", "/skip", "r-key", {}), 403, "forbidden")
        error(call("POST", "/skip", "a-key", {"records": [{"id": "good"}]}), 404, "record_not_found")
        error(call("POST", "/skip", "a-key", {"records": []}), 422, "invalid_request")
        error(call("POST", "/skip", "a-key", {"ids": ["bad"]}), 422, "invalid_request")
        unknown = f"{server.url}/v1/collections/c/versions/nope/quarantine"
        error(httpx.get(unknown, headers={"Authorization": "Bearer r-key"}), 404, "version_not_found")
        assert ok(call("GET", "", "r-key"))["open"] == 1  # nothing changed
        assert ok(call("POST", "/skip", "a-key", {"records": [{"id": "bad", "kind": "doc"}]}))["skipped"] == 1
        assert ok(call("POST", "/retry", "a-key", {}))["rejected"] == 1  # {}: every record


def _wait(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_quarantined_records_survive_kill_9_and_a_replay_records_them_once(tmp_path: Path, url: str) -> None:
    """A server process killed right after quarantining: on restart the rows are there (they were
    written before the position past them was saved), the replay of the rejected entries adds no
    second row, and the version still waits for them."""
    server = ServerProcess(tmp_path / "data").start()
    try:
        with Client(server.url) as client:
            client.create_collection("c", {"name": "v1", "model": "hashing"})
            client.upsert("c", [{"id": f"d{i}", "text": f"text {i}"} for i in range(30)])
            client.upsert("c", [{"id": "bad", "text": REFUSED}])  # in v2's snapshot: its backfill's
            client.add_version("c", {"name": "v2", "model": spec(url)})
            client.upsert(
                "c", [{"id": "bad2", "text": REFUSED}, {"id": "late", "text": "accepted"}]
            )  # stream
            _wait(lambda: client.describe_version("c", "v2").quarantined == 2)
        server.kill()
        server.start()
        with Client(server.url) as client:
            client.wait_ready("c", "v1", 60)
            records = client.quarantine("c", "v2").records
            assert [(r.id, r.skipped) for r in records] == [("bad", False), ("bad2", False)]
            v2 = client.describe_version("c", "v2")
            assert (v2.state, v2.quarantined) == ("building", 2)
            assert [e.event for e in client.events("c", "v2")].count("quarantined") == 2
            client.skip_quarantined("c", "v2")
            client.wait_ready("c", "v2", 60)
    finally:
        server.stop()
    with Engine.open(tmp_path / "data", FAST) as engine:
        assert_end_state(engine, "c")
