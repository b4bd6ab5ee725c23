"""A version's report of what it holds: memory and disk per record kind and in total."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from embedswitch import Engine


def _files_bytes(root: Path) -> int:
    """Every file under ``root``, measured on disk independently of the engine."""
    return sum((Path(d) / name).stat().st_size for d, _, names in os.walk(root) for name in names)


def test_version_reports_memory_and_disk_per_kind_and_in_total(engine: Engine, http: httpx.Client) -> None:
    http.post("/v1/collections", json={"name": "c", "version": {"name": "v1", "model": "hashing"}})
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(300)]
    items = [{"id": f"i{i}", "kind": "item", "text": f"item {i}"} for i in range(100)]
    ack = http.put("/v1/collections/c/records", json={"records": docs + items}).json()
    version = engine.collection("c").get_version("v1")
    assert version.wait_applied(ack["seq"], 30)
    before = http.get("/v1/collections/c/versions/v1").json()
    assert before["disk_bytes"] == _files_bytes(version.root)  # nothing checkpointed yet, maybe 0
    version.checkpoint()
    info = http.get("/v1/collections/c/versions/v1").json()
    kinds = info["indexes"]
    assert set(kinds) == {"doc", "item"}
    assert kinds["doc"]["vectors"] == 300 and kinds["item"]["vectors"] == 100
    assert kinds["doc"]["type"] == "exact" and kinds["doc"]["precision"] == "f32"
    dim = version.model.dim
    for kind, n in (("doc", 300), ("item", 100)):
        assert kinds[kind]["memory_bytes"] >= n * dim * 4  # the float32 vectors at least
        assert kinds[kind]["disk_bytes"] == _files_bytes(version.root / kind) >= n * dim * 4
    assert info["memory_bytes"] == sum(k["memory_bytes"] for k in kinds.values())
    assert info["disk_bytes"] == _files_bytes(version.root) > before["disk_bytes"]
    assert kinds["doc"]["memory_bytes"] > kinds["item"]["memory_bytes"]
