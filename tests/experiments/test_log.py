"""The experiment log on each backend (the embedded SQLite file and a shared PostgreSQL database),
and on PostgreSQL, two replicas sharing one log: an assignment recorded through one is found by
feedback through the other, reports count every replica's traffic, experiment starts and settings
made through one are what the other reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pg_replicas import replicas

from embedswitch.experiments.log import (
    Assignment,
    ExperimentLog,
    Feedback,
    ShadowObservation,
    open_experiment_log,
)
from embedswitch.experiments.log.postgres import PostgresTables
from embedswitch.experiments.log.sqlite import SqliteTables
from embedswitch.store.postgres import PostgresStore


def assignment(
    request_id: str, version: str = "v1", experiment: int = 1, collection: str = "c"
) -> Assignment:
    hits = (("d1", version), ("d2", version))
    return Assignment(
        request_id, collection, experiment, "search", "single", version, None, None, hits, time.time()
    )


def click(request_id: str, id: str = "d2", credit: str = "v1", collection: str = "c") -> Feedback:
    return Feedback(request_id, collection, id, "click", None, 2, credit, time.time())


def shadow(candidate: str = "v2", collection: str = "c") -> ShadowObservation:
    return ShadowObservation(collection, 1, candidate, "v1", 3.0, 2.0, None, 0.5, time.time())


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperimentLog]:
    """One log on each backend."""
    if request.param == "sqlite":
        found = open_experiment_log(tmp_path, None)
        yield found
        found.close()
        return
    with replicas(request.getfixturevalue("pg_uri"), 1) as (host,):
        found = open_experiment_log(tmp_path, host)
        yield found
        found.close()


def test_the_store_chooses_the_backend(log: ExperimentLog) -> None:
    assert isinstance(log.tables, SqliteTables | PostgresTables)


def test_assignments_feedback_and_counts(log: ExperimentLog) -> None:
    assert log.first("c", "v1").id == 1 and log.first("c", "v2").control == "v1"
    for i in range(3):
        log.record(assignment(f"r{i}", "v1"))
    log.record(assignment("r9", "v2"))
    found = log.find("c", "r1")  # buffered: written first
    assert found is not None and found.hits == (("d1", "v1"), ("d2", "v1"))
    assert log.find("other", "r1") is None
    assert log.add_feedback(click("r1")) and not log.add_feedback(click("r1"))
    assert log.add_feedback(click("r1", "d1"))
    assert log.request_counts("c", 1).single == {"v1": 3, "v2": 1}
    rows = log.feedback_rows("c", 1, "single")
    assert [(r.request_id, r.version, r.best_rank, r.credits) for r in rows] == [("r1", "v1", 2, {"v1": 2})]


def test_experiments_settings_shadow_and_forget(log: ExperimentLog) -> None:
    assert log.current("c") is None
    assert [log.start("c", "v1").id, log.start("c", "v2").id] == [1, 2]
    assert log.current("c") == log.first("c", None)
    assert log.settings("c") == (None, None)
    log.save_settings("c", {"version": "v2", "percent": 10}, None)
    assert log.settings("c") == ({"version": "v2", "percent": 10}, None)
    log.observe(shadow())
    assert [o.candidate for o in log.shadow_rows("c", 1)] == ["v2"]
    log.record(assignment("r1"))
    log.flush()
    log.prune(time.time() + 1)
    assert log.find("c", "r1") is None and log.shadow_rows("c", 1) == []
    log.forget("c")
    assert log.current("c") is None and log.settings("c") == (None, None)


# -- two replicas on one PostgreSQL database ---------------------------------------------------


@pytest.fixture
def pair(pg_hosts: list[PostgresStore], tmp_path: Path) -> Iterator[tuple[ExperimentLog, ExperimentLog]]:
    a, b = (open_experiment_log(tmp_path / name, host) for name, host in zip("ab", pg_hosts, strict=True))
    yield a, b
    a.close()
    b.close()


def test_feedback_through_one_replica_finds_an_assignment_recorded_by_another(
    pair: tuple[ExperimentLog, ExperimentLog],
) -> None:
    a, b = pair
    a.record(assignment("r1"))  # buffered in a: b waits for a's next flush
    found = b.find("c", "r1")
    assert found is not None and found.version == "v1"
    assert b.add_feedback(click("r1"))
    assert not a.add_feedback(click("r1"))  # one count per (request, hit, event), whichever replica
    started = time.monotonic()
    assert b.find("c", "nobody") is None
    assert time.monotonic() - started >= b.find_wait_s


def test_reports_through_one_replica_count_every_replicas_traffic(
    pair: tuple[ExperimentLog, ExperimentLog],
) -> None:
    a, b = pair
    for i in range(5):
        a.record(assignment(f"a{i}", "v1"))
        b.record(assignment(f"b{i}", "v2"))
    a.observe(shadow("v3"))
    a.flush()  # a's flusher would write them within a quarter second; a report does not wait
    assert b.request_counts("c", 1).single == {"v1": 5, "v2": 5}
    a.add_feedback(click("b3", credit="v2"))
    assert [(r.request_id, r.version) for r in b.feedback_rows("c", 1, "single")] == [("b3", "v2")]
    assert [o.candidate for o in b.shadow_rows("c", 1)] == ["v3"]


def test_starts_and_settings_through_one_replica_govern_the_other(
    pair: tuple[ExperimentLog, ExperimentLog],
) -> None:
    a, b = pair
    first: list[int] = []
    threads = [
        threading.Thread(target=lambda log=log: first.append(log.first("c", "v1").id)) for log in (a, b) * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert first == [1] * 8  # replicas opening the collection together share its first experiment
    second = a.start("c", "v2")
    assert second.id == 2 and b.current("c") == second
    assert b.start("c", "v2").id == 3
    a.save_settings("c", None, {"versions": ["v1", "v2"], "percent": 20})
    assert b.settings("c") == (None, {"versions": ["v1", "v2"], "percent": 20})
    b.forget("c")
    assert a.current("c") is None and a.settings("c") == (None, None)
