"""``embedswitch simulate`` drives a real server with simulated users on SciFact's judged queries."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FAST, SCIFACT, ServerThread, needs_scifact
from typer.testing import CliRunner

from embedswitch import Engine
from embedswitch.cli import app
from embedswitch.evaluation.simulation import judged_subset


@needs_scifact
def test_simulate_sends_searches_and_clicks(tmp_path: Path) -> None:
    data = judged_subset(SCIFACT, queries=300, extra_docs=0)
    with Engine.open(tmp_path / "data", FAST) as engine, ServerThread(engine) as server:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", data.records)
        args = ["simulate", "c", "--sessions", "40", "--beir", str(SCIFACT), "--url", server.url]
        done = CliRunner().invoke(app, [*args, "--json"])
        assert done.exit_code == 0, done.output
        report = json.loads(done.output)
        assert report["sessions"] == 40 and report["errors"] == {}
        assert report["by_version"]["v1"]["sessions"] == 40
        assert (
            engine.experiment("c").ab.arms["v1"].clicks == report["by_version"]["v1"]["clicked_sessions"] > 0
        )

        table = CliRunner().invoke(app, [*args, "--seed", "1"], env={"COLUMNS": "200"})
        assert (
            table.exit_code == 0 and "simulated users on c" in table.output and "errors: none" in table.output
        )
