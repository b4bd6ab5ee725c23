"""``GET /v1/collections/{c}/stats`` over real HTTP: the requests each version answered, in the
buckets the console charts."""

from __future__ import annotations

import httpx
from _http import error, ok


def test_stats_count_the_searches_each_version_answered(http: httpx.Client) -> None:
    ok(
        http.post("/v1/collections", json={"name": "docs", "version": {"name": "v1", "model": "hashing"}}),
        201,
    )
    ok(http.put("/v1/collections/docs/records", json={"records": [{"id": "a", "text": "vitamin d"}]}))
    for _ in range(3):
        ok(http.post("/v1/collections/docs/search", json={"text": "vitamin"}))
    error(
        http.post("/v1/collections/docs/search", json={"text": "vitamin", "kind": "nokind"}),
        422,
        "unknown_kind",
    )
    stats = ok(http.get("/v1/collections/docs/stats"))
    assert stats["collection"] == "docs" and stats["bucket_s"] == 10 and stats["window_s"] == 900
    points = stats["versions"]["v1"]
    assert len(points) == 90 and points[-1]["at"] <= stats["now"] < points[-1]["at"] + 10
    assert sum(p["requests"] for p in points) == 3
    assert sum(p["errors"] for p in points) == 0
    assert all(p["p50_ms"] is not None for p in points if p["requests"])
    error(http.get("/v1/collections/nothing/stats"), 404, "collection_not_found")
