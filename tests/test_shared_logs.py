"""The engine's per-process logs on a shared store: two engines on one PostgreSQL database (the
real ``PostgresStore``) stand for two replicas; what they share here is the experiment log, the
query log and the request counts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST

from embedswitch import Engine
from embedswitch.evaluation.querylog import FILE_NAME as QUERYLOG_FILE

CONFIG = FAST.model_copy(update={"query_log_size": 100})
DOCS = [{"id": f"d{i}", "text": text} for i, text in enumerate(["alpha beta", "beta gamma", "gamma delta"])]


@pytest.fixture
def engines(pg_uri: str, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    a = Engine.open(tmp_path / "a", CONFIG, store=pg_uri)
    a.create_collection("c", {"name": "v1", "model": "hashing"})
    a.upsert("c", DOCS)
    a.wait_ready("c", "v1")
    b = Engine.open(tmp_path / "b", CONFIG, store=pg_uri)
    yield a, b
    for engine in (a, b):
        engine.close()


def until(check: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


def test_feedback_and_reports_through_one_replica_see_the_others_requests(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    a, b = engines
    assert a.experiments.of("c").row == b.experiments.of("c").row  # one experiment, number 1
    answers = [a.search("c", "alpha", k=2, key=f"user{i}") for i in range(4)]
    hit = answers[0].hits[0].id
    ack = b.feedback("c", {"request_id": answers[0].request_id, "id": hit, "event": "click"})
    assert ack.counted and ack.version == "v1" and ack.rank == 1
    assert not a.feedback("c", {"request_id": answers[0].request_id, "id": hit, "event": "click"}).counted
    b.search("c", "gamma")
    arm = b.experiment("c").ab.arms["v1"]
    assert (arm.requests, arm.clicks) == (5, 1)
    assert (
        not (tmp_path / "a" / "experiments.db").exists() and not (tmp_path / "b" / "experiments.db").exists()
    )


def test_a_sample_of_the_query_log_through_one_replica_holds_the_others_queries(
    engines: tuple[Engine, Engine], tmp_path: Path
) -> None:
    a, b = engines
    a.search("c", "asked of a")
    b.search("c", "asked of b")
    texts = until(lambda: {q.text for q in b.query_log.sample("c", 10, seed=0)[0]} >= {"asked of a"})
    assert texts
    assert {q.text for q in b.query_log.sample("c", 10, seed=0)[0]} == {"asked of a", "asked of b"}
    assert not list(tmp_path.rglob(f"{QUERYLOG_FILE}*"))


def test_request_counts_read_through_one_replica_include_the_others(engines: tuple[Engine, Engine]) -> None:
    a, b = engines
    mark = b.collection("c").served.mark()
    for i in range(3):
        a.search("c", "alpha", key=f"user{i}")
    b.search("c", "beta")
    a.search("c", "alpha", version="v1")  # pinned: not the version's share of traffic
    window = until(lambda: b.collection("c").served.since(mark).get("v1", None))
    assert window is not None
    assert until(lambda: b.collection("c").served.since(mark)["v1"].requests == 4)
    window = b.collection("c").served.since(mark)["v1"]
    assert (window.requests, window.errors, len(window.latencies_s)) == (4, 0, 4)


def test_settings_and_resets_through_one_replica_govern_the_other_after_a_reload(
    engines: tuple[Engine, Engine],
) -> None:
    a, b = engines
    a.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    a.wait_ready("c", "v2")
    assert until(lambda: "v2" in b.collection("c").versions)
    b.wait_ready("c", "v2")
    a.set_traffic("c", shadow={"version": "v2", "percent": 50})
    assert b.experiments.of("c").shadow is None  # read at the next reload
    b.experiments.reload("c")
    shadow = b.experiments.of("c").shadow
    assert shadow is not None and (shadow.version, shadow.percent) == ("v2", 50)
    b.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 10})
    a.experiments.reload("c")
    interleave = a.experiments.of("c").interleave
    assert interleave is not None and interleave.percent == 10
    assert a.experiments.of("c").shadow == shadow  # b kept a's shadow, though it changed another part
    assert a.reset_experiment("c").experiment == 2
    b.experiments.reload("c")
    assert b.experiment("c").experiment == 2
    b.experiments.reload("gone")  # a collection this replica does not have: nothing to do
