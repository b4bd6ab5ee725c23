"""``python -m bench --quick`` runs every benchmark and writes one JSON file each (behaviour only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"

needs_scifact = pytest.mark.skipif(
    not (SCIFACT / "corpus.jsonl").is_file(), reason=f"SciFact not found at {SCIFACT}"
)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )


def load(results: Path, name: str) -> dict[str, Any]:
    record = json.loads((results / f"{name}.json").read_text(encoding="utf-8"))
    assert record["benchmark"] == name
    assert record["mode"] == "quick"
    assert record["elapsed_s"] >= 0
    assert {"date", "cpu_count", "python", "versions"} <= set(record["machine"])
    assert {"numpy", "torch", "hnswlib"} <= set(record["machine"]["versions"])
    assert record["params"] and record["tables"] and record["summary"]
    for rows in record["tables"].values():
        assert rows and all(isinstance(row, dict) for row in rows)
    return record


def rows(record: dict[str, Any], title: str) -> list[dict[str, Any]]:
    assert title in record["tables"], f"no table {title!r} in {sorted(record['tables'])}"
    found: list[dict[str, Any]] = record["tables"][title]
    return found


@needs_scifact
def test_quick_ingest_backfill_and_index(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "ingest", "backfill", "index", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backfill.json", "index.json", "ingest.json"]
    assert "summary" in done.stdout

    ingest = load(tmp_path, "ingest")
    table = rows(ingest, "ingest throughput (records/s)")
    assert [row["model"] for row in table] == ["hashing", "minilm-static"]
    for row in table:
        assert row["records"] == 300
        assert row["ingest_rps"] > 0 and row["raw_encode_rps"] > 0
        assert row["ingest/raw"] == pytest.approx(row["ingest_rps"] / row["raw_encode_rps"], abs=1e-3)

    backfill = load(tmp_path, "backfill")
    (throughput,) = rows(backfill, "backfill throughput")
    assert throughput["backfill_rps"] > 0 and throughput["backfill/raw"] > 0
    idle, during = rows(backfill, "search latency on v1 during a backfill (ms)")
    assert idle["phase"] == "idle" and idle["n"] == 200 and idle["p99_ms"] >= idle["p50_ms"] > 0
    assert during["phase"] == "during backfill"
    fresh = rows(backfill, "freshness during a backfill (ms from acknowledged upsert to visible)")
    assert fresh[0]["version"] == "v1"
    assert fresh[0]["upserts"] == 50 and fresh[0]["never visible"] == 0
    assert fresh[0]["p99_ms"] >= fresh[0]["p50_ms"] > 0
    assert {"backfill/raw encode", "p99 during/idle", "freshness p99 ms v1"} <= set(backfill["summary"])

    index = load(tmp_path, "index")
    libraries = {row["library"]: row for row in rows(index, "HNSW libraries")}
    assert "usearch" in libraries and "embedswitch.HnswIndex" in libraries
    assert 0 < libraries["embedswitch.HnswIndex"]["recall_at_10"] <= 1
    assert index["report"]["params"]["n"] == 2000


@needs_scifact
@pytest.mark.slow
def test_quick_search_latency_and_quality(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "search_latency", "quality", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    latency = load(tmp_path, "search_latency")
    table = rows(latency, "search latency (ms)")
    assert {(row["records"], row["path"]) for row in table} == {
        (size, path) for size in (2000, 10000) for path in ("index", "encode", "engine", "http")
    }
    assert all(row["n"] == 200 and row["p99_ms"] >= row["p50_ms"] > 0 for row in table)
    for row in rows(latency, "ratios"):
        assert row["engine/index p50"] > 0 and row["http/engine p50"] > 0
        # the three paths search the same index with the same query vector
        assert row["engine same ids as index"] == 1.0
        assert row["http same ids as index"] == 1.0

    quality = load(tmp_path, "quality")
    (row,) = rows(quality, "SciFact retrieval quality")
    assert row["model"] == "hashing" and row["docs"] == 5183
    assert 0 < row["nDCG@10"] < 1 and 0 < row["recall@100"] <= 1 and 0 < row["MRR@10"] <= 1
    # engine.search and an exact search over the stored vectors rank alike (ties aside)
    assert row["nDCG@10"] == pytest.approx(row["exact over stored nDCG@10"], abs=0.01)
    assert quality["summary"] == {"hashing nDCG@10": row["nDCG@10"]}


def test_unknown_benchmark_is_refused(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "nope", "--results", str(tmp_path))
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
    assert not list(tmp_path.iterdir())
