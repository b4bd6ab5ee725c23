"""``embedswitch evaluate`` (a BEIR folder, in chunks, aggregated like the server) and
``embedswitch evaluate-candidate``, against a real server on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import cli
from _judged import MEANS, toy, write_beir
from conftest import FAST, ServerThread

from embedswitch import Engine


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with Engine.open(tmp_path / "data", FAST.model_copy(update={"query_log_size": 100})) as engine:
        toy(engine)
        with ServerThread(engine) as server:
            yield server.url


def test_evaluate_a_beir_folder_in_chunks_gives_the_hand_checked_metrics(url: str, tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "beir")
    done = cli(url, "evaluate", "toy", "--versions", "v1,v2", "--beir", str(beir), "--batch", "3", "--json")
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["k"] == 10 and set(body["versions"]) == {"v1", "v2"}
    for scores in body["versions"].values():
        for metric, expected in MEANS.items():
            assert scores[metric] == pytest.approx(expected)
        assert scores["queries"] == 4 and scores["per_query"] is None
        assert set(scores["latency_ms"]) == {"p50", "p99"}


def test_evaluate_prints_a_table(url: str, tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "beir")
    done = cli(url, "evaluate", "toy", "--versions", "v1", "--beir", str(beir), "-k", "5")
    assert done.exit_code == 0, done.output
    assert "ndcg@5" in done.output and "recall@100" in done.output and "mrr@5" in done.output
    assert "0.7500" in done.output  # recall@100
    assert "4 judged queries" in done.output


def test_evaluate_errors_are_one_line(url: str, tmp_path: Path) -> None:
    missing = cli(url, "evaluate", "toy", "--versions", "v1", "--beir", str(tmp_path / "nope"))
    assert missing.exit_code == 1 and "invalid_request" in missing.output and "nope" in missing.output
    beir = write_beir(tmp_path / "beir")
    unknown = cli(url, "evaluate", "toy", "--versions", "v1,v9", "--beir", str(beir))
    assert unknown.exit_code == 1 and "version_not_found" in unknown.output and "v9" in unknown.output


def test_evaluate_candidate(url: str) -> None:
    empty = cli(url, "evaluate-candidate", "toy", "v2", "--sample", "5")
    assert empty.exit_code == 1 and "no_logged_queries" in empty.output
    for text in ("alpha apple", "bravo banana charlie", "delta date echo"):
        cli(url, "search", "toy", text)
    done = cli(url, "evaluate-candidate", "toy", "v2", "--sample", "5", "--seed", "1")
    assert done.exit_code == 0, done.output
    assert "v2 against v1" in done.output and "overlap@10" in done.output
    assert "12 of 12" in done.output and "seed 1" in done.output
    as_json = json.loads(cli(url, "evaluate-candidate", "toy", "v2", "--sample", "5", "--json").stdout)
    assert as_json["candidate"] == "v2" and as_json["sample"]["used"] == 3
