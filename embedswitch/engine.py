"""The one orchestration layer: collections, versions, routing, writes and search.

``Engine.open(path)`` is the embedded default: one process, a SQLite store and the index files in
one data dir. The HTTP server is a thin layer over one Engine.

Limits of the embedded default: one process serves a data dir (a second one is refused by a lock);
indexes are held in memory (exact search up to ~20k records per kind, HNSW beyond, a few million
384-d vectors per machine). Past that, the store and index seams are where the scale-out backends
(PostgreSQL for the store, pgvector or Milvus for indexes) plug in; they are not part of this release.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._errors import CollectionNotFound, EmbedswitchError, InvalidRequest, RecordNotFound
from .backfill import Activity, BackfillConfig
from .collection import Collection
from .metrics import Metrics
from .models import load_model, set_torch_threads
from .results import (
    CollectionInfo,
    DeleteAck,
    EventOut,
    RecommendResult,
    RecordOut,
    SearchResult,
    TrafficInfo,
    VectorAck,
    VersionInfo,
    WriteAck,
)
from .specs import (
    InteractionBatch,
    InteractionIn,
    Kind,
    Name,
    RecommendRequest,
    RecordBatch,
    RecordIn,
    SearchRequest,
    VectorBatch,
    VectorRow,
    VersionSpec,
    parse,
)
from .store.base import Store, VersionRow
from .store.sqlite import SqliteStore
from .version import READY

log = logging.getLogger("embedswitch")


class EngineConfig(BaseModel):
    """Tuning knobs; the defaults suit the embedded default on a small machine."""

    model_config = ConfigDict(extra="forbid")

    min_seq_timeout_s: float = Field(5.0, ge=0, description="How long search waits for min_seq")
    apply_batch: int = Field(256, ge=1, description="Log entries an applier embeds per step")
    checkpoint_interval_s: float = Field(2.0, gt=0, description="How often indexes are made durable")
    backfill_batch: int = Field(256, ge=1)
    encode_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Threads that embed in parallel, per applier step and per backfill",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op threads per torch forward pass; 1 lets backfill encoders and queries "
        "run side by side on separate cores (None: torch's default)",
    )
    backfill_max_rate: float | None = Field(None, gt=0, description="Records/s cap per backfill")
    backfill_yield_max_wait_s: float = Field(
        0.05, ge=0, description="How long a backfill batch waits for in-flight queries to finish"
    )
    maintenance_interval_s: float = Field(10.0, gt=0, description="Log pruning period")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """Defaults overridden by ``EMBEDSWITCH_<FIELD>`` variables, e.g. EMBEDSWITCH_BACKFILL_MAX_RATE."""
        env = os.environ if environ is None else environ
        values = {
            name: env[f"EMBEDSWITCH_{name.upper()}"]
            for name in cls.model_fields
            if f"EMBEDSWITCH_{name.upper()}" in env
        }
        return parse(cls, values)


class _Name(BaseModel):
    model_config = ConfigDict(strict=True)
    name: Name


class _Kind(BaseModel):
    model_config = ConfigDict(strict=True)
    kind: Kind


class Engine:
    """Serves any number of collections from one data dir."""

    def __init__(self, data_dir: Path, store: Store, config: EngineConfig) -> None:
        self.data_dir = data_dir
        self.store = store
        self.config = config
        self.activity = Activity()
        set_torch_threads(config.torch_threads)
        self._backfill_config = BackfillConfig(
            batch=config.backfill_batch,
            workers=config.encode_workers,
            max_rate=config.backfill_max_rate,
            yield_max_wait_s=config.backfill_yield_max_wait_s,
            activity=self.activity,
        )
        self._lock = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self.metrics = Metrics(lambda: list(self._collections.values()))
        for row in store.list_collections():
            self._collections[row.name] = self._runtime(row.name)
        self._stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        self._maintenance.start()
        self._lock_file: Any = None

    @classmethod
    def open(cls, path: str | Path, config: EngineConfig | None = None) -> Engine:
        """Open (or create) the embedded engine in ``path``: SQLite store and index files there."""
        data_dir = Path(path)
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(data_dir / "LOCK", "w")  # noqa: SIM115 - held for the engine's lifetime
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise InvalidRequest(
                f"data dir {data_dir} is in use by another embedswitch process; stop it or use another "
                "--data dir (several API processes need a shared store, which this release does not have)"
            ) from None
        try:
            engine = cls(
                data_dir, SqliteStore(data_dir / "embedswitch.db"), config or EngineConfig.from_env()
            )
        except BaseException:
            lock_file.close()
            raise
        engine._lock_file = lock_file
        return engine

    def _runtime(self, name: str) -> Collection:
        return Collection(
            name,
            self.store,
            self.data_dir / "indexes" / name,
            self.config.apply_batch,
            self.config.checkpoint_interval_s,
            self._backfill_config,
        )

    def list_collection_runtimes(self) -> list[Collection]:
        return list(self._collections.values())

    def collection(self, name: str) -> Collection:
        found = self._collections.get(name)
        if found is None:
            raise CollectionNotFound(name)
        return found

    # -- collections -------------------------------------------------------------------------

    def create_collection(self, name: str, version: VersionSpec | dict[str, Any]) -> CollectionInfo:
        """Create a collection with its first version, which gets all traffic."""
        parse(_Name, {"name": name})
        spec = parse(VersionSpec, version)
        load_model(spec.model)  # fail before anything is persisted if the model can't load
        row = VersionRow(name, spec.name, spec.model_dump(mode="json"), READY, 0, 0, None, time.time())
        with self._lock:
            self.store.create_collection(name, row, {spec.name: 100})
            self.store.add_event(name, spec.name, "created", {"seq": 0})
            self._collections[name] = self._runtime(name)
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

    # -- records -----------------------------------------------------------------------------

    def upsert(self, collection: str, records: Sequence[RecordIn | dict[str, Any]]) -> WriteAck:
        """Durably append a batch (all or nothing); every version applies it in seq order."""
        target = self.collection(collection)
        batch = parse(RecordBatch, {"records": list(records)})
        return target.upsert(batch.records)

    def delete(self, collection: str, id: str, kind: str = "doc") -> DeleteAck:
        parse(_Kind, {"kind": kind})
        return self.collection(collection).delete(kind, id)

    def get_record(self, collection: str, id: str, kind: str = "doc") -> RecordOut:
        parse(_Kind, {"kind": kind})
        found = self.store.get_records(self.collection(collection).name, [(kind, id)]).get((kind, id))
        if found is None:
            raise RecordNotFound(
                f"collection {collection!r} has no {kind!r} record {id!r}",
                collection=collection,
                kind=kind,
                id=id,
            )
        return RecordOut(id=found.id, kind=found.kind, text=found.text, fields=found.fields, seq=found.seq)

    # -- search ------------------------------------------------------------------------------

    @contextmanager
    def _timed(self, collection: str, op: str) -> Iterator[dict[str, str]]:
        """Times a request and counts it as activity that background work yields to."""
        labels = {"version": ""}
        start = time.perf_counter()
        self.activity.enter()
        try:
            yield labels
        except EmbedswitchError as exc:
            self.metrics.errors.labels(collection, op, exc.code).inc()
            raise
        except Exception:
            self.metrics.errors.labels(collection, op, "internal").inc()
            raise
        finally:
            self.activity.exit()
            self.metrics.latency.labels(collection, labels["version"], op).observe(
                time.perf_counter() - start
            )

    def search(
        self,
        collection: str,
        text: str | None = None,
        k: int = 10,
        kind: str = "doc",
        version: str | None = None,
        key: str | None = None,
        min_seq: int | None = None,
        like: dict[str, str] | None = None,
    ) -> SearchResult:
        """Embed ``text`` with one version's model (or take that version's vector of the record
        ``like`` = ``{"kind", "id"}``) and search that version's index of ``kind``."""
        fields = {"text": text, "like": like, "k": k, "kind": kind, "version": version}
        request = parse(SearchRequest, {**fields, "key": key, "min_seq": min_seq})
        target = self.collection(collection)
        with self._timed(collection, "search") as labels:
            result = target.search(request, self.config.min_seq_timeout_s)
            labels["version"] = result.version
            return result

    def recommend(
        self,
        collection: str,
        user: str | None = None,
        item: str | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        key: str | None = None,
        version: str | None = None,
        fallback: str | None = None,
    ) -> RecommendResult:
        """Items for ``user`` (that version's user vector against that version's item index), or
        items like ``item``; ``fallback="popular"`` answers users without a vector with popular items."""
        request = parse(
            RecommendRequest,
            {"user": user, "item": item, "k": k, "exclude_seen": exclude_seen, "key": key}
            | {"version": version, "fallback": fallback},
        )
        target = self.collection(collection)
        with self._timed(collection, "recommend") as labels:
            result = target.recommend(request)
            labels["version"] = result.version
            return result

    def add_interactions(
        self, collection: str, interactions: Sequence[InteractionIn | dict[str, Any]]
    ) -> WriteAck:
        """Durably append user–item interactions to the change log (all or nothing)."""
        target = self.collection(collection)
        batch = parse(InteractionBatch, {"interactions": list(interactions)})
        return target.add_interactions(batch.interactions)

    # -- versions and traffic -----------------------------------------------------------------

    def add_version(self, collection: str, version: VersionSpec | dict[str, Any]) -> VersionInfo:
        """Add a version that backfills from the current records and gets no traffic until told."""
        return self.collection(collection).add_version(parse(VersionSpec, version))

    def put_vectors(
        self, collection: str, version: str, vectors: Sequence[VectorRow | dict[str, Any]]
    ) -> VectorAck:
        """Load precomputed vectors into a version created with ``source="vectors"``."""
        batch = parse(VectorBatch, {"vectors": list(vectors)})
        return self.collection(collection).put_vectors(version, batch.vectors)

    def commit_vectors(self, collection: str, version: str) -> VersionInfo:
        """Finish the vector load; the model then embeds the records that got no vector."""
        return self.collection(collection).commit_vectors(version)

    def describe_version(self, collection: str, version: str) -> VersionInfo:
        return self.collection(collection).version_info(version)

    def set_traffic(self, collection: str, weights: dict[str, int]) -> TrafficInfo:
        return self.collection(collection).set_traffic(weights)

    def traffic(self, collection: str) -> TrafficInfo:
        return self.collection(collection).traffic_info()

    def promote(self, collection: str, version: str) -> TrafficInfo:
        return self.collection(collection).promote(version)

    def rollback(self, collection: str) -> TrafficInfo:
        return self.collection(collection).rollback()

    def retire(self, collection: str, version: str) -> None:
        self.collection(collection).retire(version)

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

    def wait_ready(self, collection: str, version: str, timeout_s: float = 600.0) -> VersionInfo:
        """Block until ``version`` is ready and has applied everything written so far."""
        target = self.collection(collection)
        head = target.head_seq()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = target.get_version(version)
            if found.state == READY and found.wait_applied(head, max(0.0, deadline - time.monotonic())):
                return target.version_info(version)
            time.sleep(0.05)
        raise TimeoutError(f"version {version!r} of {collection!r} not ready after {timeout_s} s")

    # -- lifecycle ----------------------------------------------------------------------------

    def _maintain(self) -> None:
        while not self._stop.wait(self.config.maintenance_interval_s):
            for target in list(self._collections.values()):
                try:
                    target.prune_log()
                except Exception:
                    log.exception("log pruning of %s failed", target.name)

    def close(self) -> None:
        """Checkpoint every version and release the data dir."""
        self._stop.set()
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
