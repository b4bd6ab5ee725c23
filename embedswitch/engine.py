"""The one orchestration layer: collections, versions, routing, writes, search and judging.

``Engine.open(path)`` is the embedded default: one process, a SQLite store and the index files in
one data dir; ``store=`` names another store backend by URI. The HTTP server is a thin layer over
one Engine. Every method takes its request as the API's request model (or a dict from Python
callers), validated once.

Limits of the embedded default: one process serves a data dir (a second one is refused by a lock);
indexes are held in memory (exact search up to ~20k records per kind, HNSW beyond, a few million
384-d vectors per machine). Past that, the store and index seams (``store/registry.py``,
``index/registry.py``) are where server backends plug in.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from . import events
from ._env import env_values
from ._errors import CollectionNotFound, EmbedswitchError, InvalidRequest
from .activity import Activity
from .backfill import BackfillConfig
from .batch_search import search_batch
from .cluster import follow_cluster
from .collection import Collection
from .config import EngineConfig
from .engine_versions import EngineVersions
from .evaluation.comparison import compare
from .evaluation.offline import evaluate_versions
from .evaluation.querylog import open_query_log
from .experiments import Experiment, Experiments, open_experiment_log
from .index.base import IndexHost
from .metrics import Metrics
from .models import load_model, set_blas_threads, set_torch_threads, spec_to_dict
from .records import Records
from .results import (
    BatchSearchResult,
    CandidateEvaluation,
    CollectionInfo,
    DeleteAck,
    EvaluateResult,
    EventOut,
    ExperimentReport,
    FeedbackAck,
    RecommendResult,
    RecordOut,
    RolloutInfo,
    SearchResult,
    TrafficInfo,
    WriteAck,
)
from .rollouts import Rollouts
from .specs import (
    BatchSearchRequest,
    CandidateEvaluateRequest,
    EvaluateRequest,
    FeedbackIn,
    InteractionBatch,
    InteractionIn,
    InterleaveSpec,
    KindArg,
    NameArg,
    RecommendRequest,
    RecordBatch,
    RecordIn,
    RolloutSpec,
    SearchRequest,
    ShadowSpec,
    TrafficSpec,
    VersionSpec,
    parse,
    place_index,
)
from .store import Store, open_store
from .store.base import VersionRow
from .version import READY, VersionConfig

log = logging.getLogger("embedswitch")


class Engine(EngineVersions):
    """Serves any number of collections from one data dir."""

    def __init__(self, data_dir: Path, store: Store, config: EngineConfig) -> None:
        self.data_dir = data_dir
        self.store = store
        self.config = config
        self.activity = Activity()
        set_torch_threads(config.torch_threads)
        set_blas_threads(config.blas_threads)
        backfill = BackfillConfig(
            batch=config.backfill_batch,
            workers=config.encode_workers,
            max_rate=config.backfill_max_rate,
            max_tokens_per_min=config.backfill_max_tokens_per_min,
            yield_max_wait_s=config.backfill_yield_max_wait_s,
            activity=self.activity,
            executor=config.backfill_executor,
            ray_address=config.ray_address,
            torch_threads=config.torch_threads,
            idle=config.backfill_idle_priority,
        )
        self._version_config = VersionConfig(
            config.apply_batch,
            config.checkpoint_interval_s,
            backfill,
            config.query_batch_wait_ms / 1000,
            config.query_batch_max,
            config.model_access(data_dir),
            config.index_access(),
            host=store if isinstance(store, IndexHost) else None,  # a shared store keeps the indexes too
        )
        self._lock = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self.metrics = Metrics(lambda: list(self._collections.values()))
        self.query_log = open_query_log(data_dir, store, config.query_log_size, config.query_log_retention_s)
        experiment_log = open_experiment_log(data_dir, store, config.experiment_retention_days * 86_400)
        self.experiments = Experiments(experiment_log, self.metrics.registry, self.activity)
        for row in store.list_collections():
            self._load(row.name)
        self._stop = threading.Event()
        self._closed = False
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        if store.shared:  # other processes change collections, versions and traffic too
            follow_cluster(store, self._stop, self.sync)
        self._lock_file: Any = None
        self.rollouts = Rollouts(
            store, self.metrics.registry, self.collection, self.list_collection_runtimes, self.experiments
        )
        self.rollouts.resume()  # finish transitions a crash interrupted; restart running rollouts

    @classmethod
    def open(cls, path: str | Path, config: EngineConfig | None = None, store: str = "sqlite") -> Engine:
        """Open (or create) the engine in the data dir ``path``: index files there, and the store
        ``store`` names (``"sqlite"``, the default: ``embedswitch.db`` in ``path``). Without a
        ``config``, the defaults overridden by ``EMBEDSWITCH_<FIELD>`` variables."""
        data_dir = Path(path)
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(data_dir / "LOCK", "w")  # noqa: SIM115 - held for the engine's lifetime
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise InvalidRequest(
                f"data dir {data_dir} is in use by another embedswitch process; stop it or use another "
                "--data dir (several serving processes share a PostgreSQL store, each with its own data dir)"
            ) from None
        try:
            config = config or parse(EngineConfig, env_values(EngineConfig))
            engine = cls(data_dir, open_store(store, data_dir), config)
        except BaseException:
            lock_file.close()
            raise
        engine._lock_file = lock_file
        return engine

    def _load(self, name: str) -> Collection:
        """Bring a stored collection to life, with its experiment."""
        found = Collection(name, self.store, self.data_dir / "indexes" / name, self._version_config)
        self._collections[name] = found
        self.experiments.attach(found)
        return found

    def list_collection_runtimes(self) -> list[Collection]:
        return list(self._collections.values())

    def collection(self, name: str) -> Collection:
        found = self._collections.get(name)
        if found is None:
            raise CollectionNotFound(name)
        return found

    def _experiment(self, collection: str) -> Experiment:
        """The experiment of a collection (``CollectionNotFound`` if there is none)."""
        self.collection(collection)
        return self.experiments.of(collection)

    # -- collections -------------------------------------------------------------------------

    def create_collection(self, name: str, version: VersionSpec | dict[str, Any]) -> CollectionInfo:
        """Create a collection with its first version, which gets all traffic."""
        parse(NameArg, {"name": name})
        spec = place_index(parse(VersionSpec, version), self.store.shared)
        self._version_config.index_access.check(spec.index)  # fail before anything is persisted
        load_model(spec.model, self._version_config.access)
        row = VersionRow(name, spec.name, spec.model_dump(mode="json"), READY, 0, 0, None, time.time())
        with self._lock:
            self.store.create_collection(name, row, {spec.name: 100})
            events.record(
                self.store, name, spec.name, "created", {"model": spec_to_dict(spec.model), "seq": 0}
            )
            self._load(name)
        return self.describe(name)

    def list_collections(self) -> list[CollectionInfo]:
        return [self.describe(name) for name in sorted(self._collections)]

    def describe(self, name: str) -> CollectionInfo:
        return self.collection(name).info()

    def delete_collection(self, name: str) -> None:
        with self._lock:
            found = self.collection(name)
            del self._collections[name]
            self.store.delete_collection(name)
        found.destroy()
        self._forget(name)

    def _forget(self, name: str) -> None:
        """Drop what the engine keeps of a collection that is gone."""
        self.rollouts.forget(name)
        self.experiments.forget(name)
        self.query_log.forget(name)

    # -- records -----------------------------------------------------------------------------

    def upsert(self, collection: str, records: RecordBatch | Sequence[RecordIn | dict[str, Any]]) -> WriteAck:
        """Durably append a batch (all or nothing); every version applies it in seq order."""
        target = self.collection(collection)
        batch = (
            records if isinstance(records, RecordBatch) else parse(RecordBatch, {"records": list(records)})
        )
        self._admit_write(target)
        return target.upsert(batch.records)

    def delete(self, collection: str, id: str, kind: str = "doc") -> DeleteAck:
        parse(KindArg, {"kind": kind})
        target = self.collection(collection)
        self._admit_write(target)
        return target.delete(kind, id)

    def _admit_write(self, target: Collection) -> None:
        """Backpressure: ``Overloaded`` (503, nothing written) while a version that serves users has
        more than ``max_apply_lag`` log entries left to apply."""
        if self.config.max_apply_lag is not None:
            target.check_backlog(self.serving(target.name), self.config.max_apply_lag)

    def serving(self, collection: str) -> set[str]:
        """The versions of ``collection`` that answer users: weight > 0, or interleaved."""
        return self._experiment(collection).serving()

    def get_record(self, collection: str, id: str, kind: str = "doc") -> RecordOut:
        return self.records(collection).one(id, kind)

    def records(self, collection: str) -> Records:
        """The records API of ``collection`` (``records.py``): pages, batch get and delete, by filter."""
        return Records(target := self.collection(collection), lambda: self._admit_write(target))

    # -- search ------------------------------------------------------------------------------

    @contextmanager
    def _timed(self, collection: str, op: str) -> Iterator[dict[str, str]]:
        """Times a request and counts it as activity that background work yields to."""
        labels = {"version": ""}
        start = time.perf_counter()
        self.activity.enter()
        error: Exception | None = None
        try:
            yield labels
        except EmbedswitchError as exc:
            self.metrics.errors.labels(collection, op, exc.code).inc()
            error = exc
            raise
        except Exception as exc:
            self.metrics.errors.labels(collection, op, "internal").inc()
            error = exc
            raise
        finally:
            self.activity.exit()
            self.metrics.observe(collection, labels["version"], op, time.perf_counter() - start, error)

    def answers_inline(self, collection: str, request: SearchRequest | RecommendRequest) -> bool:
        """Whether ``request`` is quick enough for the HTTP server to run it on its event loop:
        switched on (``inline_quick_requests``), an embedded store, no wait for a ``min_seq``, and a
        collection whose models all embed queries in microseconds."""
        if not (self.config.inline_quick_requests and self.store.embedded):
            return False
        if isinstance(request, SearchRequest) and request.min_seq is not None:
            return False
        found = self._collections.get(collection)
        return found is not None and found.answers_quickly()

    def search(
        self,
        collection: str,
        text: str | SearchRequest | Mapping[str, Any] | None = None,
        k: int = 10,
        kind: str = "doc",
        version: str | None = None,
        key: str | None = None,
        min_seq: int | None = None,
        like: dict[str, str] | None = None,
        vector: Sequence[float] | None = None,
    ) -> SearchResult:
        """Embed ``text`` with one version's model (or take that version's vector of the record
        ``like`` = ``{"kind", "id"}``, or the query ``vector``) and search that version's index of
        ``kind``. The whole request may come as a ``SearchRequest`` (or its dict) in place of ``text``."""
        if isinstance(text, SearchRequest | Mapping):
            request = parse(SearchRequest, text)
        else:
            query = {"text": text, "like": like, "vector": list(vector) if vector is not None else None}
            fields = {**query, "k": k, "kind": kind, "version": version}
            request = parse(SearchRequest, {**fields, "key": key, "min_seq": min_seq})
        experiment = self._experiment(collection)
        with self._timed(collection, "search") as labels:
            result = experiment.search(request, self.config.min_seq_timeout_s)
            labels["version"] = result.version
            if request.version is None:  # routed: recorded once, for the experiment and the query log
                experiment.record("search", request.key, result)
                if request.vector is None:  # the query log keeps texts and likes, not raw vectors
                    self.query_log.record(collection, request, result.version)
            return result

    def search_batch(self, collection: str, batch: BatchSearchRequest | dict[str, Any]) -> BatchSearchResult:
        """Several searches in one request (``batch_search.py``)."""
        with self._timed(collection, "search"):
            args = (parse(BatchSearchRequest, batch), self.query_log, self.config.min_seq_timeout_s)
            return search_batch(self._experiment(collection), *args)

    def recommend(
        self,
        collection: str,
        user: str | RecommendRequest | Mapping[str, Any] | None = None,
        item: str | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        key: str | None = None,
        version: str | None = None,
        fallback: str | None = None,
    ) -> RecommendResult:
        """Items for ``user`` (that version's user vector against that version's item index), or
        items like ``item``; ``fallback="popular"`` answers users without a vector with popular
        items. The whole request may come as a ``RecommendRequest`` (or its dict) in place of ``user``."""
        if isinstance(user, RecommendRequest | Mapping):
            request = parse(RecommendRequest, user)
        else:
            request = parse(
                RecommendRequest,
                {"user": user, "item": item, "k": k, "exclude_seen": exclude_seen, "key": key}
                | {"version": version, "fallback": fallback},
            )
        experiment = self._experiment(collection)
        with self._timed(collection, "recommend") as labels:
            result = experiment.recommend(request)
            labels["version"] = result.version
            if request.version is None:  # routed: recorded once, for the experiment
                experiment.record("recommend", request.key, result)
            return result

    def add_interactions(
        self, collection: str, interactions: InteractionBatch | Sequence[InteractionIn | dict[str, Any]]
    ) -> WriteAck:
        """Durably append user–item interactions to the change log (all or nothing)."""
        target = self.collection(collection)
        batch = (
            interactions
            if isinstance(interactions, InteractionBatch)
            else parse(InteractionBatch, {"interactions": list(interactions)})
        )
        self._admit_write(target)
        return target.add_interactions(batch.interactions)

    # -- versions and traffic -----------------------------------------------------------------

    def set_traffic(
        self,
        collection: str,
        weights: TrafficSpec | dict[str, int] | None = None,
        shadow: ShadowSpec | dict[str, Any] | Literal["off"] | None = None,
        interleave: InterleaveSpec | dict[str, Any] | Literal["off"] | None = None,
    ) -> TrafficInfo:
        """Set any of: the weights, the shadow mirror (``{"version", "percent"}``), the interleaving
        (``{"versions": [a, b], "percent"}``). None leaves a part as it is; ``"off"`` turns a setting
        off. A whole ``TrafficSpec`` may come in place of ``weights``."""
        if isinstance(weights, TrafficSpec):
            spec = weights
        else:
            body: dict[str, Any] = {} if weights is None else {"weights": weights}
            for name, value in (("shadow", shadow), ("interleave", interleave)):
                if value is not None:
                    body[name] = None if value == "off" else value
            spec = parse(TrafficSpec, body)
        self._experiment(collection).set_traffic(spec)
        return self.traffic(collection)

    def feedback(self, collection: str, feedback: FeedbackIn | dict[str, Any]) -> FeedbackAck:
        """Count a click or conversion on a hit of a recorded response; duplicates count once."""
        event = parse(FeedbackIn, feedback)
        return self._experiment(collection).feedback(event)

    def experiment(self, collection: str) -> ExperimentReport:
        """The current experiment's A/B, interleaving and shadow report."""
        return self._experiment(collection).report()

    def reset_experiment(self, collection: str) -> ExperimentReport:
        """Start a new experiment now (earlier data is kept, but no longer reported)."""
        return self._experiment(collection).reset()

    def traffic(self, collection: str) -> TrafficInfo:
        """The weights, their history and the experiment's shadow and interleave settings."""
        info = self.collection(collection).traffic_info()
        experiment = self._experiment(collection)
        return info.model_copy(update={"shadow": experiment.shadow, "interleave": experiment.interleave})

    def promote(self, collection: str, version: str) -> TrafficInfo:
        self.collection(collection).promote(version)
        return self.traffic(collection)

    def rollback(self, collection: str) -> TrafficInfo:
        self.collection(collection).rollback()
        return self.traffic(collection)

    def retire(self, collection: str, version: str) -> None:
        self.collection(collection).retire(version)
        self.experiments.of(collection).forget_version(version)

    def events(self, collection: str, version: str | None = None) -> list[EventOut]:
        """History, newest first: created, backfill_finished, ready, traffic changes, retired."""
        target = self.collection(collection)
        if (
            version is not None
            and version not in target.versions
            and not self.store.events(collection, version, 1)
        ):
            target.get_version(version)  # raises VersionNotFound, naming the known versions
        return [EventOut(**vars(e)) for e in self.store.events(collection, version)]

    # -- gated rollouts (rollouts/) ----------------------------------------------------------

    def start_rollout(self, collection: str, spec: RolloutSpec | dict[str, Any]) -> RolloutInfo:
        """Move traffic from the live version to ``spec["to"]`` step by step, in the background,
        while the gates pass; roll back on its own when one fails."""
        return self.rollouts.start(collection, spec)

    def list_rollouts(self, collection: str) -> list[RolloutInfo]:
        """The collection's rollouts, newest first."""
        return self.rollouts.history(collection)

    def rollout(self, collection: str, id: int) -> RolloutInfo:
        return self.rollouts.get(collection, id)

    def stop_rollout(self, collection: str, id: int) -> RolloutInfo:
        """Stop a running rollout; the live version gets all traffic back."""
        return self.rollouts.stop(collection, id)

    def wait_rollout(self, collection: str, id: int, timeout_s: float = 600.0) -> RolloutInfo:
        """Block until the rollout is over (completed, rolled back or stopped)."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.rollout(collection, id)
            if info.status != "running":
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"rollout #{id} of {collection!r} still running after {timeout_s} s")
            time.sleep(0.1)

    # -- evaluation (evaluation/offline.py, evaluation/comparison.py) ---------------------------

    def evaluate(self, collection: str, request: EvaluateRequest | dict[str, Any]) -> EvaluateResult:
        """nDCG@k, recall@100, MRR@k and latency of each named version on judged queries, every
        query run through that version's serving search."""
        body = parse(EvaluateRequest, request)
        return evaluate_versions(self.collection(collection), body)

    def evaluate_candidate(
        self, collection: str, version: str, request: CandidateEvaluateRequest | dict[str, Any]
    ) -> CandidateEvaluation:
        """Compare ``version`` (building or ready) with the live version on a sample of logged
        searches, over the records both have embedded; needs the query log (``query_log_size``)."""
        body = parse(CandidateEvaluateRequest, request)
        target = self.collection(collection)
        return compare(target, version, body, self.query_log, self.config.encode_workers)

    # -- lifecycle ----------------------------------------------------------------------------

    def sync(self) -> None:
        """Bring this process's view in line with the shared store: collections created or
        deleted elsewhere, and each collection's versions, traffic and leases."""
        with self._lock:  # as create and delete hold it: the list is never older than this view
            stored = {row.name for row in self.store.list_collections()}
            for name in stored - set(self._collections):
                self._load(name)
            gone = [self._collections.pop(name) for name in set(self._collections) - stored]
        for found in gone:
            found.close()
            self._forget(found.name)
        for found in list(self._collections.values()):
            found.sync()
            self.experiments.reload(found.name)
        self.rollouts.resume()

    def _maintain(self) -> None:
        while not self._stop.wait(self.config.maintenance_interval_s):
            self.maintain()

    def maintain(self) -> None:
        """Bound the disk: prune each collection's change log below every version's saved position
        and its events to the retention, then give back what the store and logs no longer need."""
        before = time.time() - self.config.events_retention_days * 86_400
        for target in list(self._collections.values()):
            try:
                target.prune_log()
                self.store.prune_events(target.name, self.config.events_keep, before)
            except Exception:
                log.exception("pruning %s failed", target.name)
        try:
            self.store.compact()
            self.experiments.log.compact()
        except Exception:
            log.exception("compacting the store failed")

    def close(self) -> None:
        """Write the buffered experiment and query logs (shadow replays end first, while the
        versions still answer), stop and checkpoint every version, and release the data dir; a
        second call does nothing. ``embedswitch serve`` bounds how long this may take."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._maintenance.join()  # a compaction in progress must not meet the logs closing under it
        self.rollouts.close()
        self.experiments.close()
        self.query_log.close()
        for target in list(self._collections.values()):
            target.close()
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
