"""``embedswitch.demo``: the demo on the shipped sample, and the demo command's output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from embedswitch import Engine, InvalidRequest
from embedswitch.cli.demo import base_url, print_intro
from embedswitch.demo import (
    SAMPLE_CORPUS,
    DemoProgress,
    DemoReport,
    count_records,
    default_corpus,
    ensure_demo,
    parse_line,
    read_records,
)


def test_sample_corpus_is_shipped_in_beir_format() -> None:
    lines = SAMPLE_CORPUS.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    first = json.loads(lines[0])
    assert set(first) == {"_id", "title", "text", "metadata"}
    assert (SAMPLE_CORPUS.parent / "SAMPLE_SOURCE.md").is_file()


def test_default_corpus_prefers_the_shared_scifact(tmp_path: Path) -> None:
    assert default_corpus(tmp_path) == SAMPLE_CORPUS
    shared = tmp_path / "shared" / "data" / "scifact" / "corpus.jsonl"
    shared.parent.mkdir(parents=True)
    shared.write_text("")
    repo = tmp_path / "main"
    repo.mkdir()
    assert default_corpus(repo).resolve() == shared.resolve()


def test_ensure_demo_loads_the_sample_then_only_changes(tmp_path: Path) -> None:
    steps: list[DemoProgress] = []
    with Engine.open(tmp_path / "data") as engine:
        first = ensure_demo(engine, SAMPLE_CORPUS, steps.append, model="hashing")
        assert first.created and first.records == 200 and first.changed == 200
        assert first.serving == ["v1"] and first.head_seq == 200
        assert [s.stage for s in steps][:2] == ["create", "ingest"]
        assert steps[-1] == DemoProgress("index", detail="v1")
        assert max(s.done for s in steps if s.stage == "ingest") == 200

        record = engine.get_record("scifact", "4983")
        title = record.fields["title"]
        assert record.text.startswith(f"{title} Alterations of the architecture")
        hits = engine.search("scifact", record.text, k=1)
        assert hits.version == "v1" and hits.hits[0].id == "4983"

        steps.clear()
        again = ensure_demo(engine, SAMPLE_CORPUS, steps.append, model="hashing")
        assert not again.created and again.records == 200 and again.changed == 0
        assert "create" not in [s.stage for s in steps]


def test_ensure_demo_reopens_an_existing_data_dir(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data") as engine:
        ensure_demo(engine, SAMPLE_CORPUS, model="hashing")
    with Engine.open(tmp_path / "data") as engine:
        report = ensure_demo(engine, SAMPLE_CORPUS, model="hashing")
        assert not report.created and report.changed == 0
        assert engine.describe_version("scifact", "v1").records == 200


def test_read_records_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "a", "text": "one"}\n\n[1, 2]\n{"id": "c", "text": "three"}\n')
    found = []
    with pytest.raises(InvalidRequest, match=r"x\.jsonl, line 3: expected a JSON object, got list"):
        for record in read_records(path):
            found.append(record["id"])
    assert found == ["a"]
    assert count_records(path) == 3


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"id": "a", "text": "x", "color": "red"}', "unknown keys ['color']"),
        (b'{"text": "x"}', "missing 'id'"),
        (b'{"id": "a", "text": "   "}', "text: text is empty"),
        (b'{"id": "a", "text": "x", "kind": "Bad Kind"}', "kind:"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_parse_line_says_what_is_wrong(line: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_line(line)


def test_parse_line_accepts_integer_ids_and_record_kinds() -> None:
    assert parse_line(b'{"id": 7, "text": "x"}', kind="item") == {
        "id": "7",
        "text": "x",
        "kind": "item",
        "fields": {},
    }
    assert parse_line(b'{"id": "q", "text": "x", "kind": "query"}')["kind"] == "query"


def test_intro_prints_the_url_and_commands_to_paste() -> None:
    console = Console(width=60, record=True, file=io.StringIO())
    report = DemoReport("scifact", True, SAMPLE_CORPUS, 200, 200, 200, ["v1"])
    print_intro(console, report, base_url("0.0.0.0", 8001))
    out = console.export_text()
    assert "http://127.0.0.1:8001/docs" in out
    assert 'embedswitch search scifact "vitamin D' in out and "--url http://127.0.0.1:8001" in out
    assert "curl -s -X POST http://127.0.0.1:8001/v1/collections/scifact/search" in out
    assert "embedswitch status scifact --url http://127.0.0.1:8001" in out
    assert "(from the repo: .venv/bin/embedswitch ...)" in out
    assert base_url("::1", 8000) == "http://[::1]:8000"


def test_intro_leaves_out_the_default_url() -> None:
    console = Console(width=200, record=True, file=io.StringIO())
    report = DemoReport("scifact", False, SAMPLE_CORPUS, 200, 0, 200, ["v1"])
    print_intro(console, report, base_url("127.0.0.1", 8000))
    out = console.export_text()
    assert "  embedswitch status scifact\n" in out and "--url" not in out
