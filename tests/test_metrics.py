"""The recent requests the console charts (``metrics.RecentRequests``): buckets per version over
the window, server errors apart, a bounded latency sample, versions gone from the window forgotten."""

from __future__ import annotations

from embedswitch._errors import InvalidRequest, Unavailable
from embedswitch.metrics import BUCKET_S, LATENCIES_PER_BUCKET, WINDOW_S, Metrics, RecentRequests


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_requests_fall_in_buckets_per_version_over_the_window() -> None:
    clock = Clock(10_000.0)
    recent = RecentRequests(clock)
    for ms in (1, 2, 3, 4):
        recent.record("docs", "v1", ms / 1000, failed=False)
    recent.record("docs", "v1", 0.5, failed=True)  # a server error: counted, its latency not
    clock.at += BUCKET_S
    recent.record("docs", "v2", 0.010, failed=False)
    recent.record("other", "v1", 0.010, failed=False)

    series = recent.series("docs")
    assert series.bucket_s == BUCKET_S and series.window_s == WINDOW_S
    assert set(series.versions) == {"v1", "v2"}
    v1, v2 = series.versions["v1"], series.versions["v2"]
    assert len(v1) == len(v2) == WINDOW_S // BUCKET_S
    assert [p.at for p in v1] == [p.at for p in v2] and v1[-1].at == 10_010.0
    first = v1[-2]
    assert (first.at, first.requests, first.errors) == (10_000.0, 5, 1)
    assert first.p50_ms == 2.5 and first.p99_ms is not None and 3.9 < first.p99_ms <= 4
    assert (v1[-1].requests, v1[-1].p50_ms) == (0, None)
    assert (v2[-1].requests, v2[-1].p50_ms) == (1, 10.0)


def test_a_version_without_requests_in_the_window_is_forgotten() -> None:
    clock = Clock(50_000.0)
    recent = RecentRequests(clock)
    recent.record("docs", "v1", 0.001, failed=False)
    clock.at += WINDOW_S - BUCKET_S
    assert recent.series("docs").versions["v1"][0].requests == 1  # the oldest bucket still shown
    clock.at += BUCKET_S
    assert recent.series("docs").versions == {}


def test_a_busy_bucket_keeps_a_bounded_sample_of_latencies() -> None:
    recent = RecentRequests(Clock(7.0))
    for i in range(LATENCIES_PER_BUCKET * 4):
        recent.record("docs", "v1", 0.001 if i % 2 else 0.003, failed=False)
    point = recent.series("docs").versions["v1"][-1]
    assert point.requests == LATENCIES_PER_BUCKET * 4
    assert point.p50_ms is not None and 1 <= point.p50_ms <= 3 and point.p99_ms == 3.0


def test_an_error_names_its_version_when_no_answer_did() -> None:
    metrics = Metrics(list)
    metrics.observe("docs", "", "search", 0.01, Unavailable("down", collection="docs", version="v2"))
    metrics.observe("docs", "", "search", 0.01, InvalidRequest("bad kind"))  # a client error
    metrics.observe("docs", "v1", "search", 0.01, None)
    series = metrics.recent.series("docs").versions
    assert (series["v2"][-1].requests, series["v2"][-1].errors) == (1, 1)
    assert (series[""][-1].requests, series[""][-1].errors) == (1, 0)
    assert (series["v1"][-1].requests, series["v1"][-1].errors) == (1, 0)
    assert (
        b'embedswitch_request_seconds_count{collection="docs",op="search",version="v1"} 1.0'
        in metrics.render()
    )
