"""``embedswitch rollouts start|show|stop`` against a real server, with hashing versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import cli as run_cli
from _cli import ok as cli_ok
from click.testing import Result
from conftest import FAST, ServerThread

from embedswitch import Engine


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"record number {i}"} for i in range(20)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        engine.wait_ready("c", "v2")
        with ServerThread(engine) as server:
            yield server.url


def cli(url: str, *args: str) -> Result:
    return run_cli(url, "rollouts", *args)


def ok(url: str, *args: str) -> str:
    return cli_ok(url, "rollouts", *args)


def test_start_wait_show_and_stop(url: str, tmp_path: Path) -> None:
    out = ok(url, "start", "c", "v2", "--steps", "100", "--wait")
    assert "completed" in out and "v2=100" in out and "first step (no offline gate)" in out

    listing = ok(url, "show", "c")
    assert "rollouts of c" in listing and "transitions of rollout #1" in listing
    assert "started" in listing and "completed" in listing

    shown = json.loads(ok(url, "show", "c", "1", "--json"))
    assert shown["status"] == "completed" and shown["weights"] == {"v2": 100}
    assert [t["outcome"] for t in shown["transitions"]] == ["started", "completed"]

    refused = cli(url, "stop", "c", "1")
    assert refused.exit_code == 1 and "error [conflict]" in refused.output

    out = ok(url, "start", "c", "v1", "--steps", "50,100", "--min-requests", "1000000", "--json")
    assert json.loads(out)["status"] == "running"
    stopped = ok(url, "stop", "c", "2")
    assert "stopped" in stopped and "v2=100" in stopped and "stopped by the operator" in stopped


def test_bad_options_are_reported(url: str, tmp_path: Path) -> None:
    steps = cli(url, "start", "c", "v2", "--steps", "10,x")
    assert steps.exit_code == 1 and "--steps" in steps.output
    half = cli(url, "start", "c", "v2", "--offline-min", "0.5")
    assert half.exit_code == 1 and "--beir" in half.output
    missing = cli(url, "show", "c", "7")
    assert missing.exit_code == 1 and "error [rollout_not_found]" in missing.output
    not_ending = cli(url, "start", "c", "v2", "--steps", "10,50")
    assert not_ending.exit_code == 1 and "end at 100" in not_ending.output


def test_an_offline_gate_from_a_local_beir_dir(url: str, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "record number 3"}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\n")
    out = ok(url, "start", "c", "v2", "--steps", "100", "--beir", str(beir), "--offline-min", "0.5", "--wait")
    assert "completed" in out and "offline ndcg@10 of v2 1.0000 >= 0.5" in out
