"""The ``embedswitch`` commands against a real server on a free port, with the hashing model."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from _cli import cli, ok
from typer.testing import CliRunner

from embedswitch import Client, Engine
from embedswitch.cli import app
from embedswitch.http.app import create_app

HASHING_128 = '{"type": "hashing", "dim": 128}'


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """The URL of a real uvicorn server over an engine in ``tmp_path``, stopped after the test."""
    engine = Engine.open(tmp_path / "data")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def docs(n: int) -> list[dict[str, object]]:
    topics = ["cats purr", "dogs bark", "birds sing", "fish swim", "cows moo"]
    return [{"id": f"d{i}", "text": f"{topics[i % 5]} number {i}", "fields": {"n": i}} for i in range(n)]


def create(url: str, name: str = "docs") -> None:
    ok(url, "collections", "create", name, "--version", "v1", "--model", "hashing")


def ready(url: str, collection: str = "docs", version: str = "v1") -> None:
    with Client(url) as client:
        client.wait_ready(collection, version, timeout_s=30)


# -- collections ------------------------------------------------------------------------------


def test_collections_create_list_show_delete(url: str) -> None:
    out = ok(
        url, "collections", "create", "docs", "--version", "v1", "--model", "hashing", "--index", "exact"
    )
    assert "created collection 'docs' with version 'v1'" in out
    assert "hashing" in out and "dim 256" in out and "index exact" in out

    listing = ok(url, "collections", "list")
    assert "docs" in listing and "v1=100" in listing

    shown = ok(url, "collections", "show", "docs")
    for column in ("name", "model", "dim", "state", "applied_seq", "records", "weight"):
        assert column in shown
    assert "v1" in shown and "ready" in shown and "256" in shown

    as_json = json.loads(ok(url, "collections", "show", "docs", "--json"))
    assert as_json["name"] == "docs" and as_json["traffic"] == {"v1": 100}

    assert "deleted collection 'docs'" in ok(url, "collections", "delete", "docs", "--yes")
    assert json.loads(ok(url, "collections", "list", "--json")) == []


def test_collections_create_with_model_spec(url: str) -> None:
    ok(url, "collections", "create", "docs", "--model-spec", HASHING_128)
    assert json.loads(ok(url, "collections", "show", "docs", "--json"))["versions"][0]["dim"] == 128
    both = cli(url, "collections", "create", "other", "--model", "hashing", "--model-spec", HASHING_128)
    assert both.exit_code == 1
    assert "error [invalid_request]: give --model or --model-spec, not both" in both.output


def test_model_errors_are_reported(url: str) -> None:
    unknown = cli(url, "collections", "create", "docs", "--model", "no-such-model")
    assert unknown.exit_code == 1 and "error [unknown_model]: unknown model 'no-such-model'" in unknown.output
    bad_json = cli(url, "collections", "create", "docs", "--model-spec", "{oops")
    assert (
        bad_json.exit_code == 1
        and "error [invalid_request]: --model-spec is not valid JSON" in bad_json.output
    )
    create(url)
    missing = cli(url, "versions", "add", "docs", "v2")
    assert missing.exit_code == 1 and "error [invalid_request]: name the model with --model" in missing.output
    again = cli(url, "versions", "add", "docs", "v1", "--model", "hashing")
    assert again.exit_code == 1 and "error [version_exists]" in again.output


def test_delete_collection_asks_first(url: str) -> None:
    create(url)
    refused = CliRunner().invoke(app, ["collections", "delete", "docs", "--url", url], input="n\n")
    assert refused.exit_code == 1
    assert "docs" in ok(url, "collections", "list")


# -- records ----------------------------------------------------------------------------------


def test_ingest_jsonl_resumes_and_reports_changes(url: str, tmp_path: Path) -> None:
    create(url)
    rows = docs(7) + [{"id": "q1", "text": "a query", "kind": "query"}]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)

    first = ok(url, "ingest", "docs", str(path), "--batch", "3")
    assert "8 records, 8 changed; seq 8" in first
    again = ok(url, "ingest", "docs", str(path), "--batch", "3")
    assert "8 records, 0 changed; seq 8" in again

    rows[0] = {"id": "d0", "text": "cats purr loudly"}
    write_jsonl(path, rows)
    assert "8 records, 1 changed; seq 9" in ok(url, "ingest", "docs", str(path))

    record = json.loads(ok(url, "get", "docs", "d3", "--json"))
    assert record == {"id": "d3", "kind": "doc", "text": "fish swim number 3", "fields": {"n": 3}, "seq": 4}
    assert "a query" in ok(url, "get", "docs", "q1", "--kind", "query")
    assert "deleted doc record 'd3'" in ok(url, "delete", "docs", "d3")
    gone = cli(url, "get", "docs", "d3")
    assert gone.exit_code == 1 and "error [record_not_found]" in gone.output


def test_ingest_beir_corpus_joins_title(url: str, tmp_path: Path) -> None:
    create(url)
    path = write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "4983", "title": "White matter", "text": "Diffusion imaging.", "metadata": {}},
            {"_id": "5836", "title": "", "text": "No title here.", "metadata": {"year": 2001}},
        ],
    )
    assert "2 records, 2 changed" in ok(url, "ingest", "docs", str(path))
    titled = json.loads(ok(url, "get", "docs", "4983", "--json"))
    assert titled["text"] == "White matter Diffusion imaging."
    assert titled["fields"] == {"title": "White matter"}
    untitled = json.loads(ok(url, "get", "docs", "5836", "--json"))
    assert untitled["text"] == "No title here." and untitled["fields"] == {"year": 2001}
    assert "2 records, 0 changed" in ok(url, "ingest", "docs", str(path))


def test_ingest_malformed_line_names_it_and_sends_nothing_after(url: str, tmp_path: Path) -> None:
    create(url)
    lines = [json.dumps(row) for row in docs(2)] + ['{"id": "bad", "text": ', json.dumps(docs(4)[3])]
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = cli(url, "ingest", "docs", str(path))
    assert result.exit_code == 1
    assert "error [invalid_request]:" in result.output
    assert "line 3: not valid JSON" in result.output
    with Client(url) as client:
        assert client.describe("docs").records == 2


def test_ingest_rejects_record_without_text(url: str, tmp_path: Path) -> None:
    create(url)
    path = write_jsonl(tmp_path / "docs.jsonl", [{"id": "a", "text": "fine"}, {"id": "b"}])
    result = cli(url, "ingest", "docs", str(path))
    assert result.exit_code == 1
    assert "line 2:" in result.output and '"text" to embed' in result.output


# -- search -----------------------------------------------------------------------------------


def test_search_table_names_the_version(url: str, tmp_path: Path) -> None:
    create(url)
    rows = [{"id": f"d{i}", "text": f"dogs bark {i}", "fields": {"title": f"Dog {i}"}} for i in range(3)]
    rows.append({"id": "c", "text": "cats purr", "fields": {"lang": "en"}})
    ok(url, "ingest", "docs", str(write_jsonl(tmp_path / "d.jsonl", rows)))
    ready(url)

    out = ok(url, "search", "docs", "dogs bark", "-k", "4")
    assert "answered by version v1" in out and "request id" in out
    for column in ("rank", "id", "score", "title"):
        assert column in out
    assert "Dog 0" in out and '{"lang":"en"}' in out

    result = json.loads(ok(url, "search", "docs", "cats purr", "-k", "1", "--json", "--version", "v1"))
    assert result["version"] == "v1"
    assert result["hits"][0]["id"] == "c"
    score = f"{result['hits'][0]['score']:.4f}"
    assert score in ok(url, "search", "docs", "cats purr", "-k", "1")


# -- versions and traffic ---------------------------------------------------------------------


def test_version_lifecycle(url: str, tmp_path: Path) -> None:
    create(url)
    ok(url, "ingest", "docs", str(write_jsonl(tmp_path / "d.jsonl", docs(40))))
    ready(url)

    added = ok(url, "versions", "add", "docs", "v2", "--model-spec", HASHING_128, "--wait")
    assert "added version 'v2'" in added and "backfilling 40 records" in added
    assert "version 'v2' is ready: 40 records" in added

    listing = ok(url, "versions", "list", "docs")
    assert "v1" in listing and "v2" in listing and "128" in listing
    shown = ok(url, "versions", "show", "docs", "v2")
    assert "40/40 (100%)" in shown and "created" in shown

    split = ok(url, "traffic", "docs", "v1=90", "v2=10")
    assert "90%" in split and "10%" in split
    assert "set" in ok(url, "traffic", "docs")

    status = ok(url, "status", "docs")
    for column in ("version", "model", "state", "weight", "applied_seq", "lag", "records", "backfill"):
        assert column in status
    assert "100%" in status

    assert "promote v2" in ok(url, "promote", "docs", "v2")
    has_traffic = cli(url, "retire", "docs", "v2")
    assert has_traffic.exit_code == 1 and "error [version_has_traffic]" in has_traffic.output

    rolled = json.loads(ok(url, "rollback", "docs", "--json"))
    assert rolled["weights"] == {"v1": 90, "v2": 10}

    ok(url, "promote", "docs", "v2")
    assert "retired version 'v1'" in ok(url, "retire", "docs", "v1")
    assert [v["name"] for v in json.loads(ok(url, "versions", "list", "docs", "--json"))] == ["v2"]
    assert "answered by version v2" in ok(url, "search", "docs", "dogs bark")


def test_traffic_rejects_a_malformed_pair(url: str) -> None:
    create(url)
    result = cli(url, "traffic", "docs", "v1:90")
    assert result.exit_code == 1
    assert "error [invalid_request]: expected VERSION=WEIGHT such as v1=90, got 'v1:90'" in result.output


def test_version_not_ready_for_traffic_is_reported(url: str) -> None:
    create(url)
    result = cli(url, "traffic", "docs", "v1=50", "v9=50")
    assert result.exit_code == 1 and "error [version_not_found]" in result.output


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status", "nope"),
        ("collections", "show", "nope"),
        ("search", "nope", "anything"),
        ("versions", "list", "nope"),
        ("traffic", "nope"),
    ],
)
def test_unknown_collection_is_one_red_line(url: str, args: tuple[str, ...]) -> None:
    result = cli(url, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error [collection_not_found]: collection 'nope' does not exist")
    assert result.stderr.count("\n") == 1


def test_unreachable_server_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = cli(f"http://127.0.0.1:{port}", "collections", "list")
    assert result.exit_code == 1
    assert "error [unreachable]: cannot reach an embedswitch server" in result.output


def test_url_comes_from_the_environment(url: str) -> None:
    create(url)
    result = CliRunner().invoke(app, ["collections", "list"], env={"EMBEDSWITCH_URL": url, "COLUMNS": "200"})
    assert result.exit_code == 0 and "docs" in result.output


def test_batch_deployment_from_vectors(url: str, tmp_path: Path) -> None:
    create(url)
    ok(url, "ingest", "docs", str(write_jsonl(tmp_path / "docs.jsonl", docs(30))))
    out = ok(url, "versions", "add", "docs", "v2", "--model-spec", HASHING_128, "--source", "vectors")
    assert "load-vectors" in out
    rows = [{"id": f"d{i}", "vector": [1.0 if j == i else 0.0 for j in range(128)]} for i in range(20)]
    out = ok(
        url, "versions", "load-vectors", "docs", "v2", str(write_jsonl(tmp_path / "v.jsonl", rows)), "--wait"
    )
    assert "20 vectors loaded, 20 written" in out and "ready: 30 records" in out
    with Client(url) as client:
        info = client.describe_version("docs", "v2")
        assert (info.state, info.source, info.records) == ("ready", "vectors", 30)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "d1"}])
    result = cli(url, "versions", "load-vectors", "docs", "v2", str(bad))
    assert result.exit_code != 0 and "bad.jsonl:1" in result.output


def test_recommend_and_interactions_csv(url: str, tmp_path: Path) -> None:
    spec = '{"type": "history-mean", "text": "hashing"}'
    ok(url, "collections", "create", "shop", "--version", "v1", "--model-spec", spec)
    items = [
        {"id": f"i{n}", "kind": "item", "text": t}
        for n, t in enumerate(["star galaxy", "galaxy orbit", "pan pot"])
    ]
    ok(url, "ingest", "shop", str(write_jsonl(tmp_path / "items.jsonl", items)))
    csv = tmp_path / "events.csv"
    csv.write_text("user,item,weight\nu1,i0,1\nu2,i2,2\n")
    assert "2 interactions" in ok(url, "interactions", "shop", str(csv))
    ready(url, "shop")
    out = ok(url, "recommend", "shop", "--user", "u1", "-k", "1")
    assert "i1" in out and "answered by version v1" in out
    assert "popular" in ok(url, "recommend", "shop", "--user", "ghost", "--popular-fallback")
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\nu1,i404\n")
    result = cli(url, "interactions", "shop", str(bad))
    assert result.exit_code == 1 and "record_not_found" in result.output


def test_train_als_deploys_a_version_and_follows_it(url: str, tmp_path: Path) -> None:
    spec = '{"type": "history-mean", "text": "hashing"}'
    ok(url, "collections", "create", "shop", "--version", "v1", "--model-spec", spec)
    items = [{"id": f"i{n}", "kind": "item", "text": f"item number {n}"} for n in range(30)]
    ok(url, "ingest", "shop", str(write_jsonl(tmp_path / "items.jsonl", items)))
    csv = tmp_path / "events.csv"
    csv.write_text("user,item\n" + "".join(f"u{n % 7},i{(n * 5) % 30}\n" for n in range(60)))
    ok(url, "interactions", "shop", str(csv))
    out = ok(url, "train", "als", "shop", "--version", "v2", "--factors", "4", "--iterations", "3")
    assert "training version 'v2'" in out and "is ready" in out and "7 users" in out
    assert "answered by version v2" in ok(url, "recommend", "shop", "--user", "u1", "--version", "v2")
    result = cli(url, "train", "als", "shop", "--version", "v2")
    assert result.exit_code == 1 and "version_exists" in result.output
    empty = cli(url, "train", "als", "nope", "--version", "v9")
    assert empty.exit_code == 1 and "collection_not_found" in empty.output
