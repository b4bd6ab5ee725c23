"""``embedswitch traffic --shadow/--interleave``, ``experiment show|reset`` and ``feedback`` against a
real server."""

from __future__ import annotations

import json

from _cli import cli, ok
from conftest import ServerThread

from embedswitch import Engine


def test_experiment_commands(engine: Engine) -> None:
    engine.create_collection("docs", {"name": "v1", "model": "hashing"})
    engine.upsert(
        "docs", [{"id": f"r{i}", "text": f"record {i} about cats and {i % 5} dogs"} for i in range(40)]
    )
    engine.add_version("docs", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
    engine.wait_ready("docs", "v2")
    with ServerThread(engine) as server:
        url = server.url
        shown = ok(url, "traffic", "docs", "v1=50", "v2=50", "--shadow", "v2=10", "--interleave", "v1,v2=20")
        assert "shadow: 10% of routed requests mirrored to v2" in shown
        assert "interleave: 20% of routed searches interleave v1 and v2" in shown
        assert "shadow:" not in ok(url, "traffic", "docs", "--shadow", "off")
        bad = cli(url, "traffic", "docs", "--shadow", "v2")
        assert bad.exit_code == 1 and "error [invalid_request]" in bad.output and "v2=10" in bad.output

        result = engine.search("docs", "cats", k=3, key="someone")
        hit, credited = result.hits[0].id, result.hits[0].version or result.version
        out = ok(url, "feedback", "docs", result.request_id, hit)
        assert f"click on '{hit}' (rank 1, version {credited}): counted" in out
        assert "already counted" in ok(url, "feedback", "docs", result.request_id, hit)
        missing = cli(url, "feedback", "docs", "f" * 32, hit)
        assert missing.exit_code == 1 and "error [request_not_found]" in missing.output

        table = ok(url, "experiment", "show", "docs")
        assert "experiment #1 of docs" in table and "control" in table
        report = json.loads(ok(url, "experiment", "show", "docs", "--json"))
        assert report["ab"]["arms"][result.version]["clicks"] == 1
        assert json.loads(ok(url, "experiment", "reset", "docs", "--json"))["experiment"] == 2
