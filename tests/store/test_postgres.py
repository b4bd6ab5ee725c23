"""The PostgreSQL store's own promises, on a real PostgreSQL (what the congruence suite, which
holds every backend to the seam, does not cover): migrations, URI parameters, wake-ups across
store instances, leases and fencing, and the ``IndexHost`` side."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _pg_processes import Rec, hold_lease_then_write
from _threads import in_thread

from embedswitch import InvalidRequest, LeaseLost, Unavailable
from embedswitch._fence import fenced
from embedswitch.store import open_store
from embedswitch.store.base import VersionRow
from embedswitch.store.postgres import PostgresStore
from embedswitch.store.postgres import store as store_module
from embedswitch.store.postgres.config import PostgresConfig
from embedswitch.store.postgres.schema import LATEST, MIGRATIONS

LEASE = "version:c/v1"


def with_params(uri: str, **params: Any) -> str:
    return uri + "".join(f"&{key}={value}" for key, value in params.items())


@pytest.fixture
def open_stores(pg_uri: str) -> Iterator[Callable[..., PostgresStore]]:
    """Open ``PostgresStore`` instances on the test's database (extra URI parameters as keywords);
    every one still open is closed at the end."""
    opened: list[PostgresStore] = []

    def open_one(**params: Any) -> PostgresStore:
        opened.append(PostgresStore.from_uri(with_params(pg_uri, **params), Path(".")))
        return opened[-1]

    yield open_one
    for store in opened:
        store.close()


def collection(store: PostgresStore, name: str = "c") -> str:
    store.create_collection(
        name, VersionRow(name, "v1", {"name": "v1"}, "ready", 0, 0, None, 1.0), {"v1": 100}
    )
    return name


def sql(uri: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[call-overload]
        return cur.fetchall() if cur.description else []


# --- migrations -----------------------------------------------------------------------------------
def test_migrations_are_recorded_once_and_reopening_changes_nothing(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    first = open_stores()
    collection(first)
    first.write("c", [Rec("doc", "1", "kept")], [])
    first.close()
    recorded = sql(pg_uri, "SELECT version, name FROM es_schema_migrations ORDER BY version")
    assert recorded == [(number, name) for number, name, _ in MIGRATIONS] and recorded[-1][0] == LATEST
    again = open_stores()
    assert sql(pg_uri, "SELECT version, name FROM es_schema_migrations ORDER BY version") == recorded
    assert again.get_records("c", [("doc", "1")])[("doc", "1")].text == "kept"
    tables = {name for (name,) in sql(pg_uri, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables and all(name.startswith("es_") for name in tables)


def test_processes_opening_a_new_database_at_once_migrate_it_once(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    with ThreadPoolExecutor(4) as pool:  # each open migrates on a connection of its own
        stores = list(pool.map(lambda _: open_stores(), range(4)))
    assert len(stores) == 4
    assert sql(pg_uri, "SELECT version FROM es_schema_migrations") == [(n,) for n, _, _ in MIGRATIONS]


def test_a_database_migrated_by_a_newer_embedswitch_is_refused(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    open_stores().close()
    sql(pg_uri, "INSERT INTO es_schema_migrations(version, name) VALUES (%s, 'from the future')", LATEST + 1)
    with pytest.raises(InvalidRequest, match=f"schema is at version {LATEST + 1}.*Upgrade embedswitch"):
        open_stores()


# --- the URI --------------------------------------------------------------------------------------
def test_uri_parameters_of_embedswitch_are_taken_out_and_libpq_ones_kept() -> None:
    config = PostgresConfig.from_uri(
        "postgres://app:secret@db.internal:5432/es?sslmode=disable&lease_ttl_s=2.5&pool_max=3"
    )
    assert (config.lease_ttl_s, config.pool_max) == (2.5, 3)
    name = f"embedswitch-{os.getpid()}"  # the process, in pg_stat_activity
    assert config.conninfo == (
        "postgresql://app:secret@db.internal:5432/es?sslmode=disable&connect_timeout=10&application_name="
        + name
    )
    defaults = PostgresConfig.from_uri(
        "postgresql+psycopg://db/es?connect_timeout=3&host=/run/pg&application_name=x"
    )
    assert (defaults.lease_ttl_s, defaults.pool_max) == (10.0, 10)
    assert defaults.conninfo == "postgresql://db/es?connect_timeout=3&host=/run/pg&application_name=x"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("lease_ttl=5", r"unknown parameter 'lease_ttl': neither a libpq .*\(lease_ttl_s, pool_max\)"),
        ("pool_max=0", r"parameter 'pool_max': Input should be greater than or equal to 1"),
        ("lease_ttl_s=soon", r"parameter 'lease_ttl_s': Input should be a valid number"),
        ("conninfo=x", r"unknown parameter 'conninfo \(a URI parameter\)'"),
    ],
)
def test_bad_uri_parameters_are_clear_errors(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as caught:
        open_store(f"postgresql://app:secret@db.internal/es?{query}", tmp_path)  # refused before connecting
    assert "secret" not in str(caught.value) + str(caught.value.context)


def test_an_unreachable_server_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match=r"cannot reach the PostgreSQL store at postgresql://app:\*\*\*@"):
        open_store(f"postgresql://app:secret@/es?host={tmp_path}/no-server-here", tmp_path)


def test_the_registry_opens_both_schemes(pg_uri: str, tmp_path: Path) -> None:
    for uri in (pg_uri, pg_uri.replace("postgresql://", "postgres://", 1)):
        store = open_store(uri, tmp_path)
        assert isinstance(store, PostgresStore) and store.shared and not store.embedded
        store.close()


# --- wake-ups across store instances --------------------------------------------------------------
@pytest.fixture
def no_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters re-read the database only once a minute: only a notification ends a wait in time."""
    monkeypatch.setattr(store_module, "POLL_S", 60.0)


@pytest.mark.usefixtures("no_poll")
def test_a_write_through_one_store_wakes_a_log_waiter_on_another(
    open_stores: Callable[..., PostgresStore],
) -> None:
    a, b = open_stores(), open_stores()
    collection(a)
    join = in_thread(lambda: b.wait_for_log("c", 0, 30))
    time.sleep(0.2)
    a.write("c", [Rec("doc", "1", "x")], [])
    result, elapsed = join(15)
    assert result is True and elapsed < 10
    join = in_thread(lambda: b.wait_for_log("c", 1, 30))
    time.sleep(0.2)
    a.write("c", [], [("doc", "1")])
    assert join(15)[0] is True and b.head_seq("c") == 2


@pytest.mark.usefixtures("no_poll")
def test_an_applied_position_published_by_one_store_is_seen_by_another(
    open_stores: Callable[..., PostgresStore],
) -> None:
    a, b = open_stores(), open_stores()
    collection(a)
    assert b.published_applied("c", "v1") is None
    join = in_thread(lambda: b.wait_applied("c", "v1", 5, 30))
    time.sleep(0.2)
    a.publish_applied("c", "v1", 5)
    result, elapsed = join(15)
    assert result is True and elapsed < 10
    assert b.published_applied("c", "v1") == 5
    a.publish_applied("c", "v1", 3)  # a position never goes back
    assert b.published_applied("c", "v1") == 5 and b.wait_applied("c", "v1", 5, 0.1)
    a.delete_version("c", "v1")
    assert b.published_applied("c", "v1") is None


@pytest.mark.usefixtures("no_poll")
def test_a_control_write_through_one_store_moves_the_counter_of_another(
    open_stores: Callable[..., PostgresStore],
) -> None:
    a, b = open_stores(), open_stores()
    collection(a)
    changes: list[Callable[[], Any]] = [
        lambda: a.set_traffic("c", {"v1": 100}, "again", None),
        lambda: a.add_version(VersionRow("c", "v2", {"name": "v2"}, "building", 0, 0, None, 2.0)),
        lambda: a.save_version_progress("c", "v2", 0, None, "ready"),
        lambda: a.add_rollout("c", {}, {}, "running"),
    ]
    for change in changes:
        time.sleep(0.1)  # the create's (or the last change's) notification has arrived
        now = b.wait_control(10**9, 0)
        join = in_thread(lambda now=now: b.wait_control(now, 30))
        change()
        counter, elapsed = join(15)
        assert counter > now and elapsed < 10


def test_closing_a_store_ends_its_waits(open_stores: Callable[..., PostgresStore]) -> None:
    store = open_stores()
    collection(store)
    waits = [
        in_thread(lambda: store.wait_for_log("c", 0, 30)),
        in_thread(lambda: store.wait_control(10**9, 30)),
        in_thread(lambda: store.wait_applied("c", "v1", 1, 30)),
    ]
    time.sleep(0.2)
    store.close()
    for join in waits:
        assert join(15)[1] < 10


# --- leases ---------------------------------------------------------------------------------------
def holder_pid(uri: str, lease: str) -> int:
    ((pid,),) = sql(uri, "SELECT holder_pid FROM es_leases WHERE name = %s", lease)
    return int(pid)


def test_one_store_holds_a_lease_and_each_take_bumps_its_epoch(
    open_stores: Callable[..., PostgresStore],
) -> None:
    a, b = open_stores(), open_stores()
    assert a.try_lease(LEASE) == 1
    assert b.try_lease(LEASE) is None and a.try_lease(LEASE) is None  # held, by a
    assert (a.lease_epoch(LEASE), b.lease_epoch(LEASE)) == (1, None)
    assert b.try_lease("other") == 1  # leases are independent
    a.release_lease(LEASE)
    assert a.lease_epoch(LEASE) is None
    assert b.try_lease(LEASE) == 2 and a.try_lease(LEASE) is None
    b.close()  # closing gives its leases back
    assert a.try_lease(LEASE) == 3 and a.try_lease("other") == 2


def test_a_holder_whose_lease_connection_dies_loses_every_lease(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    a, b = open_stores(), open_stores()
    collection(a)
    assert a.try_lease(LEASE) == 1 and a.try_lease("other") == 1
    sql(pg_uri, "SELECT pg_terminate_backend(%s, 5000)", holder_pid(pg_uri, LEASE))  # fault: kill it
    assert b.try_lease(LEASE) == 2
    assert a.lease_epoch(LEASE) is None and a.lease_epoch("other") is None
    with fenced(LEASE, 1), pytest.raises(LeaseLost, match="no longer holds the lease 'version:c/v1'"):
        a.write("c", [Rec("doc", "1", "from the old holder")], [])
    with fenced(LEASE, 2):
        assert b.write("c", [Rec("doc", "2", "from the new one")], []).seq == 1
    assert b.read_log("c", 0, 10)[0].id == "2" and b.head_seq("c") == 1
    assert a.try_lease("other") == 2  # a reconnects for the leases still free


def test_a_takeover_waits_for_a_fenced_transaction_in_flight(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    a, b = open_stores(lease_ttl_s=1), open_stores(lease_ttl_s=1)
    assert a.try_lease(LEASE) == 1
    with fenced(LEASE, 1), a.connection() as conn:
        a.check_fence(conn)  # an index's write, fenced, still open
        sql(pg_uri, "SELECT pg_terminate_backend(%s, 5000)", holder_pid(pg_uri, LEASE))
        assert b.try_lease(LEASE) is None  # the lock is free, but the row is held by the write
    assert b.try_lease(LEASE) == 2


def test_a_paused_holder_is_taken_over_and_its_late_write_refused(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    """Fault injection: the holder is another process, paused with SIGSTOP past the lease TTL (1 s)
    and resumed after the takeover; its fenced write then stores nothing."""
    b = open_stores(lease_ttl_s=1)
    collection(b)
    ctx = multiprocessing.get_context("spawn")
    pipe, child_end = ctx.Pipe()
    holder = ctx.Process(
        target=hold_lease_then_write, args=(with_params(pg_uri, lease_ttl_s=1), LEASE, child_end)
    )
    holder.start()
    try:
        assert pipe.poll(60) and pipe.recv() == 1
        time.sleep(2)  # past the TTL: a live holder renews its lease
        assert b.try_lease(LEASE) is None
        os.kill(holder.pid or 0, signal.SIGSTOP)
        deadline = time.monotonic() + 20
        while (epoch := b.try_lease(LEASE)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert epoch == 2 and b.lease_epoch(LEASE) == 2
        os.kill(holder.pid or 0, signal.SIGCONT)
        pipe.send("write")
        assert pipe.poll(30) and pipe.recv() == ("LeaseLost", None)
        assert b.get_records("c", [("doc", "late")]) == {} and b.head_seq("c") == 0
    finally:
        os.kill(holder.pid or 0, signal.SIGCONT)
        holder.join(30)
        if holder.is_alive():
            holder.kill()
    assert b.lease_epoch(LEASE) == 2


# --- the index host -------------------------------------------------------------------------------
def test_connection_commits_a_block_and_rolls_back_one_that_raises(
    pg_uri: str, open_stores: Callable[..., PostgresStore]
) -> None:
    store = open_stores()
    with store.connection() as conn:
        conn.execute("CREATE TABLE es_test_index(id text PRIMARY KEY)")
        conn.execute("INSERT INTO es_test_index VALUES ('kept')")
    with pytest.raises(RuntimeError), store.connection() as conn:
        conn.execute("INSERT INTO es_test_index VALUES ('dropped')")
        raise RuntimeError("the index failed half way")
    assert sql(pg_uri, "SELECT id FROM es_test_index") == [("kept",)]
    assert store.try_lease(LEASE) == 1
    with store.connection() as conn:
        store.check_fence(conn)  # not fenced: nothing to check
        with fenced(LEASE, 1):
            store.check_fence(conn)
        with fenced(LEASE, 7), pytest.raises(LeaseLost):
            store.check_fence(conn)


def test_searcher_connections_are_read_only_autocommit_and_apart_from_the_stores(
    open_stores: Callable[..., PostgresStore],
) -> None:
    """A pgvector search sets session settings on its connection: the searcher's pool is its own, so
    none of them reaches the store's statements, and it writes nothing, inside ``together`` too."""
    store = open_stores(pool_max=1)
    with store.searcher() as conn:
        assert conn.autocommit
        conn.execute("SET enable_seqscan = off")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE es_test_search(id text)")
    with store.searcher() as conn:
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("off",)  # the session is kept
    with store.connection() as conn:
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("on",)
    with store.together(), store.searcher() as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


# --- one transaction for a batch -----------------------------------------------------------------
def test_writes_made_together_commit_as_one_or_not_at_all(open_stores: Callable[..., PostgresStore]) -> None:
    """An applied batch's vectors (an index in the database) and the position it brings its
    version to commit together: a failure before the end leaves neither."""
    import numpy as np

    from embedswitch.index import IndexMeta, index_spec, open_index

    store = open_stores()
    name = collection(store)
    meta = IndexMeta(name, "v1", "doc", "ab" * 32, 4)
    index = open_index(index_spec({"type": "pgvector"}), Path("."), meta, store)
    vectors = np.eye(4, dtype=np.float32)[:2]
    with pytest.raises(RuntimeError), store.together():
        index.upsert(["a", "b"], vectors, [1, 2])
        store.publish_applied(name, "v1", 2)
        raise RuntimeError("the batch fails before its end")
    assert len(index) == 0 and store.published_applied(name, "v1") is None
    assert not store.wait_applied(name, "v1", 2, 0.2)  # nobody was told of a position never committed
    with store.together():
        index.upsert(["a", "b"], vectors, [1, 2])
        store.publish_applied(name, "v1", 2)
    assert len(index) == 2 and store.published_applied(name, "v1") == 2
    assert store.wait_applied(name, "v1", 2, 5)


def test_a_hybrid_batch_commits_its_texts_vectors_and_position_as_one(
    open_stores: Callable[..., PostgresStore],
) -> None:
    """A hybrid version's two parts (BM25 and pgvector tables) and its position commit together."""
    import numpy as np

    from embedswitch.index import IndexMeta
    from embedswitch.index.hybrid import Fusion, open_text_index
    from embedswitch.index.specs import PgvectorSpec

    store = open_stores()
    name = collection(store)
    meta = IndexMeta(name, "hy", "doc", "cd" * 32, 4)
    index = open_text_index(PgvectorSpec(), Path("."), meta, store, "unicode61", Fusion())
    vectors, texts = np.eye(4, dtype=np.float32)[:2], ["apple pie", "banana bread"]
    with pytest.raises(RuntimeError), store.together():
        index.upsert(["a", "b"], vectors, [1, 2], texts=texts)
        store.publish_applied(name, "hy", 2)
        raise RuntimeError("the batch fails before its end")
    assert index.vectors is not None and len(index.vectors) == 0 and len(index.lexical) == 0
    assert store.published_applied(name, "hy") is None and index.seq_of("a") is None
    with store.together():
        index.upsert(["a", "b"], vectors, [1, 2], texts=texts)
        store.publish_applied(name, "hy", 2)
    assert len(index.vectors) == 2 and [h[0] for h in index.search_text("banana", None, 5)] == ["b"]
    assert store.published_applied(name, "hy") == 2
