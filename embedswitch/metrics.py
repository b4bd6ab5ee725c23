"""Prometheus metrics: request latency per collection/version/op; per-version state read at scrape
time. And the recent past of the same requests in memory (``RecentRequests``): per version and
10-second bucket over the last 15 minutes, what the console charts."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel, Field

from ._errors import EmbedswitchError
from .collection import Collection
from .request_stats import is_server_error, percentile_ms

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StateCollector(Collector):
    """Reads applier lag, records, index size, quarantined records, backfill progress and weights
    when scraped."""

    def __init__(self, collections: Callable[[], list[Collection]]) -> None:
        self._collections = collections

    def collect(self) -> Iterator[Metric]:
        labels = ["collection", "version"]
        lag = GaugeMetricFamily("embedswitch_applier_lag_seqs", "Log entries not yet applied", labels=labels)
        applied = GaugeMetricFamily("embedswitch_applied_seq", "Last applied log seq", labels=labels)
        records = GaugeMetricFamily(
            "embedswitch_version_records", "Vectors in the version's indexes", labels=labels
        )
        size = GaugeMetricFamily("embedswitch_index_bytes", "Approximate index size", labels=labels)
        weight = GaugeMetricFamily("embedswitch_traffic_weight", "Traffic weight", labels=labels)
        ready = GaugeMetricFamily("embedswitch_version_ready", "1 if the version is ready", labels=labels)
        done = GaugeMetricFamily("embedswitch_backfill_done", "Records backfilled", labels=labels)
        total = GaugeMetricFamily("embedswitch_backfill_total", "Records to backfill", labels=labels)
        rate = GaugeMetricFamily("embedswitch_backfill_rate", "Backfill records per second", labels=labels)
        quarantined = GaugeMetricFamily(
            "embedswitch_quarantined_records",
            "Records the version's model rejected: open (holding a building version back) or skipped",
            labels=[*labels, "state"],
        )
        leads = GaugeMetricFamily(
            "embedswitch_version_leader",
            "1 if this process runs the version's workers (holds its lease), 0 if it only serves it",
            labels=labels,
        )
        head = GaugeMetricFamily("embedswitch_head_seq", "Last seq of the change log", labels=["collection"])
        for collection in self._collections():
            head_seq = collection.head_seq()
            head.add_metric([collection.name], head_seq)
            for version in list(collection.versions.values()):
                key = [collection.name, version.name]
                lag.add_metric(key, max(0, head_seq - version.applied_seq))
                applied.add_metric(key, version.applied_seq)
                records.add_metric(key, sum(version.records_by_kind().values()))
                size.add_metric(key, version.nbytes())
                weight.add_metric(key, collection.router.weights.get(version.name, 0))
                ready.add_metric(key, 1 if version.state == "ready" else 0)
                leads.add_metric(key, 1 if version.fence is not None else 0)
                quarantined.add_metric([*key, "open"], version.quarantine.open_count())
                quarantined.add_metric([*key, "skipped"], version.quarantine.skipped_count())
                if version.backfill is not None:
                    done.add_metric(key, version.backfill.state.done)
                    total.add_metric(key, version.backfill.state.total)
                    rate.add_metric(key, version.backfill.rate)
        yield from (head, lag, applied, records, size, weight, ready, leads, quarantined, done, total, rate)


class Metrics:
    """One registry per engine, so several engines in one process never share series."""

    def __init__(self, collections: Callable[[], list[Collection]]) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "embedswitch_request_seconds",
            "Request latency",
            ["collection", "version", "op"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "embedswitch_request_errors",
            "Requests that failed",
            ["collection", "op", "code"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(collections))
        self.recent = RecentRequests()

    def observe(
        self, collection: str, version: str, op: str, seconds: float, error: BaseException | None
    ) -> None:
        """One search or recommend request that ended, answered by ``version`` ("" when none was
        chosen), or failed with ``error``."""
        self.latency.labels(collection, version, op).observe(seconds)
        if not version and isinstance(error, EmbedswitchError):
            version = str(error.context.get("version", ""))
        self.recent.record(collection, version, seconds, is_server_error(error))

    def render(self) -> bytes:
        return generate_latest(self.registry)


BUCKET_S = 10
WINDOW_S = 900
LATENCIES_PER_BUCKET = 512
"""Latencies kept per version and bucket (a uniform sample of them beyond): its percentiles' basis."""


class SeriesPoint(BaseModel):
    at: float = Field(description="Start of the bucket, Unix time in seconds")
    requests: int = Field(description="Requests answered by the version in the bucket, failed ones too")
    errors: int = Field(description="Of those, server errors (5xx)")
    p50_ms: float | None = Field(description="Median latency of the successful ones; null without any")
    p99_ms: float | None = Field(description="99th percentile latency of the successful ones")


class RequestSeries(BaseModel):
    """Search and recommend requests per version over the last ``window_s`` seconds, counted by
    this process since it started."""

    collection: str
    bucket_s: int = Field(description="Width of a bucket in seconds; QPS = requests / bucket_s")
    window_s: int
    now: float = Field(description="Unix time of the answer; the last bucket is still filling")
    versions: dict[str, list[SeriesPoint]] = Field(
        description='Every bucket of the window, oldest first, per version; "" holds requests that '
        "failed before a version was chosen"
    )


class _Bucket:
    __slots__ = ("errors", "latencies", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []


class RecentRequests:
    """Requests per (collection, version) in ``BUCKET_S`` buckets over the last ``WINDOW_S``
    seconds, in memory; thread-safe, and a request costs an append under a lock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], deque[tuple[int, _Bucket]]] = {}
        self._buckets = WINDOW_S // BUCKET_S

    def record(self, collection: str, version: str, seconds: float, failed: bool) -> None:
        slot = int(self._clock() // BUCKET_S)
        with self._lock:
            series = self._series.setdefault((collection, version), deque(maxlen=self._buckets))
            if not series or series[-1][0] != slot:
                series.append((slot, _Bucket()))
            bucket = series[-1][1]
            bucket.requests += 1
            if failed:
                bucket.errors += 1
                return
            kept = len(bucket.latencies)
            if kept < LATENCIES_PER_BUCKET:
                bucket.latencies.append(seconds)
            else:  # reservoir sampling: every latency of the bucket equally likely kept
                at = random.randrange(bucket.requests - bucket.errors)
                if at < kept:
                    bucket.latencies[at] = seconds

    def series(self, collection: str) -> RequestSeries:
        """Every bucket of the window for each version of ``collection`` seen in it."""
        now = self._clock()
        last = int(now // BUCKET_S)
        first = last - self._buckets + 1
        with self._lock:
            for key in [key for key, found in self._series.items() if found[-1][0] < first]:
                del self._series[key]  # nothing in the window: forget it (a retired version)
            found = {
                version: {slot: (b.requests, b.errors, list(b.latencies)) for slot, b in series}
                for (name, version), series in self._series.items()
                if name == collection
            }
        versions = {}
        for version, slots in sorted(found.items()):
            points = []
            for slot in range(first, last + 1):
                requests, errors, latencies = slots.get(slot, (0, 0, []))
                p50, p99 = percentile_ms(latencies, 50), percentile_ms(latencies, 99)
                points.append(
                    SeriesPoint(at=slot * BUCKET_S, requests=requests, errors=errors, p50_ms=p50, p99_ms=p99)
                )
            versions[version] = points
        return RequestSeries(
            collection=collection, bucket_s=BUCKET_S, window_s=WINDOW_S, now=now, versions=versions
        )
