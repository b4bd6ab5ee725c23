"""Shadow traffic on a real engine and server: users get the live answer, the candidate's
latency, errors and overlap are recorded, and a failing or slow candidate is invisible to users."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from conftest import ServerThread

from embedswitch import Engine
from embedswitch.evaluation.metrics import jaccard
from embedswitch.models import load_model, parse_model_spec
from embedswitch.results import ExperimentReport, ShadowReport

WORDS = ["protein", "cell", "gene", "cancer", "virus", "brain", "heart", "drug", "trial", "mouse"]
QUERIES = [f"{a} {b}" for a in WORDS[:5] for b in WORDS[5:]]
V2 = {"type": "hashing", "seed": 1, "dim": 128}


def setup(engine: Engine, percent: float = 100) -> None:
    rng = random.Random(4)
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert(
        "c", [{"id": f"d{i:03}", "text": " ".join(rng.choice(WORDS) for _ in range(4))} for i in range(300)]
    )
    engine.add_version("c", {"name": "v2", "model": V2})
    engine.wait_ready("c", "v2")
    engine.set_traffic("c", shadow={"version": "v2", "percent": percent})


def shadow_of(engine: Engine, candidate: str, mirrored: int, timeout_s: float = 30) -> ShadowReport:
    """The candidate's shadow report once ``mirrored`` requests have been replayed."""
    deadline = time.monotonic() + timeout_s
    while True:
        report: ExperimentReport = engine.experiment("c")
        found = [s for s in report.shadow if s.candidate == candidate]
        if found and found[0].mirrored >= mirrored:
            return found[0]
        assert time.monotonic() < deadline, f"only {found} mirrored, expected {mirrored}"
        time.sleep(0.05)


def test_users_get_the_live_answer_and_overlap_is_recorded(engine: Engine) -> None:
    setup(engine)
    overlaps = []
    for query in QUERIES:
        routed = engine.search("c", query, k=10)
        live = engine.search("c", query, k=10, version="v1")  # pinned: never mirrored
        assert routed.version == "v1" and routed.interleaved is None
        assert [(h.id, h.score) for h in routed.hits] == [(h.id, h.score) for h in live.hits]
        candidate = engine.search("c", query, k=10, version="v2")
        overlaps.append(jaccard([h.id for h in live.hits], [h.id for h in candidate.hits]))
    report = shadow_of(engine, "v2", len(QUERIES))
    assert report.mirrored == len(QUERIES) and report.errors == 0 and report.last_error is None
    assert report.overlap_at_10 == pytest.approx(float(np.mean(overlaps)))
    assert 0 < report.overlap_at_10 < 1  # different seeds: the spaces differ
    assert report.latency_ms.p99 >= report.latency_ms.p50 > 0
    assert report.live_latency_ms.p99 >= report.live_latency_ms.p50 > 0


def test_a_building_candidate_is_mirrored_over_what_it_has(engine: Engine) -> None:
    setup(engine, percent=100)
    engine.add_version("c", {"name": "v3", "model": V2, "source": "vectors"})  # building until committed
    model = load_model(parse_model_spec(V2))
    loaded = [f"d{i:03}" for i in range(40)]
    texts = {r.id: r.text for r in engine.store.scan_records("c", 10**9, None, 10**6)}
    vectors = model.encode([texts[i] for i in loaded], "document")
    engine.put_vectors(
        "c", "v3", [{"id": i, "vector": v.tolist()} for i, v in zip(loaded, vectors, strict=True)]
    )
    engine.set_traffic("c", shadow={"version": "v3", "percent": 100})
    overlaps = []
    for query in QUERIES:
        live = engine.search("c", query, k=10)
        partial = engine.search("c", query, k=10, version="v3")
        assert {h.id for h in partial.hits} <= set(loaded)
        overlaps.append(jaccard([h.id for h in live.hits], [h.id for h in partial.hits]))
    report = shadow_of(engine, "v3", len(QUERIES))
    assert engine.describe_version("c", "v3").state == "building"
    assert report.errors == 0 and report.overlap_at_10 == pytest.approx(float(np.mean(overlaps)))


def inject(engine: Engine, fault: Callable[..., list]) -> Callable[[], None]:
    """Fault injection (the real candidate can't be made to fail or stall on demand): replace the
    candidate version's search; returns the undo."""
    version = engine.collection("c").versions["v2"]
    version.search = fault  # type: ignore[method-assign]
    return lambda: delattr(version, "search")


def metric(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    return 0.0


def test_a_crashing_candidate_causes_no_user_error(engine: Engine) -> None:
    setup(engine)

    def crash(*args: object) -> list:
        raise RuntimeError("injected candidate crash")

    inject(engine, crash)
    with ServerThread(engine) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        for query in QUERIES:
            routed = http.post("/v1/collections/c/search", json={"text": query, "k": 5})
            assert routed.status_code == 200, routed.text
            live = http.post("/v1/collections/c/search", json={"text": query, "k": 5, "version": "v1"})
            assert routed.json()["hits"] == live.json()["hits"]
        report = shadow_of(engine, "v2", len(QUERIES))
        assert report.errors == report.mirrored == len(QUERIES)
        assert report.last_error == "RuntimeError: injected candidate crash"
        text = http.get("/metrics").text
        labels = 'collection="c",version="v2"'
        assert metric(text, "embedswitch_shadow_errors_total", labels) == len(QUERIES)
        assert metric(text, "embedswitch_shadow_mirrored_total", labels) == len(QUERIES)


def test_a_stalled_candidate_causes_no_user_error_and_overflow_is_dropped(engine: Engine) -> None:
    setup(engine)
    release = inject(engine, lambda *args: time.sleep(0.2) or [])
    requests = 400  # more than the mirror queue holds while the candidate is stuck
    for i in range(requests):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=5)
        assert result.version == "v1" and result.hits
    release()  # the candidate answers again: the queue drains
    text = engine.metrics.render().decode()
    dropped = metric(text, "embedswitch_shadow_dropped_total", 'collection="c",version="v2"')
    assert dropped > 0
    report = shadow_of(engine, "v2", requests - int(dropped))
    assert report.mirrored + dropped == requests
