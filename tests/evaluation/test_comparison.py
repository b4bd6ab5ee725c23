"""Judging a candidate on logged queries while it loads (``Engine.evaluate_candidate``,
``POST /v1/collections/{c}/versions/{v}/evaluate``): fairness mid-backfill, overlap of identical and
different models, judgments, ``backfill_sample`` and its seq guards, and the errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _checks import assert_end_state
from conftest import FAST, ServerThread

from embedswitch import (
    Client,
    Conflict,
    Engine,
    InvalidRequest,
    NoLoggedQueries,
    VersionNotFound,
)
from embedswitch.demo import SAMPLE_CORPUS, read_records

LOGGED = FAST.model_copy(update={"query_log_size": 1000})
STATIC = {"name": "v1", "model": "minilm-static"}
SAME = {"name": "v2", "model": "minilm-static"}  # the same model under another name
OTHER = {"name": "v3", "model": {"type": "hashing", "dim": 64}}


def corpus() -> list[dict[str, Any]]:
    """The 200 SciFact abstracts shipped in the package, in id order."""
    return sorted(
        ({"id": r["id"], "text": r["text"]} for r in read_records(SAMPLE_CORPUS)), key=lambda r: r["id"]
    )


def queries() -> list[str]:
    """Short queries: the first words of every fifth abstract."""
    return [" ".join(r["text"].split()[:6]) for r in corpus()[::5]]


def searched(engine: Engine, collection: str = "c") -> None:
    """Live traffic: every query once, answered by the routed version."""
    for text in queries():
        engine.search(collection, text)


def build(engine: Engine, *versions: dict[str, Any]) -> None:
    engine.create_collection("c", STATIC)
    ack = engine.upsert("c", corpus())
    engine.collection("c").get_version("v1").wait_applied(ack.seq, 60)
    for version in versions:
        engine.add_version("c", version)


def wait_some_records(engine: Engine, version: str, at_least: int = 1) -> None:
    deadline = time.monotonic() + 60
    while engine.describe_version("c", version).records < at_least:
        assert time.monotonic() < deadline, f"{version} embedded nothing"
        time.sleep(0.02)


# -- fairness and overlap ------------------------------------------------------------------------


def test_identical_models_overlap_fully_even_mid_backfill(tmp_path: Path) -> None:
    slow = LOGGED.model_copy(update={"backfill_max_rate": 10.0, "backfill_batch": 8, "encode_workers": 1})
    with Engine.open(tmp_path / "data", slow) as engine:
        build(engine, SAME)
        searched(engine)
        wait_some_records(engine, "v2", 20)
        report = engine.evaluate_candidate("c", "v2", {"sample": 100, "seed": 3})
        # the unfair comparison this avoids: the live version ranks records the candidate lacks
        plain = [
            (
                {h.id for h in engine.search("c", text, version="v1").hits},
                {h.id for h in engine.search("c", text, version="v2").hits},
            )
            for text in queries()
        ]
    assert report.versions["v2"].state == "building"
    assert report.against == "v1"
    assert 20 <= report.coverage.shared < report.coverage.records == 200
    assert report.coverage.candidate == report.coverage.shared and report.coverage.against == 200
    assert report.coverage.ratio == pytest.approx(report.coverage.shared / 200)
    assert report.overlap.jaccard == 1.0 and report.overlap.rbo == pytest.approx(1.0)
    assert report.overlap.k == 10 and report.overlap.p == 0.9
    assert any(live != candidate for live, candidate in plain)
    assert report.sample.used == len(queries()) == report.sample.logged
    assert any("building" in w for w in report.warnings)
    mine, theirs = report.versions["v2"], report.versions["v1"]
    assert mine.top1 == theirs.top1 and mine.topk == theirs.topk  # same vectors, same shared records
    assert mine.topk.n == 10 * len(queries())
    assert mine.latency_ms.p50 > 0 and theirs.latency_ms.p99 >= theirs.latency_ms.p50


def test_different_models_overlap_less_and_report_their_scores(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, OTHER)
        engine.wait_ready("c", "v3", timeout_s=60)
        searched(engine)
        report = engine.evaluate_candidate("c", "v3", {"sample": 20, "seed": 1, "k": 5})
    assert report.sample.used == 20 and report.sample.logged == len(queries()) and report.sample.seed == 1
    assert report.coverage.ratio == 1.0 and report.coverage.shared == 200
    assert 0.0 <= report.overlap.jaccard < 1.0 and 0.0 <= report.overlap.rbo < 1.0
    assert report.overlap.k == 5
    for side in report.versions.values():
        assert side.state == "ready"
        assert side.top1.n == 20 and side.topk.n == 100
        assert side.top1.p10 <= side.top1.p50 <= side.top1.p90
        assert side.ndcg is None
    assert report.versions["v3"].model_label == "hashing"
    assert report.judged == 0 and report.warnings == []


def test_the_same_seed_draws_the_same_sample(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, OTHER)
        engine.wait_ready("c", "v3", timeout_s=60)
        searched(engine)
        first = engine.evaluate_candidate("c", "v3", {"sample": 10, "seed": 42})
        again = engine.evaluate_candidate("c", "v3", {"sample": 10, "seed": 42})
        unseeded = engine.evaluate_candidate("c", "v3", {"sample": 10})
    assert first.overlap == again.overlap
    assert first.versions["v3"].top1 == again.versions["v3"].top1
    assert unseeded.sample.seed >= 0  # reported, so the draw can be repeated


def test_judged_queries_get_ndcg_on_the_shared_records(tmp_path: Path) -> None:
    docs = corpus()
    texts = queries()
    # each query is judged relevant to the abstract it was cut from (every fifth one)
    judgments = {f"q{i}": {docs[5 * i]["id"]: 1} for i in range(len(texts))}
    body = {
        "sample": 100,
        "seed": 5,
        "queries": {f"q{i}": t for i, t in enumerate(texts)},
        "qrels": judgments,
    }
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, SAME, OTHER)
        engine.wait_ready("c", "v2", timeout_s=60)
        engine.wait_ready("c", "v3", timeout_s=60)
        searched(engine)
        same = engine.evaluate_candidate("c", "v2", body)
        other = engine.evaluate_candidate("c", "v3", body)
    assert same.judged == other.judged == len(texts)
    ndcg = same.versions["v2"].ndcg
    assert ndcg is not None and ndcg == same.versions["v1"].ndcg
    assert ndcg > 0.5  # minilm-static finds the abstract a query was cut from
    assert other.versions["v3"].ndcg is not None and other.versions["v1"].ndcg == ndcg


def test_like_queries_are_replayed_and_skipped_where_the_candidate_lacks_the_record(tmp_path: Path) -> None:
    slow = LOGGED.model_copy(update={"backfill_max_rate": 10.0, "backfill_batch": 8, "encode_workers": 1})
    docs = corpus()
    with Engine.open(tmp_path / "data", slow) as engine:
        build(engine, SAME)
        wait_some_records(engine, "v2", 10)
        held = set(engine.collection("c").get_version("v2").index("doc").ids())  # type: ignore[union-attr]
        first, last = docs[0]["id"], docs[-1]["id"]  # the backfill goes in id order
        assert first in held and last not in held
        engine.search("c", like={"kind": "doc", "id": last})
        with pytest.raises(NoLoggedQueries, match="could be replayed"):
            engine.evaluate_candidate("c", "v2", {"sample": 2})
        engine.search("c", like={"kind": "doc", "id": first})
        report = engine.evaluate_candidate("c", "v2", {"sample": 2})
    assert report.sample.used == 1 and report.sample.skipped == 1
    assert report.overlap.jaccard == 1.0
    assert any("skipped" in w for w in report.warnings)


# -- backfill_sample -------------------------------------------------------------------------------


def test_backfill_sample_raises_coverage_and_later_updates_win(tmp_path: Path) -> None:
    slow = LOGGED.model_copy(update={"backfill_max_rate": 40.0, "backfill_batch": 8, "encode_workers": 1})
    docs = corpus()
    with Engine.open(tmp_path / "data", slow) as engine:
        build(engine, SAME)
        searched(engine)
        wait_some_records(engine, "v2")
        report = engine.evaluate_candidate("c", "v2", {"sample": 10, "backfill_sample": 60, "seed": 9})
        assert report.backfill_sample is not None and report.backfill_sample.requested == 60
        assert 0 < report.backfill_sample.embedded <= 60
        assert report.coverage.shared >= 60
        assert report.overlap.jaccard == 1.0
        candidate = engine.collection("c").get_version("v2")
        index = candidate.index("doc")
        assert index is not None
        # a record out of the backfill's order (the last in id order) now has its vector, at its seq
        ahead = [r["id"] for r in docs[100:] if index.seq_of(r["id"]) is not None]
        assert ahead, "the sample embedded nothing ahead of the backfill"
        target = ahead[-1]
        assert index.seq_of(target) == engine.get_record("c", target).seq
        # updated after the sample: the applier's newer write wins, and the backfill leaves it alone
        new_text = "an entirely new abstract about honeybee navigation and the waggle dance"
        ack = engine.upsert("c", [{"id": target, "text": new_text}])
        assert candidate.wait_applied(ack.seq, 30)
        engine.wait_ready("c", "v2", timeout_s=120)
        stored = index.get([target])[target]
        np.testing.assert_allclose(stored, candidate.model.encode([new_text])[0], atol=1e-5)
        assert index.seq_of(target) == ack.seq
        assert_end_state(engine, "c")


def test_backfill_sample_is_capped_by_what_the_candidate_lacks(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, SAME)
        engine.wait_ready("c", "v2", timeout_s=60)
        searched(engine)
        report = engine.evaluate_candidate("c", "v2", {"sample": 5, "backfill_sample": 50})
    assert report.backfill_sample is not None and report.backfill_sample.embedded == 0
    assert report.coverage.ratio == 1.0


# -- the query log being off or empty, and the other errors ---------------------------------------


def test_query_log_off_is_a_clear_409(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", FAST) as engine:
        build(engine, SAME)
        searched(engine)
        with pytest.raises(NoLoggedQueries, match="EMBEDSWITCH_QUERY_LOG_SIZE") as caught:
            engine.evaluate_candidate("c", "v2", {"sample": 10})
    assert caught.value.status == 409 and caught.value.code == "no_logged_queries"
    assert not (tmp_path / "data" / "querylog.db").exists()


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, SAME)
        with pytest.raises(NoLoggedQueries, match="empty"):
            engine.evaluate_candidate("c", "v2", {"sample": 10})
        searched(engine)
        with pytest.raises(VersionNotFound, match="v9"):
            engine.evaluate_candidate("c", "v9", {"sample": 10})
        with pytest.raises(VersionNotFound, match="v9"):
            engine.evaluate_candidate("c", "v2", {"sample": 10, "against": "v9"})
        with pytest.raises(InvalidRequest, match="candidate"):
            engine.evaluate_candidate("c", "v2", {"sample": 10, "against": "v2"})
        with pytest.raises(Conflict, match="against"):
            engine.evaluate_candidate("c", "v1", {"sample": 10})  # v1 has all the traffic
        with pytest.raises(InvalidRequest, match="sample"):
            engine.evaluate_candidate("c", "v2", {"sample": 0})
        with pytest.raises(InvalidRequest, match="both"):
            engine.evaluate_candidate("c", "v2", {"sample": 5, "queries": {"q": "text"}})
        report = engine.evaluate_candidate("c", "v1", {"sample": 5, "against": "v2"})
    assert report.candidate == "v1" and report.against == "v2"


# -- over HTTP and the client --------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    with Engine.open(tmp_path / "data", LOGGED) as engine:
        build(engine, OTHER)
        engine.wait_ready("c", "v3", timeout_s=60)
        with ServerThread(engine) as server:
            yield engine, server.url


def test_http_and_client(served: tuple[Engine, str]) -> None:
    engine, url = served
    path = "/v1/collections/c/versions/v3/evaluate"
    with httpx.Client(base_url=url, timeout=60) as http:
        empty = http.post(path, json={"sample": 5})
        assert empty.status_code == 409 and empty.json()["code"] == "no_logged_queries"
        for text in queries():  # traffic over HTTP is logged like any other
            assert http.post("/v1/collections/c/search", json={"text": text}).status_code == 200
        body = http.post(path, json={"sample": 10, "seed": 2, "backfill_sample": 5}).json()
        assert set(body) >= {"candidate", "against", "sample", "coverage", "overlap", "versions", "warnings"}
        assert set(body["overlap"]) == {"k", "jaccard", "rbo", "p"}
        assert set(body["versions"]) == {"v1", "v3"}
        assert set(body["versions"]["v3"]["latency_ms"]) == {"p50", "p99"}
        assert set(body["versions"]["v3"]["top1"]) == {"n", "mean", "p10", "p50", "p90"}
        bad = http.post(path, json={"sample": 10, "backfill_sample": -1})
        assert bad.status_code == 422 and "backfill_sample" in bad.json()["message"]
        assert http.post("/v1/collections/c/versions/nope/evaluate", json={"sample": 1}).status_code == 404
    with Client(url) as client:
        report = client.evaluate_candidate("c", "v3", {"sample": 10, "seed": 2})
        assert report.overlap.jaccard == body["overlap"]["jaccard"]
        with pytest.raises(VersionNotFound):
            client.evaluate_candidate("c", "nope", {"sample": 1})
    assert engine.query_log.count("c") == len(queries())
