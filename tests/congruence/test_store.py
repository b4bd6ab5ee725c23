"""One behaviour suite run against every ``Store`` backend (the congruence pattern).

Every test goes through the protocol methods of ``embedswitch.store.base`` only (no SQL, no private
attributes), and writes plain frozen dataclasses shaped like ``NewRecord``/``NewInteraction``, so
the very same tests hold any backend to the seam's promises.

Adding a backend is one line in ``BACKENDS``: its URI, e.g. ``"postgresql://localhost/embedswitch"``.
A server backend comes with its own (session) fixture that starts the server, and must give every
test an empty store, as ``tmp_path`` does for SQLite: ``postgresql`` runs on a database of its own
per test (``pg_uri``, ``tests/_postgres.py``). A backend that isn't available here (driver not
installed, server not reachable) must skip with the reason printed, never fail or pass silently;
``Opened`` turns ``ImportError``, ``Unavailable`` and ``ConnectionError`` into such a skip, except
in CI (``CI`` set), where every backend must run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _threads import in_thread

from embedswitch import CollectionExists, CollectionNotFound, RecordNotFound, Unavailable
from embedswitch.filters import parse_filter
from embedswitch.store import Store, open_store
from embedswitch.store.base import BackfillState, Change, Interaction, QuarantineRow, RolloutRow, VersionRow
from embedswitch.store.registry import scheme_of

BACKENDS = ["sqlite", "postgresql"]
"""The URI of every backend the suite runs against (``postgresql``: a fresh database per test)."""


# --- plain data written through the seam ----------------------------------------------------------
@dataclass(frozen=True)
class Rec:
    kind: str
    id: str
    text: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    vector: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Hit:
    user: str
    item: str
    weight: float = 1.0
    ts: float | None = None


def doc(i: int | str, text: str = "hello", kind: str = "doc", **fields: Any) -> Rec:
    return Rec(kind, str(i), f"{text} {i}", fields)


def version(collection: str, name: str = "v1", created_at: float = 1.0, **changes: Any) -> VersionRow:
    spec = {"name": name, "model": {"type": "hashing"}}
    return replace(VersionRow(collection, name, spec, "ready", 0, 0, None, created_at), **changes)


def make(store: Store, name: str = "c", weights: dict[str, int] | None = None) -> str:
    store.create_collection(name, version(name), weights or {"v1": 100})
    return name


# --- fixtures -------------------------------------------------------------------------------------
class Opened:
    """One backend's store at ``uri``, reopenable on the same data (``reopen``)."""

    def __init__(self, uri: str, data_dir: Path) -> None:
        self.uri, self.data_dir = uri, data_dir
        self.store = self._open()

    def _open(self) -> Store:
        try:
            return open_store(self.uri, self.data_dir)
        except (ImportError, Unavailable, ConnectionError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"store backend {scheme_of(self.uri)!r} is not available: {exc}")

    def reopen(self) -> Store:
        self.store.close()
        self.store = self._open()
        return self.store


@pytest.fixture(params=BACKENDS, ids=scheme_of)
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opened]:
    uri = str(request.param)
    if scheme_of(uri) == "postgresql":
        uri = request.getfixturevalue("pg_uri")
    handle = Opened(uri, tmp_path)
    yield handle
    handle.store.close()


@pytest.fixture
def store(opened: Opened) -> Store:
    return opened.store


@pytest.fixture
def reopen(opened: Opened) -> Callable[[], Store]:
    """Close the store and open it again with the same URI and data dir."""
    return opened.reopen


def run_threads(fn: Callable[[int], None], n: int) -> None:
    """Run ``fn(0)`` .. ``fn(n - 1)`` in ``n`` threads at once and wait for them all."""
    with ThreadPoolExecutor(n) as pool:
        for done in [pool.submit(fn, t) for t in range(n)]:
            done.result(timeout=120)  # re-raises a thread's error


# --- collections ----------------------------------------------------------------------------------
def test_create_list_get_delete_collections(store: Store) -> None:
    assert store.list_collections() == [] and store.get_collection("a") is None
    before = time.time()
    make(store, "a")
    make(store, "b")
    assert sorted(row.name for row in store.list_collections()) == ["a", "b"]
    row = store.get_collection("a")
    assert row is not None and row.name == "a" and row.head_seq == 0
    assert before - 1 <= row.created_at <= time.time() + 1
    assert [v.name for v in store.list_versions("a")] == ["v1"]
    store.delete_collection("a")
    assert store.get_collection("a") is None
    assert [row.name for row in store.list_collections()] == ["b"]


def test_creating_an_existing_collection_raises_and_changes_nothing(store: Store) -> None:
    make(store)
    store.write("c", [doc(1)], [])
    with pytest.raises(CollectionExists):
        store.create_collection("c", version("c", "other"), {"other": 100})
    assert [v.name for v in store.list_versions("c")] == ["v1"]
    assert [t.weights for t in store.traffic_history("c")] == [{"v1": 100}]
    assert store.head_seq("c") == 1 and store.count_records("c") == {"doc": 1}


def test_delete_collection_removes_everything_of_that_collection_only(store: Store) -> None:
    for name in ("gone", "kept"):
        make(store, name)
        store.write(name, [doc(1), doc("i1", kind="item")], [])
        store.add_interactions(name, [Hit("u1", "i1")])
        store.add_version(version(name, "v2", created_at=2.0))
        store.set_traffic(name, {"v1": 50, "v2": 50}, "ramp", None)
        store.add_event(name, "v2", "created", {})
        store.add_rollout(name, {"to": "v2"}, {}, "running")
    kept_log = store.read_log("kept", 0, 100)
    store.delete_collection("gone")
    assert store.get_collection("gone") is None and store.head_seq("gone") == 0
    assert store.read_log("gone", 0, 100) == [] and store.count_records("gone") == {}
    assert store.scan_records("gone", 100, None, 100) == []
    assert store.get_records("gone", [("doc", "1")]) == {}
    assert store.list_versions("gone") == [] and store.traffic_history("gone") == []
    assert store.events("gone") == [] and store.rollouts("gone") == []
    assert store.interaction_users("gone") == [] and store.scan_interactions("gone", 100) == []
    assert store.read_log("kept", 0, 100) == kept_log and store.head_seq("kept") == 3
    assert store.count_records("kept") == {"doc": 1, "item": 1}
    assert [v.name for v in store.list_versions("kept")] == ["v1", "v2"]
    assert len(store.traffic_history("kept")) == 2 and len(store.events("kept")) == 1
    assert len(store.rollouts("kept")) == 1 and store.interaction_users("kept") == ["u1"]
    make(store, "gone")  # the name is free again, and starts empty
    assert store.read_log("gone", 0, 100) == [] and store.count_records("gone") == {}


# --- write ----------------------------------------------------------------------------------------
def test_write_assigns_consecutive_seqs_after_the_head(store: Store) -> None:
    make(store)
    ack = store.write("c", [doc(1), doc(2)], [])
    assert (ack.count, ack.changed, ack.seq) == (2, 2, 2)
    ack = store.write("c", [doc(3)], [("doc", "1")])
    assert (ack.count, ack.changed, ack.seq) == (2, 2, 4)
    assert [c.seq for c in store.read_log("c", 0, 10)] == [1, 2, 3, 4]
    row = store.get_collection("c")
    assert store.head_seq("c") == 4 and row is not None and row.head_seq == 4


def test_identical_reupsert_is_accepted_but_not_logged(store: Store) -> None:
    make(store)
    store.write("c", [doc(1, color="red", size=2)], [])
    ack = store.write("c", [doc(1, size=2, color="red")], [])  # same fields, other order
    assert (ack.count, ack.changed, ack.seq) == (1, 0, 1)
    ack = store.write("c", [doc(1, size=2, color="red"), doc(2)], [])
    assert (ack.count, ack.changed, ack.seq) == (2, 1, 2)
    assert [(c.seq, c.id) for c in store.read_log("c", 0, 10)] == [(1, "1"), (2, "2")]
    ack = store.write("c", [doc(1, "changed", size=2, color="red")], [])
    assert (ack.changed, ack.seq) == (1, 3)


def test_delete_of_a_missing_record_applies_nothing(store: Store) -> None:
    make(store)
    store.write("c", [doc(1), doc(2)], [])
    log, records = store.read_log("c", 0, 10), store.get_records("c", [("doc", "1"), ("doc", "2")])
    with pytest.raises(RecordNotFound):
        store.write("c", [doc(3), doc(1, "changed")], [("doc", "2"), ("doc", "missing")])
    assert store.head_seq("c") == 2
    assert store.read_log("c", 0, 10) == log
    assert store.get_records("c", [("doc", "1"), ("doc", "2"), ("doc", "3")]) == records
    assert store.count_records("c") == {"doc": 2}
    assert store.write("c", [doc(3)], []).seq == 3  # and the seqs go on without a gap


def test_write_to_a_missing_collection_raises(store: Store) -> None:
    with pytest.raises(CollectionNotFound):
        store.write("nope", [doc(1)], [])
    with pytest.raises(CollectionNotFound):
        store.add_interactions("nope", [Hit("u", "i")])
    assert store.get_collection("nope") is None and store.head_seq("nope") == 0


def test_fields_round_trip_nested_json_and_unicode(store: Store) -> None:
    make(store)
    nested = {"list": [1, 2.5, None, True, "x"], "deep": {"k": [{"a": []}]}}
    fields = {"title": "Grüße, 世界 🌍", "nested": nested, "n": -3, "empty": {}}
    store.write("c", [Rec("doc", "ü-1", "naïve café ☕\nline two", fields)], [])
    got = store.get_records("c", [("doc", "ü-1")])[("doc", "ü-1")]
    assert (got.kind, got.id, got.text, got.fields) == ("doc", "ü-1", "naïve café ☕\nline two", fields)


def test_write_accepts_any_mapping_as_fields(store: Store) -> None:
    """``NewRecord.fields`` is a ``Mapping``: a read-only one must be accepted like a dict."""
    make(store)
    store.write("c", [Rec("doc", "1", "t", types.MappingProxyType({"a": 1, "b": {"c": [2]}}))], [])
    assert store.get_records("c", [("doc", "1")])[("doc", "1")].fields == {"a": 1, "b": {"c": [2]}}


def test_record_seq_is_the_log_seq_of_its_last_write(store: Store) -> None:
    make(store)
    store.write("c", [doc(1), doc(2)], [])
    store.write("c", [doc(1, "again")], [])
    store.write("c", [doc(1, "again")], [])  # unchanged: keeps its seq
    got = store.get_records("c", [("doc", "1"), ("doc", "2")])
    last = {c.id: c.seq for c in store.read_log("c", 0, 10)}
    assert {key[1]: r.seq for key, r in got.items()} == last == {"1": 3, "2": 2}


# --- the change log -------------------------------------------------------------------------------
def test_read_log_in_seq_order_with_after_and_limit(store: Store) -> None:
    make(store)
    store.write("c", [doc(1), doc(2, kind="item")], [])
    store.write("c", [doc(3)], [("doc", "1")])
    assert store.read_log("c", 0, 10) == [
        Change(1, "upsert", "doc", "1", "hello 1"),
        Change(2, "upsert", "item", "2", "hello 2"),
        Change(3, "upsert", "doc", "3", "hello 3"),
        Change(4, "delete", "doc", "1", None),
    ]
    assert [c.seq for c in store.read_log("c", 1, 2)] == [2, 3]
    assert [c.seq for c in store.read_log("c", 3, 10)] == [4]
    assert store.read_log("c", 4, 10) == [] and store.read_log("unknown", 0, 10) == []


def test_record_vectors_are_kept_in_the_log_and_the_records(store: Store) -> None:
    """A record's own vector is stored as float32 bytes with it and with its log entry (so a
    version replays it); the same vector again is no change, another one is."""
    make(store)
    vector = (0.5, -0.25, 1.0 / 3)
    blob = np.asarray(vector, dtype=np.float32).tobytes()
    store.write("c", [Rec("doc", "v", None, {}, vector), doc(2)], [])
    assert store.write("c", [Rec("doc", "v", None, {}, vector)], []).changed == 0
    store.write("c", [Rec("doc", "w", "text too", {}, (1.0, 2.0, 3.0))], [])
    log = store.read_log("c", 0, 10)
    assert log[0] == Change(1, "upsert", "doc", "v", "", blob) and log[1].vector is None
    assert np.frombuffer(log[2].vector or b"", dtype=np.float32).tolist() == [1.0, 2.0, 3.0]
    got = store.get_records("c", [("doc", "v"), ("doc", "2")])
    assert got[("doc", "v")].vector == blob and got[("doc", "v")].text == ""
    assert got[("doc", "2")].vector is None
    scanned = {r.id: r.vector for r in store.scan_records("c", 10, None, 10)}
    assert scanned == {"v": blob, "2": None, "w": log[2].vector}
    assert store.write("c", [Rec("doc", "v", None, {}, (0.5, 0.0, 0.0))], []).changed == 1


def test_prune_log_removes_entries_up_to_a_seq(store: Store) -> None:
    make(store)
    store.write("c", [doc(i) for i in range(5)], [])
    assert store.prune_log("c", 3) == 3
    assert [c.seq for c in store.read_log("c", 0, 10)] == [4, 5]
    assert store.prune_log("c", 3) == 0
    assert store.head_seq("c") == 5 and store.count_records("c") == {"doc": 5}
    assert store.write("c", [doc(9)], []).seq == 6


# --- reading records ------------------------------------------------------------------------------
def test_scan_records_pages_in_key_order_up_to_a_seq(store: Store) -> None:
    make(store)
    store.write("c", [doc(i, kind=kind) for kind in ("item", "doc") for i in range(4)], [])  # 1..8
    store.write("c", [doc(5, kind="doc"), doc(1, "changed", kind="doc")], [("item", "2")])  # 9..11
    snapshot = [("doc", "0"), ("doc", "2"), ("doc", "3"), ("item", "0"), ("item", "1"), ("item", "3")]
    pages, after = [], None
    while page := store.scan_records("c", 8, after, 4):
        pages.append([(r.kind, r.id) for r in page])
        after = (page[-1].kind, page[-1].id)
    assert pages == [snapshot[:4], snapshot[4:]]
    assert all(r.seq <= 8 for r in store.scan_records("c", 8, None, 100))
    now = [(r.kind, r.id) for r in store.scan_records("c", 11, None, 100)]
    assert now == [("doc", str(i)) for i in (0, 1, 2, 3, 5)] + [("item", "0"), ("item", "1"), ("item", "3")]
    assert [r.id for r in store.scan_records("c", 11, ("doc", "3"), 2)] == ["5", "0"]


def test_get_records_across_kinds_skips_missing_keys(store: Store) -> None:
    make(store)
    store.write("c", [doc(1, kind="user"), doc(1, kind="item"), doc(2)], [])
    got = store.get_records("c", [("user", "1"), ("item", "1"), ("doc", "1"), ("doc", "2"), ("x", "9")])
    assert set(got) == {("user", "1"), ("item", "1"), ("doc", "2")}
    assert got[("item", "1")].kind == "item" and got[("doc", "2")].text == "hello 2"
    assert store.get_records("c", []) == {}


def test_get_fields_of_one_kind_skips_missing_ids(store: Store) -> None:
    make(store)
    store.write("c", [doc(1, kind="item", team="a", n=[1]), doc(2, note="ß"), doc(3)], [])
    assert store.get_fields("c", "item", ["1", "2", "9"]) == {"1": {"team": "a", "n": [1]}}
    assert store.get_fields("c", "doc", ["3", "2"]) == {"2": {"note": "ß"}, "3": {}}
    assert store.get_fields("c", "doc", []) == {} and store.get_fields("gone", "doc", ["2"]) == {}


def test_record_ids_and_pages_filter_on_nested_fields(store: Store) -> None:
    """A dotted field is a path through objects only: never an index into an array, never the
    top-level key that holds the dot."""
    make(store)
    recs = [
        doc(1, meta={"lang": "en", "year": 2021, "0": {"x": 1}}),
        doc(2, meta={"lang": "nl", "year": 2019}),
        doc(3, meta=[{"lang": "en"}, {"x": 1}], tags=["en"]),
        doc(4, meta="en", **{"meta.lang": "en"}),
        doc(5, meta={"lang": "en"}, kind="item"),
    ]
    store.write("c", recs, [])
    cases = {
        '{"meta.lang": "en"}': {"1"},
        '{"meta.year": {"gte": 2020}}': {"1"},
        '{"meta.lang": {"in": ["en", "nl"]}, "not": {"meta.year": {"lt": 2020}}}': {"1"},
        '{"meta.0.x": 1}': {"1"},
        '{"meta.1.x": {"exists": true}}': set(),
        '{"tags": "en"}': set(),
        '{"meta.lang": {"exists": false}}': {"3", "4"},
    }
    for raw, ids in cases.items():
        where = parse_filter(json.loads(raw))
        assert store.record_ids("c", "doc", where) == ids, raw
        assert [r.id for r in store.list_records("c", "doc", None, 10, where)] == sorted(ids), raw


def test_count_records_per_kind(store: Store) -> None:
    make(store)
    assert store.count_records("c") == {}
    store.write("c", [doc(i) for i in range(3)] + [doc(i, kind="item") for i in range(2)], [])
    store.write("c", [], [("doc", "0")])
    assert store.count_records("c") == {"doc": 2, "item": 2}
    store.write("c", [], [("item", "0"), ("item", "1")])
    assert store.count_records("c") == {"doc": 2}


# --- waiting --------------------------------------------------------------------------------------
def test_head_seq_is_zero_for_unknown_and_empty_collections(store: Store) -> None:
    assert store.head_seq("unknown") == 0
    make(store)
    assert store.head_seq("c") == 0
    store.write("c", [doc(1)], [])
    assert store.head_seq("c") == 1


def test_wait_for_log_returns_at_once_when_the_head_is_past(store: Store) -> None:
    make(store)
    store.write("c", [doc(1), doc(2)], [])
    start = time.monotonic()
    assert store.wait_for_log("c", 1, 30) is True
    assert time.monotonic() - start < 5


def test_wait_for_log_returns_true_after_a_write_from_another_thread(store: Store) -> None:
    make(store)
    store.write("c", [doc(1)], [])
    join = in_thread(lambda: store.wait_for_log("c", 1, 30))
    time.sleep(0.1)
    store.write("c", [doc(2)], [])
    result, elapsed = join(15)
    assert result is True and elapsed < 10


def test_wait_for_log_times_out_without_a_write(store: Store) -> None:
    make(store)
    store.write("c", [doc(1)], [])
    start = time.monotonic()
    assert store.wait_for_log("c", 1, 0.2) is False
    assert 0.15 <= time.monotonic() - start < 5


def test_wake_ends_a_wait_for_log_early(store: Store) -> None:
    make(store)
    join = in_thread(lambda: store.wait_for_log("c", 0, 30))
    done = threading.Event()

    def waker() -> None:  # until the waiter is done: it may not be waiting yet at the first wake
        while not done.is_set():
            store.wake("c")
            time.sleep(0.05)

    threading.Thread(target=waker, daemon=True).start()
    try:
        result, elapsed = join(15)
    finally:
        done.set()
    assert result is False and elapsed < 10


def test_wait_applied_true_once_published(store: Store) -> None:
    make(store)
    assert store.wait_applied("c", "v1", 5, 0.1) is False
    store.publish_applied("c", "v1", 3)
    assert store.wait_applied("c", "v1", 3, 5) is True
    assert store.wait_applied("c", "v1", 2, 5) is True
    start = time.monotonic()
    assert store.wait_applied("c", "v1", 5, 0.2) is False
    assert 0.15 <= time.monotonic() - start < 5
    assert store.wait_applied("c", "other", 1, 0.05) is False


def test_wait_applied_wakes_on_a_publish_from_another_thread(store: Store) -> None:
    make(store)
    join = in_thread(lambda: store.wait_applied("c", "v1", 5, 30))
    time.sleep(0.1)
    store.publish_applied("c", "v1", 4)
    store.publish_applied("c", "v1", 5)
    result, elapsed = join(15)
    assert result is True and elapsed < 10


# --- interactions ---------------------------------------------------------------------------------
def items(store: Store, *ids: str) -> None:
    store.write("c", [Rec("item", i, f"item {i}") for i in ids], [])


def test_add_interactions_logs_interact_entries_for_the_user(store: Store) -> None:
    make(store)
    items(store, "a", "b")  # seqs 1, 2
    ack = store.add_interactions("c", [Hit("u1", "a", 2.0, 10.0), Hit("u2", "b")])
    assert (ack.count, ack.changed, ack.seq) == (2, 2, 4)
    interacts = [Change(3, "interact", "user", "u1"), Change(4, "interact", "user", "u2")]
    assert store.read_log("c", 2, 10) == interacts
    assert store.head_seq("c") == 4


def test_interactions_on_missing_items_store_nothing(store: Store) -> None:
    make(store)
    items(store, "a")
    store.write("c", [Rec("doc", "b", "not an item")], [])
    log = store.read_log("c", 0, 10)
    for bad in ("missing", "b"):
        with pytest.raises(RecordNotFound):
            store.add_interactions("c", [Hit("u1", "a"), Hit("u1", bad)])
    assert store.head_seq("c") == 2 and store.read_log("c", 0, 10) == log
    assert store.seen_items("c", "u1") == set() and store.interaction_users("c") == []


def test_seen_items_histories_and_users(store: Store) -> None:
    make(store)
    items(store, "a", "b", "c")
    before = time.time()
    store.add_interactions("c", [Hit("zed", "b", 1.0, 5.0), Hit("amy", "a", 3.0, 6.0), Hit("zed", "a")])
    after = time.time()
    store.add_interactions("c", [Hit("zed", "b", 0.5, 7.0)])
    assert store.seen_items("c", "zed") == {"a", "b"} and store.seen_items("c", "nobody") == set()
    histories = store.user_histories("c", ["zed", "amy", "nobody"])
    assert set(histories) == {"zed", "amy"}
    assert histories["amy"] == [("a", 3.0, 6.0)]
    (first, (item, weight, ts), last) = histories["zed"]
    assert first == ("b", 1.0, 5.0) and last == ("b", 0.5, 7.0)
    assert (item, weight) == ("a", 1.0) and before - 1 <= ts <= after + 1  # ts None: now
    assert store.users_of_items("c", ["a"]) == {"amy", "zed"}
    assert store.users_of_items("c", ["b", "c"]) == {"zed"}
    assert store.users_of_items("c", ["c"]) == set()
    assert store.interaction_users("c") == ["amy", "zed"]


def test_scan_interactions_up_to_a_seq_without_deleted_items(store: Store) -> None:
    make(store)
    items(store, "a", "b")  # 1, 2
    store.add_interactions("c", [Hit("u1", "a", 1.0, 1.0), Hit("u2", "b", 2.0, 2.0)])  # 3, 4
    store.add_interactions("c", [Hit("u1", "b", 3.0, 3.0)])  # 5
    first, second = Interaction("u1", "a", 1.0, 1.0), Interaction("u2", "b", 2.0, 2.0)
    assert store.scan_interactions("c", 4) == [first, second]
    assert len(store.scan_interactions("c", 5)) == 3
    store.write("c", [], [("item", "b")])
    assert store.scan_interactions("c", 6) == [first]


def test_popular_items_by_total_weight_ties_by_id(store: Store) -> None:
    make(store)
    items(store, "a", "b", "c", "d", "e")
    weights = {"c": [1.0, 2.0], "b": [3.0], "a": [3.0], "d": [5.0], "e": [0.5]}
    store.add_interactions("c", [Hit(f"u{w}", i, w) for i, ws in weights.items() for w in ws])
    assert store.popular_items("c", 10) == ["d", "a", "b", "c", "e"]
    assert store.popular_items("c", 2) == ["d", "a"]
    store.write("c", [], [("item", "d")])
    assert store.popular_items("c", 10) == ["a", "b", "c", "e"]


# --- versions -------------------------------------------------------------------------------------
def test_versions_are_listed_by_created_at(store: Store) -> None:
    make(store)  # v1 at 1.0
    v3 = version("c", "v3", created_at=3.0, state="building", spec={"name": "v3", "x": [1, {"y": None}]})
    v2 = version("c", "v2", created_at=2.0, created_seq=4, applied_seq=4, backfill=BackfillState(4, 2))
    store.add_version(v3)
    store.add_version(v2)
    assert store.list_versions("c") == [version("c"), v2, v3]
    assert store.list_versions("unknown") == []


def test_save_version_progress_round_trips(store: Store) -> None:
    make(store)
    store.add_version(version("c", "v2", created_at=2.0, state="building", backfill=BackfillState(5, 3)))
    state = BackfillState(5, 3, 2, ("doc", "x"), finished=False, awaiting_vectors=True)

    def progress() -> tuple[int, BackfillState | None, str]:
        v2 = store.list_versions("c")[1]
        return v2.applied_seq, v2.backfill, v2.state

    store.save_version_progress("c", "v2", 9, state)
    assert progress() == (9, state, "building")  # the cursor comes back a tuple
    done = BackfillState(5, 3, 3, ("item", "z"), finished=True)
    store.save_version_progress("c", "v2", 10, done, "ready")
    assert progress() == (10, done, "ready")
    store.save_version_progress("c", "v2", 11, None)  # None keeps the state, clears the backfill
    assert progress() == (11, None, "ready")
    assert store.list_versions("c")[0] == version("c")  # the other version is untouched


def test_delete_version(store: Store) -> None:
    make(store)
    store.add_version(version("c", "v2", created_at=2.0))
    store.quarantine("c", "v2", [QuarantineRow("doc", "1", 1, "rejected")])
    store.quarantine("c", "v1", [QuarantineRow("doc", "1", 1, "rejected")])
    store.delete_version("c", "v2")
    assert [v.name for v in store.list_versions("c")] == ["v1"]
    assert store.quarantined("c", "v2") == [] and len(store.quarantined("c", "v1")) == 1


# --- quarantined records --------------------------------------------------------------------------
def test_quarantine_rows_replace_per_record_and_survive_a_reopen(
    store: Store, reopen: Callable[[], Store]
) -> None:
    make(store)
    make(store, "other")
    before = time.time()
    store.quarantine(
        "c", "v1", [QuarantineRow("doc", "b", 4, "HTTP 400"), QuarantineRow("item", "a", 2, "x")]
    )
    store.quarantine("c", "v1", [QuarantineRow("doc", "b", 7, "HTTP 422", at=123.0)])
    store.quarantine("other", "v1", [QuarantineRow("doc", "z", 1, "y")])
    store = reopen()
    rows = store.quarantined("c", "v1")
    assert [(r.kind, r.id, r.seq, r.error, r.skipped) for r in rows] == [
        ("doc", "b", 7, "HTTP 422", False),
        ("item", "a", 2, "x", False),
    ]
    assert rows[0].at == 123.0 and rows[1].at >= before  # a row without a time gets now
    assert store.quarantined("c", "v2") == [] and len(store.quarantined("other", "v1")) == 1


def test_unquarantine_drops_only_rows_at_or_below_the_seq(store: Store) -> None:
    make(store)
    store.quarantine("c", "v1", [QuarantineRow("doc", str(i), 5, "e") for i in range(3)])
    gone = store.unquarantine("c", "v1", [("doc", "0", 5), ("doc", "1", 4), ("doc", "2", 9), ("doc", "9", 9)])
    assert gone == 2
    assert [r.id for r in store.quarantined("c", "v1")] == ["1"]


def test_skip_marks_rows_once_and_a_collection_delete_drops_them(store: Store) -> None:
    make(store)
    store.quarantine("c", "v1", [QuarantineRow("doc", "a", 1, "e"), QuarantineRow("doc", "b", 2, "e")])
    assert store.skip_quarantined("c", "v1", [("doc", "a"), ("doc", "nope")]) == 1
    assert store.skip_quarantined("c", "v1", [("doc", "a")]) == 0
    assert [(r.id, r.skipped) for r in store.quarantined("c", "v1")] == [("a", True), ("b", False)]
    store.delete_collection("c")
    assert store.quarantined("c", "v1") == []


# --- traffic, events, rollouts --------------------------------------------------------------------
def test_traffic_assignments_history_and_parent(store: Store) -> None:
    make(store, "c", {"v1": 100})
    make(store, "other", {"v1": 100})
    (first,) = store.traffic_history("c")
    assert first.weights == {"v1": 100} and first.parent is None
    second = store.set_traffic("c", {"v1": 50, "v2": 50}, "ramp", None)
    third = store.set_traffic("c", {"v1": 100}, "rollback", second.id)
    assert first.id < second.id < third.id
    assert (third.weights, third.reason, third.parent) == ({"v1": 100}, "rollback", second.id)
    assert store.traffic_row("c", third.id) == third and store.traffic_row("c", second.id) == second
    assert store.traffic_row("c", 999) is None
    assert [t.id for t in store.traffic_history("c")] == [third.id, second.id, first.id]
    assert store.traffic_history("c", limit=2) == [third, second]
    assert store.set_traffic("other", {"v1": 100}, "again", None).id == second.id  # ids per collection
    assert first.created_at <= second.created_at <= third.created_at


def test_events_newest_first_by_version_with_limit(store: Store) -> None:
    make(store)
    make(store, "other")
    store.add_event("c", "v1", "created", {"n": 1})
    store.add_event("c", None, "traffic", {"weights": {"v1": 100}, "why": ["ramp", "ü"]})
    store.add_event("c", "v2", "backfill", {"done": 3, "ok": True, "none": None})
    store.add_event("other", "v1", "created", {})
    newest, middle, oldest = store.events("c")
    assert [e.event for e in (newest, middle, oldest)] == ["backfill", "traffic", "created"]
    assert (newest.version, newest.detail) == ("v2", {"done": 3, "ok": True, "none": None})
    assert (middle.version, middle.detail) == (None, {"weights": {"v1": 100}, "why": ["ramp", "ü"]})
    assert [e.event for e in store.events("c", version="v1")] == ["created"]
    assert [e.event for e in store.events("c", limit=2)] == ["backfill", "traffic"]
    assert newest.id > middle.id > oldest.id and newest.at >= middle.at >= oldest.at > 0


def test_prune_events_keeps_the_newest_within_the_retention(store: Store) -> None:
    make(store)
    make(store, "other")
    for n in range(10):
        store.add_event("c", "v1", "step", {"n": n})
    store.add_event("other", None, "created", {})
    assert store.prune_events("c", keep=4, before=0.0) == 6
    assert [e.detail["n"] for e in store.events("c")] == [9, 8, 7, 6]
    assert store.prune_events("c", keep=100, before=time.time() + 1) == 4  # all older than "before"
    assert store.events("c") == [] and len(store.events("other")) >= 1


def test_compact_keeps_everything(store: Store) -> None:
    make(store)
    store.write("c", [Rec("doc", "a", "alpha")], [])
    store.compact()
    assert store.get_records("c", [("doc", "a")])[("doc", "a")].text == "alpha"


def test_rollouts_ids_save_and_newest_first(store: Store) -> None:
    make(store)
    make(store, "other")
    first = store.add_rollout("c", {"to": "v2", "steps": [10, 50]}, {"step": 0}, "running")
    second = store.add_rollout("c", {"to": "v3"}, {}, "running")
    assert (first.id, second.id, store.add_rollout("other", {}, {}, "running").id) == (1, 2, 1)
    spec, at = {"to": "v2", "steps": [10, 50]}, first.created_at
    assert first == RolloutRow("c", 1, spec, {"step": 0}, "running", at, at) == store.rollout("c", 1)
    time.sleep(0.02)
    state = {"step": 2, "why": {"p": 0.01}}
    store.save_rollout("c", 1, state, "completed")
    saved = store.rollout("c", 1)
    assert saved is not None and saved.updated_at > at
    assert saved == RolloutRow("c", 1, spec, state, "completed", at, saved.updated_at)
    assert [r.id for r in store.rollouts("c")] == [2, 1] and store.rollouts("c", limit=1) == [second]
    assert store.rollout("c", 99) is None and store.rollout("unknown", 1) is None


# --- durability and concurrency -------------------------------------------------------------------
def test_everything_survives_close_and_reopen(store: Store, reopen: Callable[[], Store]) -> None:
    make(store)
    store.write("c", [doc(1, tags=["x"]), doc(2), doc("i", kind="item")], [])
    store.write("c", [], [("doc", "2")])
    store.add_interactions("c", [Hit("u", "i", 2.0, 3.0)])
    store.add_version(version("c", "v2", created_at=2.0, backfill=BackfillState(3, 1)))
    store.save_version_progress("c", "v2", 4, BackfillState(3, 1, 1, ("doc", "1"), True), "ready")
    store.set_traffic("c", {"v1": 50, "v2": 50}, "ramp", store.traffic_history("c")[0].id)
    store.add_event("c", "v2", "ready", {"at": [1, 2]})
    store.save_rollout("c", store.add_rollout("c", {"to": "v2"}, {}, "running").id, {"s": 1}, "done")

    def everything(s: Store) -> dict[str, Any]:
        return {
            "collections": s.list_collections(),
            "head": s.head_seq("c"),
            "log": s.read_log("c", 0, 100),
            "records": s.scan_records("c", 100, None, 100),
            "counts": s.count_records("c"),
            "interactions": s.scan_interactions("c", 100),
            "versions": s.list_versions("c"),
            "traffic": s.traffic_history("c"),
            "events": s.events("c"),
            "rollouts": s.rollouts("c"),
        }

    before = everything(store)
    assert before["head"] == 5 and len(before["log"]) == 5 and len(before["rollouts"]) == 1
    assert everything(reopen()) == before
    again = reopen()  # and once more, from a store that was itself reopened
    assert again.write("c", [doc(7)], []).seq == 6  # seqs go on from the durable head


def test_concurrent_writers_get_every_seq_once_in_order(store: Store) -> None:
    make(store)
    threads, per_thread = 8, 50
    acks: list[int] = []  # list.append is atomic

    def writer(t: int) -> None:
        for i in range(per_thread):
            acks.append(store.write("c", [doc(f"{t}-{i}")], []).seq)

    run_threads(writer, threads)
    total = threads * per_thread
    assert sorted(acks) == list(range(1, total + 1))
    log = store.read_log("c", 0, total + 10)
    assert [c.seq for c in log] == list(range(1, total + 1)) and store.head_seq("c") == total
    assert {c.id for c in log} == {f"{t}-{i}" for t in range(threads) for i in range(per_thread)}
    assert store.count_records("c") == {"doc": total}
    got = store.get_records("c", [("doc", c.id) for c in log])
    assert {r.id: r.seq for r in got.values()} == {c.id: c.seq for c in log}


def test_a_reader_never_sees_a_gap_while_writers_write(store: Store) -> None:
    make(store)
    stop = threading.Event()
    gaps: list[tuple[int, list[int]]] = []

    def reader() -> None:
        after = 0
        while not stop.is_set() or after < store.head_seq("c"):
            seqs = [c.seq for c in store.read_log("c", after, 1000)]
            if seqs != list(range(after + 1, after + 1 + len(seqs))):
                gaps.append((after, seqs))
                return
            after = seqs[-1] if seqs else after

    def writer(t: int) -> None:
        for i in range(40):
            store.write("c", [doc(f"{t}-{i}"), doc(f"{t}-{i}b")], [])

    watcher = threading.Thread(target=reader)
    watcher.start()
    run_threads(writer, 4)
    stop.set()
    watcher.join(60)
    assert gaps == [] and store.head_seq("c") == 320
