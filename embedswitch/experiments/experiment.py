"""Judging versions with live traffic: A/B with feedback, team-draft interleaving, shadow traffic.

Every *routed* request (one that does not name a ``version``) of a collection is recorded as an
assignment of the collection's current experiment (``record``, called by the engine once per
request): the answering version, the routing key and every hit with its rank and contributing
version (``log/``, off the hot path).
Feedback (``click`` / ``convert`` on a hit of a response) is credited to the version that showed
that hit. Requests that name a version are never part of an experiment.

Traffic settings beyond the weights (persisted, shown in GET /traffic):

- ``shadow``: ``percent`` of routed requests are replayed against a candidate (``building`` or
  ``ready``) by a background worker (``shadow.py``); the user gets the live answer,
  never waits for the candidate and never sees its errors. Candidate latency, errors and overlap@10
  with the live answer are recorded.
- ``interleave``: ``percent`` of routed searches are answered by a team-draft interleaving of two
  ready versions' lists; each list comes from its own pinned version, the answer names both
  (``interleaved``) and every hit its contributor (``version``). Stickiness: with a ``key``, the
  same key is always (or never) interleaved while the percent is unchanged.

The experiment starts when the collection is first loaded and at each reset; its control is the
version with the largest weight at that moment (the oldest among equals). A reset keeps the old
experiment's data (until the retention prunes it) but reports only on the new one.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import events
from .._errors import CollectionNotFound, InvalidRequest, RequestNotFound, VersionNotFound, VersionNotReady
from .._request_id import request_id
from ..activity import Activity
from ..collection import Collection
from ..evaluation.metrics import jaccard
from ..results import (
    ExperimentReport,
    FeedbackAck,
    InterleaveSetting,
    InterleavingReport,
    RecommendResult,
    SearchResult,
    ShadowSetting,
)
from ..routing import BUCKETS, bucket_of
from ..specs import FeedbackIn, InterleaveSpec, RecommendRequest, SearchRequest, ShadowSpec, TrafficSpec
from ..version import READY
from .interleaving import team_draft
from .log import (
    Assignment,
    ExperimentLog,
    ExperimentRow,
    Feedback,
    RequestCounts,
    ShadowObservation,
)
from .report import ab_report, interleaving_report, shadow_reports
from .shadow import MirrorJob, ShadowMirror

OVERLAP_AT = 10
MIRROR_YIELD_MAX_WAIT_S = 0.05  # how long a replay waits for a moment with no live request in flight


class ExperimentMetrics:
    """Counters of shadow traffic, feedback and interleaving on the engine's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["collection", "version"]
        self.mirrored = Counter(
            "embedswitch_shadow_mirrored",
            "Requests replayed on a shadow candidate",
            labels,
            registry=registry,
        )
        self.mirror_errors = Counter(
            "embedswitch_shadow_errors", "Shadow replays that raised", labels, registry=registry
        )
        self.mirror_dropped = Counter(
            "embedswitch_shadow_dropped",
            "Shadow replays dropped: mirror queue full",
            labels,
            registry=registry,
        )
        self.feedback = Counter(
            "embedswitch_feedback_events",
            "Feedback events counted (duplicates excluded), by credited version",
            ["collection", "version", "event"],
            registry=registry,
        )
        self.interleaved = Counter(
            "embedswitch_interleaved_requests",
            "Searches answered with an interleaving",
            ["collection"],
            registry=registry,
        )
        self.assignments_dropped = Counter(
            "embedswitch_assignments_dropped",
            "Assignments not recorded: the experiment log buffer was full",
            ["collection"],
            registry=registry,
        )


class _InterleavingCollector(Collector):
    """Interleaving wins per version in each collection's current experiment, read at scrape time."""

    def __init__(self, experiments: Callable[[], list[Experiment]]) -> None:
        self._experiments = experiments

    def collect(self) -> list[Metric]:
        wins = GaugeMetricFamily(
            "embedswitch_interleaving_wins",
            "Interleaved impressions won, current experiment",
            labels=["collection", "version"],
        )
        ties = GaugeMetricFamily(
            "embedswitch_interleaving_ties", "Clicked interleaved impressions tied", labels=["collection"]
        )
        for experiment in self._experiments():
            found = experiment.interleaving()
            if found is not None:
                for version, count in found.wins.items():
                    wins.add_metric([experiment.collection.name, version], count)
                ties.add_metric([experiment.collection.name], found.ties)
        return [wins, ties]


class Experiments:
    """Engine-wide: the experiment log, the shadow mirror worker and the metrics."""

    def __init__(
        self, log: ExperimentLog, registry: CollectorRegistry, activity: Activity | None = None
    ) -> None:
        self.log = log
        self.mirror = ShadowMirror(activity, MIRROR_YIELD_MAX_WAIT_S)
        self.metrics = ExperimentMetrics(registry)
        self._attached: dict[str, Experiment] = {}
        registry.register(_InterleavingCollector(lambda: list(self._attached.values())))

    def attach(self, collection: Collection) -> Experiment:
        """The experiment runtime of a collection being loaded or created."""
        found = Experiment(collection, self)
        self._attached[collection.name] = found
        return found

    def of(self, collection: str) -> Experiment:
        """The experiment of an attached collection; ``CollectionNotFound`` for any other."""
        found = self._attached.get(collection)
        if found is None:
            raise CollectionNotFound(collection)
        return found

    def reload(self, collection: str) -> None:
        """Read ``collection``'s experiment and settings again from the log, for a change another
        process sharing the store made (a reset, shadow or interleave settings); a collection not
        attached here is ignored."""
        found = self._attached.get(collection)
        if found is not None:
            found.reload()

    def forget(self, collection: str) -> None:
        """Drop everything about a deleted collection."""
        found = self._attached.pop(collection, None)
        if found is not None:
            found.forgotten = True
        self.log.forget(collection)

    def close(self) -> None:
        self.mirror.close()
        self.log.close()


class Experiment:
    """One collection's experiment: routing to interleaving and shadow, recording, feedback, report."""

    def __init__(self, collection: Collection, hub: Experiments) -> None:
        self.collection = collection
        self._log = hub.log
        self._mirror = hub.mirror
        self._metrics = hub.metrics
        self._lock = threading.Lock()
        self.forgotten = False  # set when the collection is deleted
        self.shadow: ShadowSetting | None = None
        self.interleave: InterleaveSetting | None = None
        self._read_settings()
        self.row: ExperimentRow = self._log.first(collection.name, self._pick_control())

    @property
    def name(self) -> str:
        return self.collection.name

    def reload(self) -> None:
        """Take up the current experiment and the settings as stored (another process sharing the
        store may have reset the experiment or changed the settings)."""
        with self._lock:
            self._read_settings()
            self.row = self._log.current(self.name) or self.row

    def _read_settings(self) -> None:
        shadow, interleave = self._log.settings(self.name)
        self.shadow = ShadowSetting.model_validate(shadow) if shadow else None
        self.interleave = InterleaveSetting.model_validate(interleave) if interleave else None

    # -- serving ----------------------------------------------------------------------------------

    def search(self, request: SearchRequest, min_seq_timeout_s: float) -> SearchResult:
        """Answer a search: pinned as asked, or interleaved, or routed (then maybe mirrored)."""
        if request.version is not None:
            return self.collection.search(request, min_seq_timeout_s)
        pair = self._interleave_pair(request.key)
        if pair is not None:
            try:
                result = self._interleaved(request, pair, min_seq_timeout_s)
            except VersionNotFound:
                pass  # one of the two was retired meanwhile: answer as usual
            else:
                self._metrics.interleaved.labels(self.name).inc()
                return result
        start = time.perf_counter()
        result = self.collection.search(request, min_seq_timeout_s)
        live_ms = (time.perf_counter() - start) * 1000
        self._maybe_mirror(result.version, [h.id for h in result.hits], live_ms, _search_on(self, request))
        return result

    def recommend(self, request: RecommendRequest) -> RecommendResult:
        """Answer a recommendation: pinned as asked, or routed (recorded, maybe mirrored)."""
        if request.version is not None:
            return self.collection.recommend(request)
        start = time.perf_counter()
        result = self.collection.recommend(request)
        live_ms = (time.perf_counter() - start) * 1000
        self._maybe_mirror(result.version, [h.id for h in result.hits], live_ms, _recommend_on(self, request))
        return result

    def serving(self) -> set[str]:
        """The versions that answer users: those with weight, and the two being interleaved."""
        serving = {name for name, weight in self.collection.router.weights.items() if weight > 0}
        if self.interleave is not None:
            serving.update(self.interleave.versions)
        return serving

    def _interleave_pair(self, key: str | None) -> tuple[str, str] | None:
        setting = self.interleave
        if setting is None:
            return None
        if key is not None:
            chosen = bucket_of(f"interleave:{key}") < setting.percent * BUCKETS / 100
        else:
            chosen = random.random() * 100 < setting.percent
        if not chosen:
            return None
        first, second = setting.versions
        for name in (first, second):
            version = self.collection.versions.get(name)
            if version is None or version.state != READY:
                return None
        return (first, second)

    def _interleaved(self, request: SearchRequest, pair: tuple[str, str], timeout_s: float) -> SearchResult:
        """Both lists, each entirely within its own pinned version, merged by team draft."""
        first = self.collection.search(request.model_copy(update={"version": pair[0]}), timeout_s)
        second = self.collection.search(request.model_copy(update={"version": pair[1]}), timeout_s)
        answer_id = request_id()
        hits = team_draft(first.hits, second.hits, pair, request.k, random.Random(answer_id))
        return SearchResult(
            version=pair[0],
            applied_seq=min(first.applied_seq, second.applied_seq),
            request_id=answer_id,
            hits=hits,
            interleaved=list(pair),
        )

    def record(
        self, op: Literal["search", "recommend"], key: str | None, result: SearchResult | RecommendResult
    ) -> None:
        """Record a routed request's answer as an assignment of the current experiment."""
        both = result.interleaved if isinstance(result, SearchResult) else None
        pair = (both[0], both[1]) if both else None
        assignment = Assignment(
            request_id=result.request_id,
            collection=self.name,
            experiment=self.row.id,
            op=op,
            mode="interleaved" if pair else "single",
            version=result.version,
            pair=pair,
            key=key,
            hits=tuple((hit.id, hit.version or result.version) for hit in result.hits),
            at=time.time(),
        )
        if not self._log.record(assignment):
            self._metrics.assignments_dropped.labels(self.name).inc()

    def _maybe_mirror(
        self, live: str, live_ids: list[str], live_ms: float, run_on: Callable[[str], list[str]]
    ) -> None:
        setting = self.shadow
        if setting is None or setting.version == live or random.random() * 100 >= setting.percent:
            return
        if setting.version not in self.collection.versions:
            return
        candidate, experiment = setting.version, self.row.id

        def done(latency_ms: float, ids: list[str] | None, error: str | None) -> None:
            if self.forgotten:  # the collection was deleted while this replay waited
                return
            overlap = None if ids is None else jaccard(live_ids[:OVERLAP_AT], ids[:OVERLAP_AT])
            self._log.observe(
                ShadowObservation(
                    self.name, experiment, candidate, live, latency_ms, live_ms, error, overlap, time.time()
                )
            )
            self._metrics.mirrored.labels(self.name, candidate).inc()
            if error is not None:
                self._metrics.mirror_errors.labels(self.name, candidate).inc()

        if not self._mirror.submit(MirrorJob(run=lambda: run_on(candidate), done=done)):
            self._metrics.mirror_dropped.labels(self.name, candidate).inc()

    # -- feedback and reports ---------------------------------------------------------------------

    def feedback(self, event: FeedbackIn) -> FeedbackAck:
        """Count a click or conversion on a hit of a recorded response, once per (request, hit, event)."""
        found = self._log.find(self.name, event.request_id)
        if found is None:
            raise RequestNotFound(
                f"collection {self.name!r} has no recorded request {event.request_id!r}: send the "
                "request_id of a search or recommend response of this collection that was routed (not "
                "pinned with 'version'), within the retention; the last fraction of a second before a "
                "crash may be lost",
                collection=self.name,
                request_id=event.request_id,
            )
        ranks = [i for i, (hit_id, _) in enumerate(found.hits, start=1) if hit_id == event.id]
        if not ranks:
            raise InvalidRequest(
                f"hit {event.id!r} is not in the response of request {event.request_id!r}; send feedback "
                "for a hit that response showed",
                collection=self.name,
                request_id=event.request_id,
            )
        rank = ranks[0]
        credit = found.hits[rank - 1][1]
        row = Feedback(
            event.request_id, self.name, event.id, event.event, event.value, rank, credit, time.time()
        )
        counted = self._log.add_feedback(row)
        if counted:
            self._metrics.feedback.labels(self.name, credit, event.event).inc()
        return FeedbackAck(request_id=event.request_id, counted=counted, version=credit, rank=rank)

    def report(self) -> ExperimentReport:
        """The current experiment: A/B per version, interleaving, shadow candidates."""
        row = self.row
        counts = self._log.request_counts(self.name, row.id)
        single = self._log.feedback_rows(self.name, row.id, "single")
        return ExperimentReport(
            collection=self.name,
            experiment=row.id,
            started_at=row.started_at,
            ab=ab_report(counts.single, single, row.control),
            interleaving=self.interleaving(counts),
            shadow=shadow_reports(self._log.shadow_rows(self.name, row.id)),
        )

    def interleaving(self, counts: RequestCounts | None = None) -> InterleavingReport | None:
        """The interleaving part of the report: the configured pair, else the most shown one."""
        row = self.row
        if counts is None:
            counts = self._log.request_counts(self.name, row.id, "interleaved")
        shown = counts.interleaved
        pair: tuple[str, str] | None = None
        if self.interleave is not None:
            pair = (self.interleave.versions[0], self.interleave.versions[1])
        elif shown:
            pair = max(shown, key=lambda found: shown[found])
        if pair is None:
            return None
        rows = self._log.feedback_rows(self.name, row.id, "interleaved")
        return interleaving_report(pair, shown.get(pair, 0), rows)

    def reset(self) -> ExperimentReport:
        """Start a new experiment now, with the current largest-weight version as control."""
        with self._lock:
            self.row = self._log.start(self.name, self._pick_control())
        return self.report()

    def _pick_control(self) -> str | None:
        weights = self.collection.router.weights
        versions = sorted(self.collection.versions.values(), key=lambda v: v.row.created_at)
        if not versions:
            return None
        return max(versions, key=lambda v: weights.get(v.name, 0)).name

    # -- settings ---------------------------------------------------------------------------------

    def set_traffic(self, spec: TrafficSpec) -> None:
        """Apply the parts ``spec`` gives (an explicit null turns a setting off; a part left out is
        unchanged). Everything is checked before anything changes; weights are applied first."""
        given = spec.model_fields_set
        with self._lock:
            self._read_settings()  # a part left out keeps what is stored, whoever stored it
            shadow = self._checked_shadow(spec.shadow) if "shadow" in given else self.shadow
            interleave = (
                self._checked_interleave(spec.interleave) if "interleave" in given else self.interleave
            )
            if spec.weights is not None:
                self.collection.set_traffic(spec.weights)
            self._save(shadow, interleave)

    def _checked_shadow(self, spec: ShadowSpec | None) -> ShadowSetting | None:
        if spec is None:
            return None
        self.collection.get_version(spec.version)  # raises VersionNotFound naming the known ones
        return ShadowSetting(version=spec.version, percent=spec.percent)

    def _checked_interleave(self, spec: InterleaveSpec | None) -> InterleaveSetting | None:
        if spec is None:
            return None
        for name in spec.versions:
            version = self.collection.get_version(name)
            if version.state != READY:
                raise VersionNotReady(
                    f"version {name!r} is {version.state}; interleaving needs two ready versions. Wait "
                    f"for it (GET /v1/collections/{self.name}/versions/{name}) or use shadow traffic",
                    collection=self.name,
                    version=name,
                )
        return InterleaveSetting(versions=list(spec.versions), percent=spec.percent)

    def _save(self, shadow: ShadowSetting | None, interleave: InterleaveSetting | None) -> None:
        if shadow == self.shadow and interleave == self.interleave:
            return
        as_json = {
            "shadow": shadow.model_dump() if shadow else None,
            "interleave": interleave.model_dump() if interleave else None,
        }
        self._log.save_settings(self.name, as_json["shadow"], as_json["interleave"])
        events.record(self.collection.store, self.name, None, "experiment_settings", as_json)
        self.shadow, self.interleave = shadow, interleave

    def forget_version(self, name: str) -> None:
        """A retired version leaves the shadow and interleave settings that name it."""
        with self._lock:
            self._read_settings()
            shadow = None if self.shadow and self.shadow.version == name else self.shadow
            keep = self.interleave and name not in self.interleave.versions
            self._save(shadow, self.interleave if keep else None)


def _search_on(experiment: Experiment, request: SearchRequest) -> Callable[[str], list[str]]:
    def run(version: str) -> list[str]:
        pinned = request.model_copy(update={"version": version, "min_seq": None})
        return [hit.id for hit in experiment.collection.search(pinned, 0.0).hits]

    return run


def _recommend_on(experiment: Experiment, request: RecommendRequest) -> Callable[[str], list[str]]:
    def run(version: str) -> list[str]:
        pinned = request.model_copy(update={"version": version})
        return [hit.id for hit in experiment.collection.recommend(pinned).hits]

    return run
