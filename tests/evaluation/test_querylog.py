"""The query log: off by default, bounded per collection and in memory, retention, what it keeps,
and that a search never writes it synchronously."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import FAST

from embedswitch import Engine
from embedswitch.evaluation.querylog import FILE_NAME, QueryLog, open_query_log
from embedswitch.specs import SearchRequest


class Clock:
    """A settable clock for retention (the log takes ``clock`` as a parameter; time.time otherwise)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def ask(log: QueryLog, text: str, collection: str = "c", version: str = "v1") -> None:
    log.record(collection, SearchRequest(text=text, k=5), version)


def rows_on_disk(data: Path) -> int:
    with sqlite3.connect(data / FILE_NAME) as db:
        return int(db.execute("SELECT COUNT(*) FROM queries").fetchone()[0])


def test_off_by_default_stores_nothing_and_creates_no_file(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": "a", "text": "alpha"}])
        engine.search("c", "alpha")
        assert not engine.query_log.enabled and engine.query_log.count("c") == 0
    assert not (tmp_path / "data" / FILE_NAME).exists()


def test_turning_it_off_erases_what_was_kept(tmp_path: Path) -> None:
    log = open_query_log(tmp_path, None, size=10, retention_s=3600)
    ask(log, "private question")
    log.close()
    assert rows_on_disk(tmp_path) == 1
    open_query_log(tmp_path, None, size=0, retention_s=3600).close()
    assert not list(tmp_path.glob(f"{FILE_NAME}*"))


def test_what_is_kept_and_that_it_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    log = open_query_log(tmp_path, None, size=10, retention_s=3600, clock=clock)
    ask(log, "vitamin d and bones")
    log.record("c", SearchRequest(like={"kind": "item", "id": "i7"}, kind="item", k=3), "v2")
    log.close()
    again = open_query_log(tmp_path, None, size=10, retention_s=3600, clock=clock)
    found, logged = again.sample("c", 10, seed=0)
    again.close()
    assert logged == 2
    by_text = {q.text: q for q in found}
    text = by_text["vitamin d and bones"]
    assert (text.kind, text.k, text.version, text.ts, text.like_id) == ("doc", 5, "v1", 1_000.0, None)
    like = by_text[None]
    assert (like.kind, like.k, like.version, like.like_kind, like.like_id) == ("item", 3, "v2", "item", "i7")


def test_at_most_size_queries_per_collection_are_kept_the_newest(tmp_path: Path) -> None:
    log = open_query_log(tmp_path, None, size=5, retention_s=3600, flush_interval_s=3600)
    for i in range(12):
        ask(log, f"query {i}")
        if i % 4 == 3:
            log.flush()
    for i in range(3):
        ask(log, f"other {i}", collection="d")
    assert log.count("c") == 5 and log.count("d") == 3
    found, logged = log.sample("c", 100, seed=1)
    assert logged == 5
    assert {q.text for q in found} == {f"query {i}" for i in range(7, 12)}
    log.close()


def test_memory_is_bounded_and_drops_the_oldest(tmp_path: Path) -> None:
    log = open_query_log(tmp_path, None, size=3, retention_s=3600, flush_interval_s=3600)
    for i in range(5):
        ask(log, f"query {i}")
    assert log.dropped == 2
    found, _ = log.sample("c", 10, seed=0)
    assert sorted(q.text or "" for q in found) == ["query 2", "query 3", "query 4"]
    log.close()


def test_retention(tmp_path: Path) -> None:
    clock = Clock()
    log = open_query_log(tmp_path, None, size=100, retention_s=60, clock=clock, flush_interval_s=3600)
    ask(log, "old")
    clock.now += 50
    ask(log, "recent")
    assert log.count("c") == 2
    clock.now += 20  # "old" is 70 s old now, past the 60 s retention
    found, logged = log.sample("c", 10, seed=0)
    assert logged == 1 and [q.text for q in found] == ["recent"]
    clock.now += 100
    assert log.count("c") == 0
    log.close()


def test_a_search_appends_in_memory_and_the_writer_flushes_later(tmp_path: Path) -> None:
    config = FAST.model_copy(update={"query_log_size": 100})
    with Engine.open(tmp_path / "data", config) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": "a", "text": "alpha"}])
        engine.query_log.flush()
        engine.search("c", "alpha", k=3)
        # nothing on disk yet: the search only appended to the buffer (the writer runs every second)
        assert rows_on_disk(tmp_path / "data") == 0
        found, _ = engine.query_log.sample("c", 5, seed=0)  # a read flushes first
        assert [(q.text, q.k, q.version) for q in found] == [("alpha", 3, "v1")]
        assert rows_on_disk(tmp_path / "data") == 1


def test_deleting_a_collection_forgets_its_queries(tmp_path: Path) -> None:
    config = FAST.model_copy(update={"query_log_size": 100})
    with Engine.open(tmp_path / "data", config) as engine:
        for name in ("c", "d"):
            engine.create_collection(name, {"name": "v1", "model": "hashing"})
            engine.upsert(name, [{"id": "a", "text": "alpha"}])
            engine.search(name, "alpha")
        engine.delete_collection("c")
        assert engine.query_log.count("c") == 0 and engine.query_log.count("d") == 1


def test_searches_that_name_their_version_are_not_logged(tmp_path: Path) -> None:
    log = open_query_log(tmp_path, None, size=10, retention_s=3600)
    log.record("c", SearchRequest(text="a look at the candidate", version="v2"), "v2")
    ask(log, "live traffic")
    found, logged = log.sample("c", 10, seed=0)
    log.close()
    assert logged == 1 and [q.text for q in found] == ["live traffic"]
