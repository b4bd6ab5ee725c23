"""pgvector's own promises, in a real PostgreSQL: its spec, its registry and table, the HNSW index
it builds and searches with (recall, exclusions past ``ef_search``), fencing, one index shared by
several processes, and destroy. The seam's behaviour is in ``tests/congruence/test_index_seam.py``."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from _indexes import META, unit
from _pg_host import PgHost
from _postgres import PgServer, pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch import Engine, EngineConfig
from embedswitch._errors import InvalidRequest, LeaseLost, Unavailable
from embedswitch.index import IndexMeta, PgvectorSpec, index_spec, open_index, pgvector
from embedswitch.index.pgvector import COPY_ABOVE, PgvectorIndex


@pytest.fixture
def host(pg_uri: str) -> Iterator[PgHost]:  # noqa: F811 - the fixture above
    found = PgHost(pg_uri)
    yield found
    found.close()


def open_pg(host: PgHost, meta: IndexMeta = META, **spec: Any) -> PgvectorIndex:
    index = open_index(index_spec({"type": "pgvector", **spec}), Path("unused"), meta, host)
    assert isinstance(index, PgvectorIndex)
    return index


def query(host: PgHost, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with host.connection() as conn:
        return list(conn.execute(statement, params).fetchall())


def exact_top(data: np.ndarray, queries: np.ndarray, k: int, skip: set[int] | None = None) -> list[list[int]]:
    scores = queries @ data.T
    if skip:
        scores[:, sorted(skip)] = -np.inf
    return [list(np.argsort(-row, kind="stable")[:k]) for row in scores]


def state_of(index: PgvectorIndex, ids: list[str]) -> dict[str, Any]:
    vectors = index.get(ids)
    return {
        "ids": sorted(index.ids()),
        "len": len(index),
        "seqs": {id_: index.seq_of(id_) for id_ in ids},
        "vectors": {id_: vector.tobytes() for id_, vector in vectors.items()},
    }


# --- spec and opening ---------------------------------------------------------------------------


def test_spec_defaults_and_limits() -> None:
    spec = index_spec({"type": "pgvector"})
    assert isinstance(spec, PgvectorSpec)
    assert (spec.m, spec.ef_construction, spec.ef_search, spec.exact_below) == (16, 128, 64, 10_000)
    with pytest.raises(pydantic.ValidationError, match="ef_construction >= 2 \\* m"):
        index_spec({"type": "pgvector", "m": 48, "ef_construction": 64})
    for bad in ({"m": 101}, {"ef_search": 1001}, {"ef_construction": 1001}, {"exact_below": -1}):
        with pytest.raises(pydantic.ValidationError):
            index_spec({"type": "pgvector", **bad})
    with pytest.raises(pydantic.ValidationError, match="rebuild_deleted_ratio"):
        index_spec({"type": "pgvector", "rebuild_deleted_ratio": 0.5})


def test_opening_without_a_database_says_how(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="--store postgresql://"):
        open_index(index_spec({"type": "pgvector"}), tmp_path, META)


def test_an_embedded_store_refuses_a_pgvector_version(tmp_path: Path) -> None:
    """Refused when the version is added, not later by its backfill."""
    with Engine.open(tmp_path / "data", EngineConfig()) as engine:
        engine.create_collection("c", {"name": "v1", "model": {"type": "hashing", "dim": 8}})
        spec = {"name": "v2", "model": {"type": "hashing", "dim": 8}, "index": {"type": "pgvector"}}
        with pytest.raises(InvalidRequest, match="lives in a PostgreSQL store's database"):
            engine.add_version("c", spec)
        assert [v.name for v in engine.describe("c").versions] == ["v1"]


def test_more_than_2000_dimensions_are_refused(host: PgHost) -> None:
    with pytest.raises(InvalidRequest, match="up to 2000 dimensions, not 2001"):
        open_pg(host, IndexMeta("docs", "v1", "text", "ab" * 32, 2001))
    assert query(host, "SELECT to_regclass('es_indexes')") == [(None,)]


def test_registry_row_and_table(host: PgHost) -> None:
    long = "c" * 300  # identifiers are limited to 63 bytes; names are not
    meta = IndexMeta(long, "v" * 200, "text", "ab" * 32, 16)
    index = open_pg(host, meta, exact_below=0)
    index.upsert(["a", "b"], unit(2), [1, 1])
    index.delete(["b", "ghost"], [2, 2])
    (row,) = query(
        host, "SELECT collection, version, kind, table_name, dim, fingerprint, live FROM es_indexes"
    )
    assert row == (long, "v" * 200, "text", index.table, 16, "ab" * 32, 1)
    assert index.table.startswith("es_vec_") and len(index.table) <= 63
    columns = query(
        host,
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 ORDER BY attnum",
        [index.table],
    )
    assert columns == [("id", "text", True), ("seq", "bigint", True), ("embedding", "vector(16)", False)]
    rows = query(host, f"SELECT id, seq, embedding IS NULL FROM {index.table} ORDER BY id")
    assert rows == [("a", 1, False), ("b", 2, True), ("ghost", 2, True)]  # tombstones keep their rows
    definitions = [
        d for (d,) in query(host, "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [index.table])
    ]
    assert any(
        "USING hnsw (embedding vector_ip_ops) WITH (m='16', ef_construction='128')" in d for d in definitions
    )
    assert index.memory_bytes() == 0 and index.disk_bytes() > 0


# --- the HNSW index -----------------------------------------------------------------------------


def test_exact_below_the_threshold_then_hnsw(host: PgHost) -> None:
    index = open_pg(host, exact_below=100)
    vecs = unit(100, 3)
    ids = [f"r{i}" for i in range(100)]
    index.upsert(ids[:99], vecs[:99], [1] * 99)
    assert query(host, "SELECT to_regclass(%s)", [f"{index.table}_hnsw"]) == [(None,)]
    assert "Seq Scan" in index.plan(vecs[:1], 10)
    index.upsert(ids[99:], vecs[99:], [1])  # the 100th vector builds the HNSW index
    assert query(host, "SELECT to_regclass(%s)::text", [f"{index.table}_hnsw"]) == [(f"{index.table}_hnsw",)]
    assert f"Index Scan using {index.table}_hnsw" in index.plan(vecs[:1], 10)
    index.delete(ids[:1], [2])  # below the threshold again: exact, though the index stays
    assert "Seq Scan" in index.plan(vecs[:1], 10)
    assert index.search(vecs[1:2], 1)[0][0][0] == "r1"


def test_a_search_brings_its_connections_session_up_to_its_own_settings(pg_uri: str) -> None:  # noqa: F811
    """A plain search is one autocommit statement on a searcher connection, whose session holds the
    search settings: set when they differ from the last search's there (``ef`` raised for many
    excluded ids, then back); the host's other connections keep the server's."""
    host = PgHost(pg_uri, max_size=1)  # one searcher connection: every search meets the last one's
    try:
        index = open_pg(host, exact_below=0, ef_search=50)
        ids, vecs = [f"r{i}" for i in range(300)], unit(300, 5)
        index.upsert(ids, vecs, [1] * 300)

        def session() -> tuple[Any, ...]:
            with host.searcher() as conn:
                found = conn.execute(
                    "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'), "
                    "current_setting('enable_seqscan')"
                ).fetchone()
            assert found is not None
            return tuple(found)

        index.search(vecs[:1], 10)
        assert session() == ("50", "relaxed_order", "off")
        (hits,) = index.search(vecs[:1], 10, exclude=ids[:100])
        assert session()[0] == "110" and len(hits) == 10 and not {i for i, _ in hits} & set(ids[:100])
        assert index.search(vecs[:1], 1)[0][0][0] == "r0"
        assert session()[0] == "50"
        assert query(host, "SELECT current_setting('enable_seqscan')") == [("on",)]
    finally:
        host.close()


def test_exact_or_hnsw_follows_another_processs_count_once_its_own_is_stale(
    pg_uri: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search trusts the live count it last wrote or read for ``LIVE_TTL_S``: another process's
    delete that takes the table below ``exact_below`` makes it exact once that count is stale."""
    monkeypatch.setattr(pgvector, "LIVE_TTL_S", 0.1)
    writer, reader = PgHost(pg_uri), PgHost(pg_uri)
    try:
        ids, vecs = [f"r{i}" for i in range(100)], unit(100, 6)
        mine = open_pg(writer, exact_below=100)
        mine.upsert(ids, vecs, [1] * 100)
        theirs = open_pg(reader, exact_below=100)
        assert f"Index Scan using {theirs.table}_hnsw" in theirs.plan(vecs[:1], 10)
        mine.delete(ids[:1], [2])
        time.sleep(0.2)
        assert "Seq Scan" in theirs.plan(vecs[:1], 10)
        assert theirs.search(vecs[1:2], 1)[0][0][0] == "r1"
        mine.upsert(ids[:1], vecs[:1], [3])
        time.sleep(0.2)
        assert f"Index Scan using {theirs.table}_hnsw" in theirs.plan(vecs[:1], 10)
    finally:
        writer.close()
        reader.close()


def test_a_destroy_waits_for_a_write_in_flight_rather_than_deadlock(pg_uri: str) -> None:  # noqa: F811
    """A write locks the index's registry row, then its table; a destroy (a retire, maybe in
    another process) takes them in the same order, so it waits for the write instead of dropping
    the table under it (in the other order PostgreSQL ends one of them: "deadlock detected")."""
    writer, retirer = PgHost(pg_uri), PgHost(pg_uri)
    try:
        index = open_pg(writer, exact_below=0)
        index.upsert(["a"], unit(1), [1])
        doomed = open_pg(retirer, exact_below=0)
        errors: list[BaseException] = []

        def destroy() -> None:
            try:
                doomed.destroy()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        with writer.connection() as conn:  # a write in flight: the row locked, the table next
            conn.execute(
                "SELECT live FROM es_indexes WHERE collection = %(collection)s AND version = %(version)s "
                "AND kind = %(kind)s FOR UPDATE",
                {"collection": META.collection, "version": META.version, "kind": META.kind},
            )
            dropping = threading.Thread(target=destroy)
            dropping.start()
            time.sleep(0.5)  # the destroy is under way: waiting for the row
            assert conn.execute(f"SELECT count(*) FROM {index.table}").fetchone() == (1,)
        dropping.join(30)
        assert not errors and not dropping.is_alive()
        assert query(writer, "SELECT to_regclass(%s)", [index.table]) == [(None,)]
        with pytest.raises(Unavailable, match="destroyed"):
            index.upsert(["b"], unit(1), [2])
    finally:
        writer.close()
        retirer.close()


BIG = IndexMeta("docs", "v1", "text", "ab" * 32, 64)


@pytest.fixture(scope="module")
def big(pg_server: PgServer) -> Iterator[tuple[PgHost, np.ndarray]]:  # noqa: F811
    """5,000 random unit vectors of 64 dims in the index of ``BIG``, loaded in pages of 1,000 (the
    first builds the HNSW index, the rest go into it one by one)."""
    database = pg_server.create_database()
    host = PgHost(pg_server.uri(database))
    index = open_pg(host, BIG, exact_below=1000)
    data = unit(5000, 11, dim=64)
    for start in range(0, 5000, 1000):
        page = range(start, start + 1000)
        assert index.upsert([f"r{i}" for i in page], data[start : start + 1000], [1] * 1000) == 1000
    yield host, data
    host.close()
    pg_server.drop_database(database)


def test_recall_against_exact_search(big: tuple[PgHost, np.ndarray]) -> None:
    host, data = big
    index = open_pg(host, BIG, exact_below=1000)  # ef_search 64, the default
    queries = unit(100, 12, dim=64)
    assert f"Index Scan using {index.table}_hnsw" in index.plan(queries[:1], 10)
    found = index.search(queries, 10)
    truth = exact_top(data, queries, 10)
    hits = sum(
        len({f"r{i}" for i in want} & {id_ for id_, _ in got}) for want, got in zip(truth, found, strict=True)
    )
    assert hits / 1000 >= 0.9
    for row, got in zip(queries, found, strict=True):
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        for id_, score in got:
            assert score == pytest.approx(float(row @ data[int(id_[1:])]), abs=1e-5)


@pytest.mark.parametrize("n_excluded", [200, 1500])
def test_excluding_more_than_ef_search_still_returns_k(
    big: tuple[PgHost, np.ndarray], n_excluded: int
) -> None:
    """ef_search 40, raised to k + excluded ids but capped at 1000: the iterative scan goes on past
    the excluded ids."""
    host, data = big
    index = open_pg(host, BIG, exact_below=1000, ef_search=40)
    queries = unit(20, 13, dim=64)
    hits = 0
    for row in queries:
        nearest = exact_top(data, row[None, :], n_excluded)[0]
        excluded = {f"r{i}" for i in nearest}
        assert f"Index Scan using {index.table}_hnsw" in index.plan(row[None, :], 10, excluded)
        (got,) = index.search(row[None, :], 10, exclude=excluded)
        assert len(got) == 10 and not {id_ for id_, _ in got} & excluded
        want = exact_top(data, row[None, :], 10, skip=set(nearest))[0]
        hits += len({f"r{i}" for i in want} & {id_ for id_, _ in got})
    assert hits / 200 >= 0.8


# --- fencing ------------------------------------------------------------------------------------


def test_every_write_is_fenced_and_a_lost_lease_stores_nothing(host: PgHost) -> None:
    index = open_pg(host, exact_below=0)
    ids = [f"r{i}" for i in range(20)]
    vecs = unit(20)
    index.upsert(ids, vecs, [1] * 20)
    index.delete(ids[:2], [2, 2])
    before = state_of(index, ids)
    checks = host.fence_checks
    index.search(vecs[:2], 3)
    index.get(ids)
    assert host.fence_checks == checks  # reads are not fenced

    host.lease_lost = True  # fault injection: another process took the worker's lease over
    big = [f"b{i}" for i in range(COPY_ABOVE + 1)]
    with pytest.raises(LeaseLost):
        index.upsert(ids[:5] + ["new"], unit(6, 1), [9] * 6)
    with pytest.raises(LeaseLost):
        index.upsert(big, unit(len(big), 2), [9] * len(big))  # by COPY
    with pytest.raises(LeaseLost):
        index.delete(ids[5:10], [9] * 5)
    with pytest.raises(LeaseLost):
        index.forget_tombstones(100)
    with pytest.raises(LeaseLost):
        index.destroy()
    assert host.fence_checks == checks + 5

    host.lease_lost = False
    reopened = open_pg(host, exact_below=0)
    assert state_of(reopened, ids + ["new", "b0"]) == {
        **before,
        "seqs": {**before["seqs"], "new": None, "b0": None},
    }
    assert reopened.upsert(["new"], unit(1), [9]) == 1
    assert host.fence_checks == checks + 6


def test_creating_an_index_is_fenced(host: PgHost) -> None:
    open_pg(host)  # es_indexes exists from here on
    host.lease_lost = True
    with pytest.raises(LeaseLost):
        open_pg(host, IndexMeta("docs", "v2", "text", "ab" * 32, 16))
    assert query(host, "SELECT version FROM es_indexes") == [("v1",)]
    assert query(host, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'es_vec_%'") == [(1,)]
    open_pg(host)  # opening an existing index writes nothing: no fence to pass


# --- several processes --------------------------------------------------------------------------


def test_processes_share_one_index(pg_uri: str, host: PgHost) -> None:  # noqa: F811
    other = PgHost(pg_uri)  # another process's pool
    try:
        mine, theirs = open_pg(host), open_pg(other)
        assert mine.table == theirs.table
        v = unit(3)
        assert mine.upsert(["a", "b"], v[:2], [5, 5]) == 2
        assert sorted(theirs.ids()) == ["a", "b"] and len(theirs) == 2  # committed: no checkpoint
        assert theirs.upsert(["a"], v[2:], [4]) == 0  # older than mine
        assert theirs.delete(["b"], [6]) == 1
        assert mine.ids() == ["a"] and mine.seq_of("b") == 6
    finally:
        other.close()


def test_a_handle_on_a_destroyed_index_fails_cleanly(pg_uri: str, host: PgHost) -> None:  # noqa: F811
    other = PgHost(pg_uri)
    try:
        mine, theirs = open_pg(host), open_pg(other)
        mine.upsert(["a"], unit(1), [1])
        old_table = mine.table
        mine.destroy()
        assert query(host, "SELECT count(*) FROM es_indexes") == [(0,)]
        assert query(host, "SELECT to_regclass(%s)", [old_table]) == [(None,)]
        with pytest.raises(Unavailable, match="destroyed|lost its table"):
            theirs.search(unit(1), 1)
        with pytest.raises(Unavailable, match="destroyed"):
            theirs.upsert(["b"], unit(1), [2])
        with pytest.raises(Unavailable, match="destroyed"):
            len(theirs)
        fresh = open_pg(host)  # the same version created again: a new table the old handle can't reach
        assert fresh.table != old_table and len(fresh) == 0
        with pytest.raises(Unavailable, match="destroyed"):
            theirs.upsert(["b"], unit(1), [2])
        assert len(fresh) == 0
    finally:
        other.close()


def test_concurrent_writers_take_turns(pg_uri: str, host: PgHost) -> None:  # noqa: F811
    """Writers in two processes, two threads each, on the same ids: every id ends at its highest
    seq, and the live count (kept per write) matches the table."""
    other = PgHost(pg_uri)
    indexes = [open_pg(host), open_pg(other)]
    seqs = iter(range(1, 10**9))
    lock = threading.Lock()
    last: dict[str, tuple[int, str]] = {}
    errors: list[BaseException] = []

    def work(index: PgvectorIndex, seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(60):
                ids = [f"id{n}" for n in rnd.sample(range(30), rnd.randint(1, 6))]
                with lock:
                    batch = [next(seqs) for _ in ids]
                op = "upsert" if rnd.random() < 0.7 else "delete"
                if op == "upsert":
                    index.upsert(ids, unit(len(ids), rnd.randint(0, 10**6)), batch)
                else:
                    index.delete(ids, batch)
                with lock:
                    for id_, seq in zip(ids, batch, strict=True):
                        if id_ not in last or seq > last[id_][0]:
                            last[id_] = (seq, op)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(indexes[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors, errors[0]
    index = indexes[0]
    assert {id_: index.seq_of(id_) for id_ in last} == {id_: seq for id_, (seq, _) in last.items()}
    live = sorted(id_ for id_, (_, op) in last.items() if op == "upsert")
    assert sorted(index.ids()) == live
    assert len(index) == len(live)
    assert query(host, f"SELECT count(*) FROM {index.table} WHERE embedding IS NOT NULL") == [(len(live),)]
