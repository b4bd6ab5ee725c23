"""Lexical versions through the engine and over HTTP: BM25 and hybrid versions serve, persist,
refuse what they can't do with a 4xx that names the fix, and on a PostgreSQL store keep their
BM25 index in its database, which every process sharing the store serves from."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import FAST

from embedswitch import Engine, InvalidRequest, VersionSpec
from embedswitch.specs import place_index

DOCS = [
    {"id": "a1", "text": "reset a forgotten password from the sign-in page"},
    {"id": "a2", "text": "rotate the API keys of a service account"},
    {"id": "a3", "text": "export the monthly invoice as a PDF"},
]
HYBRID = {"type": "hybrid", "dense": "hashing", "fusion": "convex", "weight": 0.25}


def test_lexical_versions_serve_and_survive_a_restart(tmp_path: Path) -> None:
    with Engine.open(tmp_path, FAST) as engine:
        engine.create_collection("kb", {"name": "kw", "model": "bm25"})
        ack = engine.upsert("kb", DOCS)
        engine.add_version("kb", {"name": "hy", "model": HYBRID})
        engine.wait_ready("kb", "hy", 30)
        assert [h.id for h in engine.search("kb", "API keys", k=3, min_seq=ack.seq).hits] == ["a2"]
        hy = engine.search("kb", "API keys", k=3, version="hy")
        assert hy.hits[0].id == "a2" and len(hy.hits) == 3  # the dense part ranks the rest
        # like: by the dense part alone
        like = engine.search("kb", like={"id": "a2", "kind": "doc"}, k=1, version="hy")
        assert like.version == "hy" and like.hits[0].id != "a2"
        info = {v.name: v for v in engine.describe("kb").versions}
        assert info["kw"].dim == 0 and info["kw"].indexes["doc"].type == "bm25"
        assert info["hy"].indexes["doc"].type == "exact+bm25" and info["hy"].records == 3
        ack = engine.upsert("kb", [{"id": "a3", "text": "rotate logs weekly"}])
    with Engine.open(tmp_path, FAST) as engine:  # reopened from the version's files
        for version in ("kw", "hy"):
            found = engine.search("kb", "rotate", k=3, version=version, min_seq=ack.seq)
            assert {h.id for h in found.hits} >= {"a2", "a3"}


def test_what_a_bm25_version_cannot_do_is_a_4xx_naming_the_fix(http: httpx.Client) -> None:
    assert (
        http.post(
            "/v1/collections", json={"name": "kb", "version": {"name": "kw", "model": "bm25"}}
        ).status_code
        == 201
    )
    assert http.put("/v1/collections/kb/records", json={"records": DOCS}).status_code == 200
    cases = [
        ("search", {"like": {"id": "a1", "kind": "doc"}, "version": "kw"}, "invalid_request", "by text"),
        ("search", {"vector": [0.5, 0.5], "version": "kw"}, "invalid_request", "search it by text"),
        (
            "versions",
            {"name": "v2", "model": "bm25", "source": "vectors"},
            "invalid_request",
            'leave "source" out',
        ),
        (
            "versions",
            {"name": "v2", "model": {"type": "hybrid", "dense": "bm25"}},
            "unknown_model",
            "'dense' must be a text model",
        ),
        (
            "versions",
            {"name": "v2", "model": {"type": "bm25", "k1": 2}},
            "unknown_model",
            "unknown field 'k1'",
        ),
    ]
    for route, body, code, mention in cases:
        response = http.post(f"/v1/collections/kb/{route}", json=body)
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["code"] == code and mention in error["message"], error
    assert [v["name"] for v in http.get("/v1/collections/kb").json()["versions"]] == ["kw"]


def test_a_shared_store_keeps_the_bm25_index_in_its_database(tmp_path: Path, pg_uri: str) -> None:
    for model in ("bm25", HYBRID):
        spec = place_index(VersionSpec.model_validate({"name": "kw", "model": model}), shared=True)
        assert spec.index.type == "pgvector"  # the dense part's; the BM25 part goes beside it
    teams = {"a1": "identity", "a2": "platform", "a3": "billing"}
    docs = [{**doc, "fields": {"team": teams[doc["id"]]}} for doc in DOCS]
    with Engine.open(tmp_path / "one", FAST, store=pg_uri) as engine:
        engine.create_collection("kb", {"name": "kw", "model": "bm25"})
        ack = engine.upsert("kb", docs)
        engine.add_version("kb", {"name": "hy", "model": HYBRID})
        engine.wait_ready("kb", "hy", 30)
        assert [h.id for h in engine.search("kb", "API keys", k=3, min_seq=ack.seq).hits] == ["a2"]
        hy = engine.search("kb", "API keys", k=3, version="hy")
        assert hy.hits[0].id == "a2" and len(hy.hits) == 3
        for version in ("kw", "hy"):  # the filter applies before ranking: a3 is the only billing match
            found = engine.search(
                "kb", {"text": "the API keys", "k": 1, "filter": {"team": "billing"}, "version": version}
            )
            assert [h.id for h in found.hits] == ["a3"], version
        info = {v.name: v for v in engine.describe("kb").versions}
        assert info["kw"].indexes["doc"].type == "bm25" and info["hy"].indexes["doc"].type == "pgvector+bm25"
        ack = engine.upsert("kb", [{"id": "a3", "text": "rotate logs weekly", "fields": {"team": "billing"}}])
        engine.collection("kb").get_version("kw").wait_applied(ack.seq, 30)
        with Engine.open(tmp_path / "two", FAST, store=pg_uri) as other:  # another process's engine
            for version in ("kw", "hy"):
                found = other.search("kb", "rotate", k=3, version=version, min_seq=ack.seq)
                assert {h.id for h in found.hits} >= {"a2", "a3"}, version
        engine.retire("kb", "hy")
    with psycopg.connect(pg_uri) as conn:
        rows = conn.execute("SELECT version, table_name FROM es_bm25_indexes").fetchall()
        assert [version for version, _ in rows] == ["kw"]  # hy's table dropped with it
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'es_bm25_%%'").fetchone()
        assert tables == (2,)  # kw's table and the registry


def test_evaluate_candidate_on_a_lexical_version_says_what_to_use(tmp_path: Path) -> None:
    with Engine.open(tmp_path, FAST.model_copy(update={"query_log_size": 100})) as engine:
        engine.create_collection("kb", {"name": "v1", "model": "hashing"})
        engine.upsert("kb", DOCS)
        engine.add_version("kb", {"name": "kw", "model": "bm25"})
        engine.wait_ready("kb", "kw", 30)
        engine.search("kb", "API keys")
        with pytest.raises(InvalidRequest, match="judge it with evaluate"):
            engine.evaluate_candidate("kb", "kw", {"sample": 10})
