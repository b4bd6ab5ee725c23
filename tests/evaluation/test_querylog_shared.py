"""The query log on a shared store: every replica's logged queries are in one place (real
PostgreSQL, two pg_hosts standing for two processes): a sample through one draws the other's queries,
the size bound and the retention hold for the collection as a whole, and turning the log off or
deleting a collection erases what every replica logged."""

from __future__ import annotations

from pathlib import Path

from embedswitch.evaluation.querylog import QueryLog, open_query_log
from embedswitch.specs import SearchRequest
from embedswitch.store.postgres import PostgresStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def ask(log: QueryLog, text: str, collection: str = "c", version: str = "v1") -> None:
    log.record(collection, SearchRequest(text=text, k=5), version)


def open_two(
    pg_hosts: list[PostgresStore], tmp_path: Path, size: int, clock: Clock | None = None
) -> list[QueryLog]:
    extra = {"clock": clock} if clock else {}
    return [
        open_query_log(tmp_path / name, host, size, 3600, flush_interval_s=3600, **extra)
        for name, host in zip("ab", pg_hosts, strict=True)
    ]


def test_a_sample_through_one_replica_draws_the_others_queries(
    pg_hosts: list[PostgresStore], tmp_path: Path
) -> None:
    a, b = open_two(pg_hosts, tmp_path, 100)
    try:
        ask(a, "asked of a")
        a.record("c", SearchRequest(like={"kind": "item", "id": "i7"}, kind="item", k=3), "v2")
        ask(b, "asked of b")
        ask(a, "another collection", collection="d")
        a.flush()  # a's writer would do it within its flush interval
        found, logged = b.sample("c", 10, seed=0)
        assert logged == 3 and b.count("c") == 3 and b.count("d") == 1
        assert {q.text for q in found} == {"asked of a", "asked of b", None}
        like = next(q for q in found if q.text is None)
        assert (like.kind, like.k, like.version, like.like_kind, like.like_id) == (
            "item",
            3,
            "v2",
            "item",
            "i7",
        )
        assert not list(tmp_path.rglob("querylog.db*"))  # nothing in the replicas' data dirs
    finally:
        a.close()
        b.close()


def test_the_size_bound_and_the_retention_hold_across_replicas(
    pg_hosts: list[PostgresStore], tmp_path: Path
) -> None:
    clock = Clock()
    a, b = open_two(pg_hosts, tmp_path, 4, clock)
    try:
        for i in range(3):
            ask(a, f"a{i}")
        clock.now += 10
        for i in range(3):
            ask(b, f"b{i}")
        a.flush()
        b.flush()  # the bound keeps the newest four of the collection, whoever logged them
        found, logged = a.sample("c", 10, seed=1)
        assert logged == 4 and {q.text for q in found} == {"a2", "b0", "b1", "b2"}
        clock.now += 3595  # a's queries are 3605 s old, past the 3600 s retention; b's are not
        assert a.count("c") == 3
        clock.now += 10
        assert a.count("c") == 0
    finally:
        a.close()
        b.close()


def test_turning_it_off_or_deleting_the_collection_erases_every_replicas_queries(
    pg_hosts: list[PostgresStore], tmp_path: Path
) -> None:
    a, b = open_two(pg_hosts, tmp_path, 10)
    ask(a, "private question")
    ask(a, "kept", collection="d")
    a.close()
    b.forget("c")
    assert b.count("c") == 0 and b.count("d") == 1
    b.close()
    off = open_query_log(tmp_path / "a", pg_hosts[0], 0, 3600)
    assert not off.enabled
    again = open_query_log(tmp_path / "a", pg_hosts[1], 10, 3600)
    try:
        assert again.count("d") == 0
    finally:
        again.close()
