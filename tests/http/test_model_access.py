"""Model specs reach only what the settings allow, over real HTTP (and the CLI and the Python engine).

``_remote.Recorder`` stands in for a remote embedding endpoint and records every request it gets.
A spec naming a variable or a URL the settings don't allow is refused with 403
``model_not_allowed`` and the recorder gets nothing; an allowed variable's value reaches it as the
bearer token. A local path outside the model directories gets the same answer whether it exists or
not; inside, a missing or broken model is 422, never a 500. Errors never repeat what an endpoint
answered. A stored version whose spec is no longer allowed fails alone when the server restarts.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from _cli import cli
from _http import error, ok
from _remote import LEAK, Recorder, serve
from conftest import FAST, ServerThread

from embedswitch import Engine, EngineConfig, ModelNotAllowed

SECRET = "sk-must-not-leave-9c1e"
C = "/v1/collections/docs"


@pytest.fixture(scope="module")
def remote() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    with serve(recorder) as url:
        yield url, recorder


@pytest.fixture
def recorder(remote: tuple[str, Recorder]) -> Recorder:
    found = remote[1]
    found.answer = "ok"
    found.seen.clear()
    return found


@pytest.fixture
def endpoint(remote: tuple[str, Recorder], recorder: Recorder) -> str:
    return remote[0]


@contextmanager
def serving(data: Path, config: EngineConfig = FAST) -> Iterator[tuple[httpx.Client, Engine]]:
    with (
        Engine.open(data, config) as engine,
        ServerThread(engine) as running,
        httpx.Client(base_url=running.url, timeout=60) as h,
    ):
        yield h, engine


@pytest.fixture
def served(tmp_path: Path) -> Iterator[httpx.Client]:
    """A server with the default settings and a collection ``docs`` (v1: hashing, 3 records)."""
    with serving(tmp_path / "data") as (h, _):
        ok(
            h.post("/v1/collections", json={"name": "docs", "version": {"name": "v1", "model": "hashing"}}),
            201,
        )
        ack = ok(
            h.put(f"{C}/records", json={"records": [{"id": f"d{i}", "text": f"doc {i}"} for i in range(3)]})
        )
        ok(h.post(f"{C}/search", json={"text": "doc", "min_seq": ack["seq"]}))
        yield h


def state(h: httpx.Client) -> Any:
    """What a refused request must leave as it was."""
    found = []
    for info in ok(h.get("/v1/collections")):
        versions = [(v["name"], v["state"], v["weight"], v["records"]) for v in info["versions"]]
        events = len(ok(h.get(f"/v1/collections/{info['name']}/events")))
        found.append((info["name"], info["head_seq"], versions, events))
    return found


def openai(url: str, **fields: Any) -> dict[str, Any]:
    return {"type": "openai", "url": url, "model": "hash", **fields}


def wrapped(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """``spec`` alone, as the text model of history-mean and as the query model of none."""
    return [spec, {"type": "history-mean", "text": spec}, {"type": "none", "dim": 32, "query": spec}]


def refused(h: httpx.Client, model: Any) -> list[dict[str, Any]]:
    """Create a collection and add a version with ``model``: both 403 ``model_not_allowed``,
    nothing changed; the two error bodies."""
    before = state(h)
    bodies = [
        error(
            h.post("/v1/collections", json={"name": "fresh", "version": {"name": "v1", "model": model}}),
            403,
            "model_not_allowed",
        ),
        error(h.post(f"{C}/versions", json={"name": "v2", "model": model}), 403, "model_not_allowed"),
    ]
    assert state(h) == before
    return bodies


# -- environment variables -----------------------------------------------------------------


@pytest.mark.parametrize(
    "variable", ["HOME", "EMBEDSWITCH_TEST_SECRET", "EMBEDSWITCH_API_KEYS", "OPENAI_API_KEY"]
)
def test_a_variable_outside_the_allowlist_is_refused_and_nothing_leaves(
    served: httpx.Client, endpoint: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    if variable != "HOME":
        monkeypatch.setenv(variable, SECRET)
    value = os.environ[variable]
    for model in wrapped(openai(endpoint, api_key_env=variable)):
        for body in refused(served, model):
            assert f"'{variable}'" in body["message"] and "EMBEDSWITCH_KEY_" in body["message"]
            assert value not in json.dumps(body)
    assert recorder.seen == []


def test_an_allowed_variable_reaches_the_endpoint_as_the_bearer_token(
    served: httpx.Client, endpoint: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSWITCH_KEY_TEST", SECRET)
    spec = openai(endpoint, api_key_env="EMBEDSWITCH_KEY_TEST")
    ok(served.post("/v1/collections", json={"name": "remote", "version": {"name": "v1", "model": spec}}), 201)
    ack = ok(served.put("/v1/collections/remote/records", json={"records": [{"id": "a", "text": "cats"}]}))
    found = ok(served.post("/v1/collections/remote/search", json={"text": "cats", "min_seq": ack["seq"]}))
    assert [hit["id"] for hit in found["hits"]] == ["a"]
    assert len(recorder.seen) >= 3  # the probe, the record, the query
    assert {(s.method, s.path) for s in recorder.seen} == {("POST", "/v1/embeddings")}
    assert {s.headers["authorization"] for s in recorder.seen} == {f"Bearer {SECRET}"}


def test_the_python_engine_checks_too_and_how_to_allow_a_variable(
    tmp_path: Path, endpoint: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    spec = openai(endpoint, api_key_env="OPENAI_API_KEY")
    with (
        Engine.open(tmp_path / "default", FAST) as engine,
        pytest.raises(ModelNotAllowed, match="OPENAI_API_KEY"),
    ):
        engine.create_collection("docs", {"name": "v1", "model": spec})
    assert recorder.seen == []
    allowing = FAST.model_copy(update={"model_key_envs": ["EMBEDSWITCH_KEY_*", "OPENAI_API_KEY"]})
    with Engine.open(tmp_path / "allowing", allowing) as engine:
        engine.create_collection("docs", {"name": "v1", "model": spec})
    assert {s.headers["authorization"] for s in recorder.seen} == {f"Bearer {SECRET}"}


def test_the_cli_gets_the_refusal(served: httpx.Client, endpoint: str, recorder: Recorder) -> None:
    spec = json.dumps(openai(endpoint, api_key_env="HOME"))
    result = cli(str(served.base_url), "versions", "add", "docs", "v2", "--model-spec", spec)
    assert (
        result.exit_code == 1 and "error [model_not_allowed]" in result.output and "'HOME'" in result.output
    )
    assert recorder.seen == []


# -- URLs ----------------------------------------------------------------------------------


def test_a_url_outside_the_allowed_prefixes_is_refused_and_nothing_leaves(
    tmp_path: Path, endpoint: str, recorder: Recorder
) -> None:
    port = endpoint.rsplit(":", 1)[1]
    strict = FAST.model_copy(update={"model_urls": ["http://127.0.0.1:9/v1"]})
    with serving(tmp_path / "strict", strict) as (h, _):
        ok(
            h.post("/v1/collections", json={"name": "docs", "version": {"name": "v1", "model": "hashing"}}),
            201,
        )
        for url in (
            endpoint,
            f"http://127.0.0.1:9@127.0.0.1:{port}/v1",
            f"{endpoint}/?http://127.0.0.1:9/v1",
        ):
            for model in wrapped(openai(url)):
                for body in refused(h, model):
                    assert "EMBEDSWITCH_MODEL_URLS" in body["message"]
    assert recorder.seen == []
    allowing = FAST.model_copy(update={"model_urls": [f"{endpoint}/v1"]})
    with serving(tmp_path / "allowing", allowing) as (h, _):
        model = {"name": "v1", "model": openai(endpoint)}
        ok(h.post("/v1/collections", json={"name": "docs", "version": model}), 201)
    assert recorder.seen


@pytest.mark.parametrize("answer", [500, 404, 401, 302, "garbage", "strings"])
def test_errors_never_repeat_what_the_endpoint_answered(
    served: httpx.Client, endpoint: str, recorder: Recorder, answer: str | int
) -> None:
    recorder.answer = answer
    before = state(served)
    # a model no other test loaded (they are cached), asked once: a 500 would be retried
    model = openai(endpoint, model=f"fails-{answer}", retry_attempts=1)
    response = served.post(f"{C}/versions", json={"name": "v2", "model": model})
    body = error(response, 503, "model_unavailable")
    assert f"{endpoint}/v1/embeddings" in body["message"]
    if isinstance(answer, int):
        assert f"HTTP {answer}" in body["message"] and body["context"]["status"] == answer
    assert LEAK not in response.text
    assert state(served) == before
    assert len(recorder.seen) == 1


# -- local paths ---------------------------------------------------------------------------


def tiny_model2vec(directory: Path) -> Path:
    """A real model2vec model of 16 dimensions over a few words, saved in ``directory``."""
    from model2vec import StaticModel
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    words = ["[UNK]", "[PAD]", "cats", "dogs", "doc", "about"]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    vectors = np.random.default_rng(0).standard_normal((len(words), 16)).astype(np.float32)
    StaticModel(vectors, tokenizer).save_pretrained(str(directory))
    return directory


@pytest.mark.parametrize("kind", ["model2vec", "sentence-transformers"])
def test_a_path_outside_the_model_dirs_gets_one_answer_whether_it_exists_or_not(
    served: httpx.Client, tmp_path: Path, kind: str
) -> None:
    """A real model, a directory that holds none, a missing one, a link from inside the model
    dirs and a ``..`` out of them: the same 403, so the API tells nothing about what exists."""
    outside = tmp_path / "probe"
    tiny_model2vec(outside / "real")
    (outside / "junk").mkdir()
    (outside / "junk" / "config.json").write_text("{}")
    models = tmp_path / "data" / "models"
    models.mkdir()
    (models / "link").symlink_to(outside / "real")
    paths = {
        "real": str(outside / "real"),
        "junk": str(outside / "junk"),
        "gone": str(outside / "gone"),
        "link": str(models / "link"),
        "dots": str(models / ".." / ".." / "probe" / "real"),
    }
    answers = {}
    for name, path in paths.items():
        bodies = refused(served, {"type": kind, "path": path})
        answers[name] = json.dumps(bodies).replace(json.dumps(path)[1:-1], "PATH")
    assert len(set(answers.values())) == 1, answers
    assert "EMBEDSWITCH_MODEL_DIRS" in answers["real"] and str(models) in answers["real"]


@pytest.mark.parametrize("kind", ["model2vec", "sentence-transformers"])
def test_a_missing_or_broken_model_inside_the_model_dirs_is_422(
    served: httpx.Client, tmp_path: Path, kind: str
) -> None:
    models = tmp_path / "data" / "models"
    (models / "junk").mkdir(parents=True)
    (models / "junk" / "config.json").write_text("not json")
    (models / "empty").mkdir()
    before = state(served)
    for name, says in (("gone", "does not exist"), ("junk", "could not load"), ("empty", "could not load")):
        response = served.post(
            f"{C}/versions", json={"name": "v2", "model": {"type": kind, "path": str(models / name)}}
        )
        assert says in error(response, 422, "unknown_model")["message"]
    assert state(served) == before


def test_a_model_inside_the_model_dirs_loads(served: httpx.Client, tmp_path: Path) -> None:
    path = tiny_model2vec(tmp_path / "data" / "models" / "tiny")
    v2 = {"name": "v2", "model": {"type": "model2vec", "path": str(path)}}
    ok(served.post(f"{C}/versions", json=v2), 202)
    deadline = time.monotonic() + 60
    while ok(served.get(f"{C}/versions/v2"))["state"] != "ready":
        assert time.monotonic() < deadline, "v2 did not get ready"
        time.sleep(0.05)
    found = ok(served.post(f"{C}/search", json={"text": "doc", "version": "v2"}))
    assert found["version"] == "v2" and len(found["hits"]) == 3


# -- restart -------------------------------------------------------------------------------


def test_a_stored_version_no_longer_allowed_fails_alone_and_comes_back(
    tmp_path: Path, endpoint: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarted with a setting that refuses v2's spec, the server serves v1, reports v2 failed
    (503 to requests that reach it, and on /readyz while it has traffic), keeps the change log
    for it and sends it nothing; allowed again, v2 catches up on what was written meanwhile."""
    monkeypatch.setenv("EMBEDSWITCH_KEY_TEST", SECRET)
    data = tmp_path / "data"
    records = [{"id": f"d{i}", "text": f"doc {i} about cats"} for i in range(10)]
    with serving(data) as (h, engine):
        ok(
            h.post("/v1/collections", json={"name": "docs", "version": {"name": "v1", "model": "hashing"}}),
            201,
        )
        ok(h.put(f"{C}/records", json={"records": records[:5]}))
        v2 = {"name": "v2", "model": openai(endpoint, api_key_env="EMBEDSWITCH_KEY_TEST")}
        ok(h.post(f"{C}/versions", json=v2), 202)
        engine.wait_ready("docs", "v2", 60)
        ok(h.put(f"{C}/traffic", json={"weights": {"v1": 50, "v2": 50}}))
    recorder.seen.clear()
    strict = FAST.model_copy(update={"model_key_envs": []})
    with serving(data, strict) as (h, engine):
        failed = ok(h.get(f"{C}/versions/v2"))
        assert failed["state"] == "failed" and failed["weight"] == 50
        assert "'EMBEDSWITCH_KEY_TEST'" in failed["error"] and "restart" in failed["error"]
        body = error(h.post(f"{C}/search", json={"text": "cats", "version": "v2"}), 503, "model_unavailable")
        assert "'v2'" in body["message"] and "EMBEDSWITCH_KEY_TEST" in body["message"]
        routed = {
            h.post(f"{C}/search", json={"text": "cats", "key": f"user-{i}"}).status_code for i in range(40)
        }
        assert routed == {200, 503}
        ready = h.get("/readyz")
        assert ready.status_code == 503 and [p.split(":")[0] for p in ready.json()["problems"]] == ["docs/v2"]
        ack = ok(h.put(f"{C}/records", json={"records": records[5:]}))
        ok(h.post(f"{C}/search", json={"text": "cats", "version": "v1", "min_seq": ack["seq"]}))
        engine.collection("docs").get_version("v1").checkpoint()
        engine.maintain()  # prunes the log below every version's position: v2's included
        ok(h.put(f"{C}/traffic", json={"weights": {"v1": 100}}))
        assert ok(h.get("/readyz"))["ready"]
        assert [v["state"] for v in ok(h.get(C))["versions"]] == ["ready", "failed"]
    assert recorder.seen == []
    with serving(data) as (h, engine):
        engine.wait_ready("docs", "v2", 60)
        found = ok(h.post(f"{C}/search", json={"text": "cats", "version": "v2", "k": 20}))
        assert sorted(hit["id"] for hit in found["hits"]) == sorted(r["id"] for r in records)
    assert {s.headers["authorization"] for s in recorder.seen} == {f"Bearer {SECRET}"}


def test_a_failed_version_can_be_retired(
    tmp_path: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDSWITCH_KEY_TEST", SECRET)
    data = tmp_path / "data"
    with serving(data) as (h, _):
        ok(
            h.post("/v1/collections", json={"name": "docs", "version": {"name": "v1", "model": "hashing"}}),
            201,
        )
        v2 = {"name": "v2", "model": openai(endpoint, api_key_env="EMBEDSWITCH_KEY_TEST")}
        ok(h.post(f"{C}/versions", json=v2), 202)
    assert (data / "indexes" / "docs" / "v2").is_dir()
    with serving(data, FAST.model_copy(update={"model_key_envs": []})) as (h, _):
        error(h.post(f"{C}/versions", json={"name": "v2", "model": "hashing"}), 409, "version_exists")
        error(h.post(f"{C}/versions/v2/promote", json={}), 503, "model_unavailable")
        ok(h.delete(f"{C}/versions/v2"))
        error(h.get(f"{C}/versions/v2"), 404, "version_not_found")
        assert not (data / "indexes" / "docs" / "v2").exists()
        assert [v["name"] for v in ok(h.get(C))["versions"]] == ["v1"]
