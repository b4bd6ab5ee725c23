"""Routed requests per version, counted over windows: what the rollout gates read."""

from __future__ import annotations

import pytest

from embedswitch import Engine, Unavailable, UnknownKind, VersionNotFound
from embedswitch.request_stats import SAMPLES, MemoryRequestStats


def test_windows_count_requests_errors_and_latencies_since_a_mark() -> None:
    stats = MemoryRequestStats()
    stats.record("v1", 0.010, None)
    mark = stats.mark()
    assert stats.since(mark) == {}
    for ms in range(1, 101):
        stats.record("v2", ms / 1000, None)
    stats.record("v2", 5.0, Unavailable("model endpoint down"))  # a 503: the version failed
    stats.record("v2", 0.001, UnknownKind("no such kind"))  # a 422: the client's mistake
    stats.record("v2", 0.001, RuntimeError("bug"))  # an unexpected exception: a 500
    window = stats.since(mark)
    assert set(window) == {"v2"}
    v2 = window["v2"]
    assert (v2.requests, v2.errors) == (103, 2)
    assert v2.error_rate == pytest.approx(2 / 103)
    assert v2.percentile_ms(50) == pytest.approx(50.5, abs=0.6)  # failures are left out of latencies
    assert v2.percentile_ms(99) == pytest.approx(99.0, abs=0.1)


def test_latencies_are_bounded_but_counts_are_not() -> None:
    stats = MemoryRequestStats()
    mark = stats.mark()
    for _ in range(SAMPLES + 10):
        stats.record("v1", 0.001, None)
    window = stats.since(mark)["v1"]
    assert window.requests == SAMPLES + 10 and len(window.latencies_s) == SAMPLES


def test_only_routed_requests_count(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": "hashing"})
    engine.upsert("c", [{"id": "d1", "text": "one record"}])
    served = engine.collection("c").served
    mark = served.mark()
    engine.search("c", "one", key="user-1")
    engine.search("c", "one")
    engine.search("c", "one", version="v1")  # pinned on purpose: evaluation, debugging
    with pytest.raises(UnknownKind):
        engine.search("c", "one", kind="nope")
    with pytest.raises(VersionNotFound):
        engine.search("c", "one", version="v9")
    window = served.since(mark)["v1"]
    assert (window.requests, window.errors) == (3, 0)
