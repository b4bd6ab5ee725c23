"""Optional extras: the base install serves without the heavy libraries, and a model whose extra is
missing is refused with the ``pip install`` that fixes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from _endpoint import Faults, endpoint
from _http import error, ok
from conftest import FAST, REPO, ServerProcess

from embedswitch import Engine

HEAVY = ("torch", "sentence_transformers", "transformers", "model2vec", "implicit")
NO_EXTRAS = REPO / "tests" / "_no_extras"

BASE_MODELS = """
import json, sys, tempfile
from embedswitch import Engine
from embedswitch.http import create_app

with Engine.open(tempfile.mkdtemp()) as engine:
    create_app(engine, close_engine=False)
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.add_version("c", {"name": "v2", "model": {"type": "openai", "url": sys.argv[1], "model": "fake"}})
    ack = engine.upsert("c", [{"id": "n1", "text": "rotate the API keys"}, {"id": "n2", "text": "revenue"}])
    engine.wait_ready("c", "v2", 30)
    found = {v: engine.search("c", "rotate API keys", k=1, min_seq=ack.seq, version=v).hits[0].id
             for v in ("v1", "v2")}
print(json.dumps({"found": found, "heavy": [m for m in sys.argv[2].split(",") if m in sys.modules]}))
"""

CLI_HELP = """
import json, sys
import embedswitch
from embedswitch.cli import main
try:
    main()
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(json.dumps([m for m in sys.argv[2].split(",") if m in sys.modules]))
"""


def _python(code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_hashing_and_openai_versions_load_none_of_the_heavy_libraries() -> None:
    with endpoint(Faults()) as url:
        report = json.loads(_python(BASE_MODELS, url, ",".join(HEAVY)))
    assert report == {"found": {"v1": "n1", "v2": "n1"}, "heavy": []}


def test_import_and_help_load_none_of_the_heavy_libraries() -> None:
    assert json.loads(_python(CLI_HELP, "--help", ",".join(HEAVY))) == []


def test_without_the_extras_base_models_and_trained_als_serve_and_the_rest_is_refused(tmp_path: Path) -> None:
    """A real server on an install without the extras: ``tests/_no_extras`` is a fault injection
    that makes their packages fail to import, as on a base install. It serves ``hashing`` and an
    ``als`` version trained where ``implicit`` was installed; a model or training that needs a
    missing extra is 422 ``model_not_installed`` naming the ``pip install``, and nothing is stored."""
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("shop", {"name": "v1", "model": "hashing"})
        engine.upsert(
            "shop", [{"id": f"i{n}", "kind": "item", "text": f"item number {n}"} for n in range(20)]
        )
        engine.add_interactions("shop", [{"user": f"u{n % 5}", "item": f"i{n}"} for n in range(20)])
        engine.train("shop", {"version": "als", "model": {"type": "als", "factors": 4, "iterations": 2}})
        engine.wait_ready("shop", "als", 60)
    env = {"PYTHONPATH": os.pathsep.join([str(NO_EXTRAS), str(REPO)])}
    server = ServerProcess(data, env=env).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            hits = ok(
                http.post("/v1/collections/shop/search", json={"text": "item number 2", "kind": "item"})
            )
            assert hits["hits"][0]["id"] == "i2"
            recommended = ok(
                http.post("/v1/collections/shop/recommend", json={"user": "u1", "version": "als"})
            )
            assert recommended["version"] == "als" and recommended["hits"]

            for model in ("minilm", "minilm-static"):
                body = {"name": "c", "version": {"name": "v1", "model": model}}
                refused = error(http.post("/v1/collections", json=body), 422, "model_not_installed")
                assert "pip install 'embedswitch[transformers]'" in refused["message"], refused
                assert refused["context"]["extra"] == "transformers"
            added = http.post("/v1/collections/shop/versions", json={"name": "v2", "model": "minilm"})
            error(added, 422, "model_not_installed")
            trained = http.post("/v1/collections/shop/train", json={"version": "v2"})
            refused = error(trained, 422, "model_not_installed")
            assert "pip install 'embedswitch[als]'" in refused["message"], refused
            assert [c["name"] for c in ok(http.get("/v1/collections"))] == ["shop"]
            assert [v["name"] for v in ok(http.get("/v1/collections/shop/versions"))] == ["v1", "als"]
    finally:
        server.stop()
