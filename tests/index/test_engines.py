"""What the engine indexes promise beyond the seam suite: Qdrant holds the seq guard itself (its
conditional update, honoured by qdrant-client's local mode too), a tombstone is a vectorless point,
Milvus's ledger settles a write a crash cut short (in SQLite, and in PostgreSQL as with a shared
store: settled by the next write, fenced, committed before Milvus is written), ids of any shape,
where each type may be placed, and the ``pip install`` a missing client package needs. Both run
their real embedded modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _indexes import META, require_engine, unit
from _pg_host import PgHost

from embedswitch._errors import InvalidRequest, LeaseLost
from embedswitch.index import _engines, index_spec, open_index
from embedswitch.index.registry import check_placement, stored_kinds
from embedswitch.index.specs import MilvusSpec

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def qdrant() -> object:
    require_engine("qdrant")
    from embedswitch.index import qdrant

    return qdrant


@pytest.fixture
def milvus() -> object:
    require_engine("milvus")
    from embedswitch.index import milvus

    return milvus


def test_qdrant_itself_refuses_an_older_write(qdrant: object, tmp_path: Path) -> None:
    """The write below skips embedswitch's own read of the stored seqs, as a racing writer in
    another process would: Qdrant's ``update_filter`` still keeps the newer vector, and inserts an
    id it does not hold."""
    from qdrant_client import models as qm

    index = open_index(index_spec({"type": "qdrant"}), tmp_path / "idx", META)
    v = unit(3, 1)
    index.upsert(["a"], v[:1], [9])

    def send(id_: str, vector: np.ndarray, seq: int) -> None:
        payload = {"id": id_, "seq": seq, "live": True}
        point = qm.PointStruct(id=qdrant.point_id(id_), vector={"v": vector.tolist()}, payload=payload)  # type: ignore[attr-defined]
        index._send([point])  # type: ignore[attr-defined]

    send("a", v[1], 5)
    np.testing.assert_array_equal(index.get(["a"])["a"], v[0])
    assert index.seq_of("a") == 9
    send("a", v[1], 10)
    np.testing.assert_array_equal(index.get(["a"])["a"], v[1])
    send("b", v[2], 3)
    assert sorted(index.ids()) == ["a", "b"]
    index.close()


def test_a_qdrant_tombstone_is_a_vectorless_point(qdrant: object, tmp_path: Path) -> None:
    index = open_index(index_spec({"type": "qdrant"}), tmp_path / "idx", META)
    index.upsert(["a", "b"], unit(2), [1, 1])
    assert index.delete(["a"], [2]) == 1
    (record,) = index._client.retrieve(index.name, [qdrant.point_id("a")], with_vectors=True)  # type: ignore[attr-defined]
    assert record.vector == {} and record.payload == {"id": "a", "seq": 2, "live": False}
    assert [id_ for id_, _ in index.search(unit(1), 5)[0]] == ["b"]
    index.close()


@pytest.mark.parametrize("index_type", ["qdrant", "milvus"])
def test_ids_of_any_shape(index_type: str, tmp_path: Path) -> None:
    """Quotes, backslashes, newlines and non-ASCII never reach an engine's expressions."""
    require_engine(index_type)
    index = open_index(index_spec({"type": index_type}), tmp_path / "idx", META)
    ids = ['say "hi"', "back\\slash", "new\nline", "\x01ctl", "é" * 256, "it's"]
    vecs = unit(len(ids), 4)
    assert index.upsert(ids, vecs, [1] * len(ids)) == len(ids)
    assert sorted(index.get(ids)) == sorted(ids)
    hits = index.search(vecs[:1], 3, exclude=ids[1:3])[0]
    assert hits[0][0] == ids[0] and not {id_ for id_, _ in hits} & set(ids[1:3])
    assert index.delete(ids[:2], [2, 2]) == 2
    assert sorted(index.ids()) == sorted(ids[2:])
    assert stored_kinds(index_spec({"type": index_type}), tmp_path, None, "docs", "v1") == ["idx"]
    index.close()


def test_milvus_settles_a_write_cut_short(milvus: object, tmp_path: Path) -> None:
    """A crash after the ledger recorded a write and before Milvus took it (or before the ledger
    confirmed it): at the next open each unconfirmed row is what Milvus holds, so the replay of
    that write passes the guard again."""
    index = open_index(index_spec({"type": "milvus"}), tmp_path / "idx", META)
    v = unit(4, 2)
    index.upsert(["kept", "gone", "new"], v[:3], [1, 1, 1])
    index.delete(["gone"], [2])
    ledger = index._ledger  # type: ignore[attr-defined]
    # cut short: recorded, never sent
    ledger.record([("kept", 7, True), ("gone", 8, True), ("never", 9, True), ("new", 10, False)])
    index.close()

    again = open_index(index_spec({"type": "milvus"}), tmp_path / "idx", META)
    assert again._ledger.unconfirmed() == []  # type: ignore[attr-defined]
    # Milvus holds "kept" and "new" at seq 1; "gone" goes back to its tombstone; "never" is unknown
    assert [again.seq_of(i) for i in ("kept", "gone", "never", "new")] == [1, 2, None, 1]
    assert sorted(again.ids()) == ["kept", "new"]
    assert again.upsert(["kept", "gone", "never"], v[1:4], [7, 8, 9]) == 3  # the replay lands
    assert again.upsert(["gone"], v[:1], [2]) == 0  # the tombstone still guards
    np.testing.assert_array_equal(again.get(["kept"])["kept"], v[1])
    again.close()


def test_placement_on_a_shared_store() -> None:
    check_placement(index_spec({"type": "qdrant"}), has_database=False)
    check_placement(index_spec({"type": "qdrant", "url": "http://qdrant:6333"}), has_database=True)
    with pytest.raises(InvalidRequest, match='give the qdrant index a "url"'):
        check_placement(index_spec({"type": "qdrant"}), has_database=True)
    check_placement(index_spec({"type": "milvus", "uri": "http://milvus:19530"}), has_database=True)
    with pytest.raises(InvalidRequest, match='runs milvus-lite.*give the milvus index a "uri"'):
        check_placement(index_spec({"type": "milvus"}), has_database=True)


# -- milvus with its ledger in PostgreSQL (milvus-lite as the engine: one process) ---------------


@pytest.fixture
def pg_host(pg_uri: str) -> Iterator[PgHost]:
    found = PgHost(pg_uri)
    yield found
    found.close()


def test_a_shared_ledger_is_settled_by_the_next_write_not_at_open(
    milvus: object, tmp_path: Path, pg_host: PgHost
) -> None:
    """Another process may be writing when one opens the index, so opening leaves unconfirmed rows
    alone; the next write (only the version's leader writes) settles them to what Milvus holds."""
    from embedswitch.index.milvus import MilvusIndex

    index = MilvusIndex.open(META, tmp_path / "idx", None, pg_host)
    v = unit(3, 4)
    index.upsert(["kept", "gone"], v[:2], [1, 1])
    index._ledger.record([("kept", 7, True), ("gone", 8, False), ("never", 9, True)])  # type: ignore[attr-defined]
    index.close()
    again = MilvusIndex.open(META, tmp_path / "idx", None, pg_host)
    assert len(again._ledger.unconfirmed()) == 3  # type: ignore[attr-defined]
    assert again.upsert(["other"], v[2:], [10]) == 1
    assert again._ledger.unconfirmed() == []  # type: ignore[attr-defined]
    assert [again.seq_of(i) for i in ("kept", "gone", "never")] == [1, 1, None]
    assert again.upsert(["kept", "gone", "never"], v, [7, 8, 9]) == 3  # the replay lands
    assert MilvusIndex.stored_kinds(MilvusSpec(), tmp_path, "docs", "v1", pg_host) == [META.kind]
    again.destroy()
    assert MilvusIndex.stored_kinds(MilvusSpec(), tmp_path, "docs", "v1", pg_host) == []


def test_a_deposed_leader_records_nothing_and_writes_nothing_to_milvus(
    milvus: object, tmp_path: Path, pg_host: PgHost
) -> None:
    from embedswitch.index.milvus import MilvusIndex

    index = MilvusIndex.open(META, tmp_path / "idx", None, pg_host)
    index.upsert(["a"], unit(1), [1])
    pg_host.lease_lost = True
    with pytest.raises(LeaseLost):
        index.upsert(["a", "b"], unit(2, 1), [2, 2])
    with pytest.raises(LeaseLost):
        index.delete(["a"], [3])
    pg_host.lease_lost = False
    assert index.seq_of("a") == 1 and index.seq_of("b") is None
    assert sorted(index.get(["a", "b"])) == ["a"]
    np.testing.assert_array_equal(index.get(["a"])["a"], unit(1)[0])
    index.close()


def test_the_ledger_commits_before_milvus_even_inside_a_store_transaction(
    milvus: object, tmp_path: Path, pg_uri: str
) -> None:
    """The applier writes inside ``Store.together`` (one transaction for its batch). The ledger's
    rows commit on their own before Milvus takes the write: when the batch's transaction rolls
    back, the ledger still says what Milvus holds, so a replay of the batch is a no-op, never a
    write the guard lets past a newer one."""
    from embedswitch.index.milvus import MilvusIndex
    from embedswitch.store import open_store

    store = open_store(pg_uri, tmp_path)
    try:
        index = MilvusIndex.open(META, tmp_path / "idx", None, store)  # type: ignore[arg-type]
        v = unit(2, 5)
        with pytest.raises(RuntimeError, match="the batch failed"), store.together():
            index.upsert(["a"], v[:1], [5])
            raise RuntimeError("the batch failed")
        assert index.seq_of("a") == 5 and index._ledger.unconfirmed() == []  # type: ignore[attr-defined]
        np.testing.assert_array_equal(index.get(["a"])["a"], v[0])
        assert index.upsert(["a"], v[1:], [4]) == 0
        index.close()
    finally:
        store.close()


@pytest.mark.parametrize("field", ["url", "uri"])
def test_server_urls_are_checked(field: str) -> None:
    index_type = "qdrant" if field == "url" else "milvus"
    with pytest.raises(ValueError, match="should match pattern"):
        index_spec({"type": index_type, field: "/data/local.db"})


BLOCKED = """
import json, sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("qdrant_client", "pymilvus"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
from embedswitch._errors import InvalidRequest, LeaseLost
from embedswitch.index import index_spec
from embedswitch.index.registry import check_placement
said = {}
for kind in ("qdrant", "milvus"):
    try:
        check_placement(index_spec({"type": kind}), has_database=False)
    except InvalidRequest as exc:
        said[kind] = [str(exc), exc.context]
print(json.dumps(said))
"""


def test_a_missing_client_package_names_its_extra() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    said = json.loads(done.stdout.strip().splitlines()[-1])
    for kind, package in (("qdrant", "qdrant_client"), ("milvus", "pymilvus")):
        message, context = said[kind]
        assert f"pip install 'embedswitch[{kind}]'" in message
        assert context == {"extra": kind, "module": package}


def test_a_version_whose_engine_is_unreachable_is_not_kept(qdrant: object, tmp_path: Path) -> None:
    """Creating it answers ``unavailable`` naming the server, and stores nothing: the same name
    can be created again once the engine is there."""
    from embedswitch import Engine
    from embedswitch._errors import Unavailable

    closed = "http://127.0.0.1:9"  # discard: nothing listens
    with Engine.open(tmp_path / "data") as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        with pytest.raises(Unavailable, match="Qdrant failed") as err:
            engine.add_version(
                "c", {"name": "v2", "model": "hashing", "index": {"type": "qdrant", "url": closed}}
            )
        assert err.value.context["url"] == closed
        assert [v.name for v in engine.describe("c").versions] == ["v1"]
        engine.add_version("c", {"name": "v2", "model": "hashing", "index": {"type": "qdrant"}})
        assert engine.describe("c").versions[-1].index["type"] == "qdrant"


def test_directory_bytes_counts_past_a_file_removed_while_counting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine's journal comes and goes while a version's description counts its disk (Qdrant
    local mode's ``storage.sqlite-journal`` did, in a rollout under load: a 500). Fault injection:
    the journal is removed after it is listed, before its size is read; it counts nothing."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data").write_bytes(b"x" * 10)
    journal = tmp_path / "sub" / "storage.sqlite-journal"
    journal.write_bytes(b"y" * 5)
    assert _engines.directory_bytes(tmp_path) == 15
    listed = os.walk

    def walk_then_remove(top: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
        for entry in listed(top):
            journal.unlink(missing_ok=True)
            yield entry

    monkeypatch.setattr(_engines.os, "walk", walk_then_remove)
    journal.write_bytes(b"y" * 5)
    assert _engines.directory_bytes(tmp_path) == 10
    assert _engines.directory_bytes(tmp_path / "gone") == 0
