import threading

import pytest

from embedswitch import CollectionExists, CollectionNotFound, RecordNotFound
from embedswitch.specs import RecordIn
from embedswitch.store.base import BackfillState, VersionRow
from embedswitch.store.sqlite import SqliteStore


def _row(name: str = "v1") -> VersionRow:
    return VersionRow("c", name, {"name": name, "model": {"type": "hashing"}}, "ready", 0, 0, None, 1.0)


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "db.sqlite")
    s.create_collection("c", _row(), {"v1": 100})
    yield s
    s.close()


def rec(i: int, text: str = "hello", kind: str = "doc") -> RecordIn:
    return RecordIn(id=str(i), text=f"{text} {i}", kind=kind)


def test_write_assigns_consecutive_seqs_and_logs(store: SqliteStore) -> None:
    ack = store.write("c", [rec(1), rec(2)], [])
    assert (ack.count, ack.changed, ack.seq) == (2, 2, 2)
    ack = store.write("c", [], [("doc", "1")])
    assert ack.seq == 3
    log = store.read_log("c", 0, 10)
    assert [(c.seq, c.op, c.id) for c in log] == [(1, "upsert", "1"), (2, "upsert", "2"), (3, "delete", "1")]
    assert store.read_log("c", 2, 10)[0].seq == 3
    assert store.count_records("c") == {"doc": 1}


def test_identical_upsert_is_not_logged(store: SqliteStore) -> None:
    store.write("c", [rec(1)], [])
    ack = store.write("c", [rec(1), rec(2)], [])
    assert (ack.changed, ack.seq) == (1, 2)


def test_batch_is_all_or_nothing(store: SqliteStore) -> None:
    store.write("c", [rec(1)], [])
    with pytest.raises(RecordNotFound):
        store.write("c", [], [("doc", "1"), ("doc", "missing")])
    assert store.get_collection("c").head_seq == 1
    assert store.count_records("c") == {"doc": 1}
    assert len(store.read_log("c", 0, 10)) == 1


def test_kinds_have_separate_ids(store: SqliteStore) -> None:
    store.write("c", [rec(1, kind="user"), rec(1, kind="item")], [])
    got = store.get_records("c", [("user", "1"), ("item", "1"), ("doc", "1")])
    assert set(got) == {("user", "1"), ("item", "1")}


def test_scan_records_is_a_snapshot_in_key_order(store: SqliteStore) -> None:
    store.write("c", [rec(i) for i in range(10)], [])  # seqs 1..10
    store.write("c", [rec(3, "changed")], [])  # seq 11: excluded from a scan up to 10
    page = store.scan_records("c", 10, None, 4)
    assert [r.id for r in page] == ["0", "1", "2", "4"]
    rest = store.scan_records("c", 10, ("doc", "4"), 100)
    assert [r.id for r in rest] == ["5", "6", "7", "8", "9"]


def test_duplicate_and_unknown_collection(store: SqliteStore) -> None:
    with pytest.raises(CollectionExists):
        store.create_collection("c", _row(), {"v1": 100})
    with pytest.raises(CollectionNotFound):
        store.write("nope", [rec(1)], [])


def test_version_progress_and_traffic_history(store: SqliteStore) -> None:
    row = VersionRow(
        "c",
        "v2",
        {"name": "v2", "model": {"type": "hashing"}},
        "building",
        5,
        5,
        BackfillState(upto_seq=5, total=3),
        2.0,
    )
    store.add_version(row)
    store.save_version_progress("c", "v2", 9, BackfillState(5, 3, 2, ("doc", "x"), False))
    (v1, v2) = store.list_versions("c")
    assert (v2.applied_seq, v2.backfill.cursor, v2.state) == (9, ("doc", "x"), "building")
    store.save_version_progress("c", "v2", 10, BackfillState(5, 3, 3, ("doc", "z"), True), "ready")
    assert store.list_versions("c")[1].state == "ready"
    first = store.traffic_history("c")[0]
    second = store.set_traffic("c", {"v1": 50, "v2": 50}, "ramp", first.id)
    assert store.traffic_row("c", second.id).parent == first.id
    assert [t.id for t in store.traffic_history("c")] == [second.id, first.id]


def test_prune_log(store: SqliteStore) -> None:
    store.write("c", [rec(i) for i in range(5)], [])
    assert store.prune_log("c", 3) == 3
    assert [c.seq for c in store.read_log("c", 0, 10)] == [4, 5]


def test_concurrent_writers_never_share_a_seq(store: SqliteStore) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        for i in range(25):
            ack = store.write("c", [rec(t * 1000 + i)], [])
            with lock:
                seqs.append(ack.seq)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seqs) == list(range(1, 201))
    assert [c.seq for c in store.read_log("c", 0, 1000)] == list(range(1, 201))
