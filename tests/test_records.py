"""The records API: pages behind a cursor, batch get, batch delete and delete by filter, through
the engine and over HTTP. Deletes go through the change log: every version, a building one too,
drops the records."""

from __future__ import annotations

from pathlib import Path

import httpx
from _checks import assert_end_state
from conftest import FAST, ServerThread

from embedswitch import Client, Engine
from embedswitch.specs import MAX_BATCH, DeleteWhere, RecordIds, RecordsPage, parse

DOCS = [
    {"id": f"d{i:03}", "text": f"document {i}", "fields": {"year": 1990 + i % 40, "team": ["a", "b"][i % 2]}}
    for i in range(250)
]


def test_pages_cover_every_matching_record_once(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [*DOCS, {"id": "q1", "kind": "query", "text": "a query"}])
    records = engine.records("c")
    seen: list[str] = []
    cursor = None
    while True:
        page = records.page(records_page(limit=60, cursor=cursor, filter={"team": "a"}, fields=["year"]))
        seen += [r.id for r in page.records]
        assert all(set(r.fields) == {"year"} and r.kind == "doc" for r in page.records)
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == sorted(d["id"] for d in DOCS if d["fields"]["team"] == "a")
    everything = records.page(records_page(limit=1000))
    assert [r.id for r in everything.records] == [d["id"] for d in DOCS] and everything.cursor is None
    assert [r.id for r in records.page(records_page(kind="query")).records] == ["q1"]


def records_page(**fields: object) -> RecordsPage:
    return parse(RecordsPage, {k: v for k, v in fields.items() if v is not None})


def test_batch_get_and_batch_delete_go_through_the_log(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", DOCS)
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 3}})
        got = engine.records("c").get(ids(["d001", "nope", "d002", "d001"]))
        assert [r.id for r in got.records] == ["d001", "d002"] and got.missing == ["nope"]
        ack = engine.records("c").delete(ids(["d001", "d002", "nope"]))
        assert ack.count == 2 and ack.seq == engine.describe("c").head_seq
        engine.wait_ready("c", "v2", 60)
        for version in ("v1", "v2"):
            found = engine.search(
                "c", {"text": "document 1", "k": 250, "version": version, "min_seq": ack.seq}
            )
            assert {"d001", "d002"}.isdisjoint(h.id for h in found.hits)
        assert assert_end_state(engine, "c") == {"v1": 248, "v2": 248}


def ids(values: list[str]) -> RecordIds:
    return parse(RecordIds, {"ids": values})


def test_delete_by_filter(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", DOCS)
    where = parse(DeleteWhere, {"filter": {"year": {"lt": 2000}}})
    ack = engine.records("c").delete_where(where)
    assert ack.count == sum(d["fields"]["year"] < 2000 for d in DOCS) and not ack.more
    assert engine.records("c").delete_where(where).count == 0
    found = engine.search("c", {"text": "document", "k": 250, "min_seq": ack.seq})
    assert len(found.hits) == 250 - ack.count and all(h.fields["year"] >= 2000 for h in found.hits)
    assert MAX_BATCH >= 250


def test_records_api_over_http(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", DOCS)
    with ServerThread(engine) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        c = "/v1/collections/c"
        first = http.post(f"{c}/scroll", json={"limit": 2, "filter": {"year": 1990}}).json()
        assert [r["id"] for r in first["records"]] == ["d000", "d040"]
        rest = http.post(
            f"{c}/scroll", json={"limit": 5, "filter": {"year": 1990}, "cursor": first["cursor"]}
        )
        assert [r["id"] for r in rest.json()["records"]] == ["d080", "d120", "d160", "d200", "d240"]
        got = http.post(f"{c}/get-records", json={"ids": ["d003", "zz"]}).json()
        assert [r["id"] for r in got["records"]] == ["d003"] and got["missing"] == ["zz"]
        deleted = http.post(f"{c}/delete-records", json={"ids": ["d003"]}).json()
        assert deleted["count"] == 1
        where = http.post(f"{c}/delete-where", json={"filter": {"team": "b"}}).json()
        assert where["count"] == 124 and where["more"] is False
        batch = {"searches": [{"text": "document 4", "k": 3}, {"text": "document 6", "k": 2, "fields": []}]}
        answers = http.post(f"{c}/search/batch", json=batch).json()["results"]
        assert [len(a["hits"]) for a in answers] == [3, 2] and answers[1]["hits"][0]["fields"] == {}


def test_the_client_reaches_filters_batches_and_records(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", DOCS)
    with ServerThread(engine) as server, Client(server.url) as client:
        hits = client.search("c", "document 3", k=4, filter={"team": "a"}, fields=["team"], exact=True).hits
        assert len(hits) == 4 and all(h.fields == {"team": "a"} for h in hits)
        assert len(client.search_batch("c", [{"text": "document", "k": 2}] * 3).results) == 3
        page = client.scroll("c", limit=3, filter={"year": {"lte": 1990}})
        assert [r.id for r in page.records] == ["d000", "d040", "d080"] and page.cursor
        assert client.get_records("c", ["d001"]).records[0].id == "d001"
        assert client.delete_records("c", ["d001", "gone"]).count == 1
        assert client.delete_where("c", {"year": 1991}).count == 6
