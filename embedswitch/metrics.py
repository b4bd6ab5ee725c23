"""Prometheus metrics: request latency per collection/version/op; per-version state read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .collection import Collection

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
