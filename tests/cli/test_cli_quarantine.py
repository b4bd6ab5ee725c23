"""``embedswitch quarantine list|retry|skip`` and the quarantine column of ``status``, against a real
server whose version talks to ``_endpoint.py``'s endpoint (a fake only in the 400 it answers for
one text)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli import cli, ok
from _endpoint import Faults, endpoint, spec
from conftest import FAST, ServerThread

from embedswitch import Engine

REFUSED = "a text the provider refuses"


@pytest.fixture
def faults() -> Faults:
    return Faults(rejected={REFUSED})


@pytest.fixture
def url(tmp_path: Path, faults: Faults) -> Iterator[str]:
    with endpoint(faults) as model_url, Engine.open(tmp_path, FAST) as engine, ServerThread(engine) as server:
        engine.create_collection("docs", {"name": "v1", "model": "hashing"})
        engine.upsert("docs", [{"id": f"d{i}", "text": f"text {i}"} for i in range(10)])
        engine.upsert(
            "docs", [{"id": "bad", "text": REFUSED}, {"id": "worse", "kind": "note", "text": REFUSED}]
        )
        engine.add_version("docs", {"name": "v2", "model": spec(model_url)})
        deadline = time.monotonic() + 30
        while engine.describe_version("docs", "v2").quarantined < 2:
            assert time.monotonic() < deadline, "the rejected records were never quarantined"
            time.sleep(0.05)
        yield server.url


def test_list_retry_skip_and_status(url: str, faults: Faults) -> None:
    listing = ok(url, "quarantine", "list", "docs", "v2")
    assert "bad" in listing and "worse" in listing and "HTTP 400" in listing and "2 open" in listing
    assert [
        r["id"] for r in json.loads(ok(url, "quarantine", "list", "docs", "v2", "--json"))["records"]
    ] == [
        "bad",
        "worse",
    ]
    status = ok(url, "status", "docs")
    assert "quarantined" in status and "building" in status
    assert "1 rejected again" in ok(url, "quarantine", "retry", "docs", "v2", "--id", "bad")
    assert "1 skipped; 1 open, 1 skipped" in ok(url, "quarantine", "skip", "docs", "v2", "--id", "bad")
    assert "1 (+1 skipped)" in ok(url, "status", "docs")
    missing = cli(url, "quarantine", "skip", "docs", "v2", "--id", "worse")  # kind doc: not quarantined
    assert missing.exit_code == 1 and "error [record_not_found]" in missing.output
    faults.rejected.clear()
    retried = json.loads(ok(url, "quarantine", "retry", "docs", "v2", "--json"))
    assert (retried["changed"], retried["open"], retried["skipped"]) == (2, 0, 0)
    assert "0 open (holding the version back), 0 skipped" in ok(url, "quarantine", "list", "docs", "v2")
