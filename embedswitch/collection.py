"""A collection at run time: its versions, its traffic assignment, its write and search paths.

Every request resolves its version once, at the start, and holds it until it returns: the query
embedding, the index search and the fields lookup all use that one version, and a version that is
retired meanwhile stays alive until the request finishes.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import numpy as np
from pydantic import ValidationError

from . import events, search
from ._errors import (
    IndexNotAllowed,
    InvalidRequest,
    LastVersion,
    ModelNotAllowed,
    NotCaughtUp,
    NothingToRollBack,
    Overloaded,
    RecordNotFound,
    UnknownModel,
    VersionExists,
    VersionHasTraffic,
    VersionNotFound,
    VersionNotReady,
)
from ._request_id import request_id
from .failed_version import FailedVersion
from .models import load_model, spec_to_dict
from .models.als import require_training
from .request_stats import open_request_stats
from .results import (
    CollectionInfo,
    DeleteAck,
    RecommendResult,
    SearchResult,
    TrafficEntry,
    TrafficInfo,
    VectorAck,
    VersionInfo,
    WriteAck,
)
from .routing import Router
from .specs import (
    MAX_BATCH,
    InteractionIn,
    RecommendRequest,
    RecordIn,
    SearchRequest,
    TrainRequest,
    VectorRow,
    VersionSpec,
    describe_errors,
    place_index,
    stored_version_spec,
)
from .store.base import BackfillState, Store, TrafficRow, VersionRow
from .vector_load import commit_load, load_vectors
from .version import BUILDING, READY, Version, VersionConfig
from .version_info import describe

log = logging.getLogger("embedswitch")
P = ParamSpec("P")
R = TypeVar("R")


def _changes_cluster_state(
    method: Callable[Concatenate[Collection, P], R],
) -> Callable[Concatenate[Collection, P], R]:
    """A change of the versions or the traffic: made alone (``Collection.changes``) and, with a
    shared store, from the cluster's latest state (a version made ready, a weight set, through
    another process a moment ago)."""

    @functools.wraps(method)
    def change(self: Collection, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.changes:
            if self.store.shared:
                self._sync()
            return method(self, *args, **kwargs)

    return change


class Collection:
    """Runtime state of one collection; built by the Engine from the store."""

    def __init__(
        self,
        name: str,
        store: Store,
        root: Path,
        config: VersionConfig,
    ) -> None:
        self.name = name
        self.store = store
        self.root = root
        self._config = config
        self.served = open_request_stats(name, store)  # routed requests per version, for rollout gates
        self.filters = search.Filters(store, name)  # the records recent filters matched
        self._lock = threading.RLock()
        self.changes = threading.RLock()
        """Held by whatever changes the versions or the traffic, and by ``sync``, so a change made
        here is never undone by a ``sync`` that read the store just before it."""
        self.versions: dict[str, Version] = {}
        self.failed: dict[str, FailedVersion] = {}  # stored versions this process could not bring up
        self.kinds: set[str] = {"doc", *store.count_records(name)}
        for row in store.list_versions(name):
            self._bring_up(row)
        self.traffic = store.traffic_history(name, limit=1)[0]
        self.router = self._router(self.traffic.weights)
        self.lead()

    def _bring_up(self, row: VersionRow) -> None:
        """Start a stored version, or keep it as failed when its spec no longer validates or its
        model is not allowed or not found here: the other versions still serve."""
        try:
            self.versions[row.name] = self._runtime(row)
        except (ModelNotAllowed, IndexNotAllowed, UnknownModel) as exc:
            self.failed[row.name] = FailedVersion(row, exc.message, self.root / row.name)
            log.error("version %s/%s is not served: %s", self.name, row.name, exc.message)

    def _runtime(self, row: VersionRow) -> Version:
        try:
            spec = stored_version_spec(row.spec)
        except ValidationError as exc:
            raise UnknownModel(f"its stored spec is no longer valid ({describe_errors(exc)})") from None
        return Version(row, spec, self.root / row.name, self.store, self._config)

    def _router(self, weights: dict[str, int]) -> Router:
        rows = [v.row for v in self.versions.values()] + [f.row for f in self.failed.values()]
        order = sorted(rows, key=lambda row: row.created_at, reverse=True)
        return Router(dict(weights), tuple(row.name for row in order))

    # -- writes -----------------------------------------------------------------------------

    def upsert(self, records: Sequence[RecordIn]) -> WriteAck:
        """Write the records to the change log (all or nothing): each must carry what every version
        needs, a text for one that embeds text, a vector of its dimension for one whose model is
        "none" (``check_vectors``)."""
        with self._lock:
            versions = list(self.versions.values())
        for version in versions:
            if version.takes_vectors:
                self._check_record_vectors(version, records)
            elif version.embeds_text and any(r.text is None for r in records):
                raise InvalidRequest(
                    f'version {version.name!r} embeds each record\'s text; give every record a "text" '
                    '(records with only a "vector" suit versions whose model is "none")',
                    collection=self.name,
                    version=version.name,
                )
        result = self.store.write(self.name, records, [])
        self.kinds.update(r.kind for r in records)
        return WriteAck(count=result.count, changed=result.changed, seq=result.seq)

    def _check_record_vectors(self, version: Version, records: Sequence[RecordIn]) -> None:
        missing = [r.id for r in records if r.vector is None]
        if missing:
            raise InvalidRequest(
                f'version {version.name!r} (model "none") takes each record\'s own vector; records '
                f'{", ".join(missing[:3])} have no "vector": [...] of {version.model.dim} numbers',
                collection=self.name,
                version=version.name,
            )
        version.check_vectors([r.vector for r in records if r.vector is not None], "record vectors")

    def check_backlog(self, serving: Iterable[str], bound: int) -> None:
        """Backpressure: ``Overloaded`` while a ``serving`` version has more than ``bound`` log entries
        left to apply. Building versions are never asked: they catch up through their backfill."""
        head = self.head_seq()
        for name in sorted(serving):
            version = self.versions.get(name)
            lag = head - version.applied_seq if version is not None else 0
            if lag > bound:
                raise Overloaded(
                    f"version {name!r} of {self.name!r} has {lag} log entries left to apply, more than "
                    f"max_apply_lag ({bound}); nothing was written. Retry after Retry-After; if this "
                    "lasts, its model can't keep up with the write rate (embedswitch_applier_lag_seqs)",
                    retry_after_s=1.0,
                    collection=self.name,
                    version=name,
                    lag=lag,
                )

    def delete(self, kind: str, id: str) -> DeleteAck:
        result = self.store.write(self.name, [], [(kind, id)])
        return DeleteAck(seq=result.seq)

    # -- search ------------------------------------------------------------------------------

    @contextmanager
    def pinned(self, version: str | None, key: str | None) -> Iterator[Version]:
        """Resolve the version once and keep it alive for the whole request."""
        with self._lock:
            name = version if version is not None else self.router.pick(key)
            if name in self.failed:
                raise self.failed[name].unavailable()
            found = self.versions.get(name)
            if found is None or not found.try_acquire():
                raise VersionNotFound(self.name, name, sorted(self.versions))
        start = time.perf_counter()
        error: Exception | None = None
        try:
            yield found
        except Exception as exc:
            error = exc
            raise
        finally:
            found.release()
            if version is None:  # routed by the traffic weights: this version's share of traffic
                self.served.record(found.name, time.perf_counter() - start, error)

    def search(self, request: SearchRequest, min_seq_timeout_s: float) -> SearchResult:
        with self.pinned(request.version, request.key) as pinned:
            return self.answer(pinned, request, min_seq_timeout_s)

    def answer(
        self,
        pinned: Version,
        request: SearchRequest,
        timeout_s: float,
        text_vector: np.ndarray | None = None,
    ) -> SearchResult:
        """``request`` answered by ``pinned``, which the caller holds (``pinned``); ``text_vector``:
        the query text's vector, when the caller embedded it (a batch)."""
        min_seq = request.min_seq
        if min_seq is not None and not pinned.wait_applied(min_seq, timeout_s):
            raise NotCaughtUp(
                f"version {pinned.name!r} has applied seq {pinned.applied_seq}, not yet {min_seq}, "
                f"after {timeout_s:g} s; retry later or raise the min_seq timeout",
                collection=self.name,
                version=pinned.name,
            )
        applied = pinned.applied_seq
        allowed = self.filters.restriction(request.kind, request.filter)
        ranked = search.run(pinned, request, self.kinds, allowed, text_vector)
        shape = (request.filter, request.fields, request.score_threshold)
        hits = search.hits(self.store, self.name, request.kind, ranked, *shape)
        return SearchResult(version=pinned.name, applied_seq=applied, request_id=request_id(), hits=hits)

    def recommend(self, request: RecommendRequest) -> RecommendResult:
        """Items for a user, or like an item: the subject's vector and the item search come from one
        pinned version, so a user vector never meets another version's item index."""
        with self.pinned(request.version, request.key) as pinned:
            applied = pinned.applied_seq
            fallback = None
            if request.item is not None:
                query = pinned.vector("item", request.item)
                exclude = {request.item}
            else:
                user = request.user or ""
                exclude = self.store.seen_items(self.name, user) if request.exclude_seen else set()
                try:
                    query = pinned.vector("user", user)
                except RecordNotFound:
                    if request.fallback != "popular":
                        raise
                    fallback = "popular"
            allowed = self.filters.restriction("item", request.filter)
            if fallback == "popular":
                many = MAX_BATCH if allowed is not None else request.k + len(exclude)
                popular = self.store.popular_items(self.name, many)
                ok = allowed.ids() if allowed is not None else None
                hits = [(i, 0.0) for i in popular if i not in exclude and (ok is None or i in ok)][
                    : request.k
                ]
            else:
                hits = pinned.search_vector(query, request.k, "item", self.kinds | {"item"}, exclude, allowed)
            return RecommendResult(
                version=pinned.name,
                applied_seq=applied,
                request_id=request_id(),
                hits=search.hits(self.store, self.name, "item", hits, request.filter, request.fields),
                fallback=fallback,
            )

    def add_interactions(self, rows: Sequence[InteractionIn]) -> WriteAck:
        result = self.store.add_interactions(self.name, rows)
        return WriteAck(count=result.count, changed=result.changed, seq=result.seq)

    # -- versions ----------------------------------------------------------------------------

    def answers_quickly(self) -> bool:
        """True when no version's model batches queries: every query embeds in microseconds."""
        return not any(v.model.batches_queries for v in list(self.versions.values()))

    def get_version(self, name: str) -> Version:
        found = self.versions.get(name)
        if found is None:
            if name in self.failed:
                raise self.failed[name].unavailable()
            raise VersionNotFound(self.name, name, sorted(self.versions))
        return found

    @_changes_cluster_state
    def add_version(self, spec: VersionSpec) -> VersionInfo:
        spec = place_index(spec, self._config.host is not None)
        with self._lock:
            if spec.name in self.versions or spec.name in self.failed:
                raise VersionExists(
                    f"collection {self.name!r} already has a version {spec.name!r}; pick another name",
                    collection=self.name,
                    version=spec.name,
                )
            self._config.index_access.check(spec.index)  # fail before anything is persisted
            load_model(spec.model, self._config.access)
            head = self.head_seq()
            total = sum(self.store.count_records(self.name).values())
            row = VersionRow(
                collection=self.name,
                name=spec.name,
                spec=spec.model_dump(mode="json"),
                state=BUILDING,
                created_seq=head,
                applied_seq=head,
                backfill=BackfillState(upto_seq=head, total=total, awaiting_vectors=spec.source == "vectors"),
                created_at=time.time(),
            )
            self.store.add_version(row)
            try:
                version = self._runtime(row)
            except BaseException:  # e.g. its index engine is unreachable: nothing of it stays
                self.store.delete_version(self.name, spec.name)
                raise
            events.record(
                self.store, self.name, spec.name, "created", {"model": spec_to_dict(spec.model), "seq": head}
            )
            self.versions[spec.name] = version
            self.router = self._router(self.traffic.weights)
        self.lead()
        return self.version_info(spec.name)

    def train(self, request: TrainRequest) -> VersionInfo:
        """Train an ``als`` version on the interactions so far and deploy it as a ``building``
        version (see ``training.py``); it takes no traffic until told."""
        if request.version in self.versions:
            raise VersionExists(
                f"collection {self.name!r} already has a version {request.version!r}; pick another name",
                collection=self.name,
                version=request.version,
            )
        require_training()
        if not self.store.popular_items(self.name, 1):
            raise InvalidRequest(
                f"collection {self.name!r} has no interactions on existing items to train on; post "
                f"some to /v1/collections/{self.name}/interactions first",
                collection=self.name,
            )
        model = request.model.model_copy(update={"trained_seq": self.head_seq()})
        spec = VersionSpec(name=request.version, model=model, index=request.index, source="vectors")
        return self.add_version(spec)

    def put_vectors(self, name: str, rows: Sequence[VectorRow]) -> VectorAck:
        """Load precomputed document vectors into a ``source="vectors"`` version (all or nothing)."""
        return load_vectors(self.get_version(name), self.store, rows)

    def commit_vectors(self, name: str) -> VersionInfo:
        commit_load(self.get_version(name), self.store)
        return self.version_info(name)

    def version_info(self, name: str) -> VersionInfo:
        if name in self.failed:
            return self.failed[name].info(self.router.weights.get(name, 0), self.head_seq())
        return describe(self.get_version(name), self.router.weights.get(name, 0), self.head_seq())

    def problems(self) -> dict[str, str]:
        """Per version, what keeps it from serving right now: a worker's error while it retries, or
        why a stored version could not be brought up."""
        found = {v.name: v.problem for v in list(self.versions.values()) if v.problem}
        found.update({f.name: f.unavailable().message for f in list(self.failed.values())})
        return found

    def info(self) -> CollectionInfo:
        counts = self.store.count_records(self.name)
        return CollectionInfo(
            name=self.name,
            head_seq=self.head_seq(),
            records=sum(counts.values()),
            records_by_kind=counts,
            versions=[self.version_info(name) for name in [*self.versions, *self.failed]],
            traffic={k: v for k, v in self.router.weights.items() if v > 0},
        )

    def head_seq(self) -> int:
        return self.store.head_seq(self.name)

    # -- traffic -----------------------------------------------------------------------------

    @_changes_cluster_state
    def set_traffic(self, weights: dict[str, int], reason: str = "set") -> None:
        with self._lock:
            self._apply_traffic(weights, reason, parent=self.traffic.id)

    def _apply_traffic(self, weights: dict[str, int], reason: str, parent: int | None) -> None:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise InvalidRequest(
                f"weights {weights} must be non-negative with a positive sum, e.g. {{'v1': 90, 'v2': 10}}",
                collection=self.name,
            )
        for name, weight in weights.items():
            version = self.get_version(name)
            held = version.quarantine.open_count()
            if weight > 0 and held and not self.router.weights.get(name, 0):
                raise VersionNotReady(
                    f"version {name!r} has {held} quarantined record(s) that its model rejects; retry them "
                    f"(POST /v1/collections/{self.name}/versions/{name}/quarantine/retry) or skip them "
                    "(.../quarantine/skip) before it takes traffic",
                    collection=self.name,
                    version=name,
                )
            if weight > 0 and version.state != READY:
                raise VersionNotReady(
                    f"version {name!r} is {version.state}"
                    + self._progress_hint(version)
                    + "; only ready versions can take traffic. Wait for it (GET "
                    f"/v1/collections/{self.name}/versions/{name}) or give it weight 0",
                    collection=self.name,
                    version=name,
                )
        clean = {name: weight for name, weight in weights.items() if weight > 0}
        router = self._router(clean)
        self.traffic = self.store.set_traffic(self.name, clean, reason, parent)
        events.record(self.store, self.name, None, "traffic", {"weights": clean, "reason": reason})
        self.router = router

    @staticmethod
    def _progress_hint(version: Version) -> str:
        if version.backfill is None or version.backfill.state.total == 0:
            return ""
        state = version.backfill.state
        return f" ({100 * state.done // max(1, state.total)}% backfilled)"

    def promote(self, name: str) -> None:
        self.set_traffic({name: 100}, reason=f"promote {name}")

    @_changes_cluster_state
    def rollback(self) -> None:
        with self._lock:
            current = self.traffic
            target = self.store.traffic_row(self.name, current.parent) if current.parent else None
            if target is None:
                raise NothingToRollBack(
                    f"collection {self.name!r} has no earlier traffic assignment to roll back to; "
                    "set weights with PUT /traffic instead",
                    collection=self.name,
                )
            gone = sorted(set(target.weights) - set(self.versions) - set(self.failed))
            if gone:
                raise NothingToRollBack(
                    f"the previous traffic assignment #{target.id} {target.weights} uses retired "
                    f"version(s) {', '.join(gone)}; set weights with PUT /traffic instead",
                    collection=self.name,
                )
            self._apply_traffic(target.weights, f"rollback to #{target.id}", parent=target.parent)

    def traffic_info(self) -> TrafficInfo:
        """The weights and their history (the engine adds the experiment's settings)."""
        history = self.store.traffic_history(self.name)
        return TrafficInfo(weights=dict(self.traffic.weights), history=[_entry(row) for row in history])

    @_changes_cluster_state
    def retire(self, name: str) -> None:
        with self._lock:
            version = self.failed.get(name) or self.get_version(name)
            if len(self.versions) + len(self.failed) == 1:
                raise LastVersion(
                    f"version {name!r} is the last version of {self.name!r}; add another version or "
                    "delete the collection",
                    collection=self.name,
                    version=name,
                )
            if self.router.weights.get(name, 0) > 0:
                raise VersionHasTraffic(
                    f"version {name!r} still has weight {self.router.weights[name]}; move its traffic "
                    "to another version first (PUT traffic or promote)",
                    collection=self.name,
                    version=name,
                )
            self.versions.pop(name, None)
            self.failed.pop(name, None)
            self.router = self._router(self.traffic.weights)
            self.store.delete_version(self.name, name)
            events.record(self.store, self.name, name, "retired", {})
        if isinstance(version, FailedVersion):
            version.destroy()
        else:
            version.retire()

    # -- the cluster: who runs each version's workers, and what other processes changed ---------

    def lead(self) -> None:
        """Run the workers of every version whose lease this process can take (with one process,
        all of them), and stop those of a version whose lease another process took over."""
        with self.changes:
            self._lead()

    def _lead(self) -> None:
        for version in list(self.versions.values()):
            if version.fence is not None:
                if self.store.lease_epoch(version.lease) != version.fence.epoch:
                    self._step_down(version)
                continue
            epoch = self.store.try_lease(version.lease)
            if epoch is None:
                continue
            row = next((r for r in self.store.list_versions(self.name) if r.name == version.name), None)
            if row is None:  # retired meanwhile
                self.store.release_lease(version.lease)
                continue
            version.follow(row)
            version.start(epoch)

    def _step_down(self, version: Version) -> None:
        """Another process leads ``version`` now: stop its workers here and serve it as a follower."""
        log.warning(
            "version %s/%s is led by another process now; its workers stop here", self.name, version.name
        )
        version.stop(checkpoint=False)
        row = next((r for r in self.store.list_versions(self.name) if r.name == version.name), None)
        with self._lock:
            if row is not None and self.versions.get(version.name) is version:
                self.versions[version.name] = self._runtime(row)

    def sync(self) -> None:
        """Take in what other processes sharing the store changed: versions added, retired or
        moved on (state, applied position, backfill progress), the traffic, the record kinds."""
        with self.changes:
            self._sync()

    def _sync(self) -> None:
        rows = {row.name: row for row in self.store.list_versions(self.name)}
        traffic = self.store.traffic_history(self.name, limit=1)[0]
        with self._lock:
            gone = [v for name, v in self.versions.items() if name not in rows]
            for name in [n for n in self.versions if n not in rows]:
                del self.versions[name]
            for name in [n for n in self.failed if n not in rows]:
                del self.failed[name]
            for name, row in rows.items():
                if name not in self.versions and name not in self.failed:
                    self._bring_up(row)
            for name, version in self.versions.items():
                version.follow(rows[name])
            self.traffic = traffic
            self.router = self._router(traffic.weights)
        for version in gone:
            version.stop(checkpoint=False)
        for version in list(self.versions.values()):
            if version.fence is not None and version.awaiting_vectors():
                stored = rows[version.name].backfill
                if stored is not None and not stored.awaiting_vectors:  # committed through another process
                    version.commit_vectors()
            self.kinds.update(version.kinds())  # kinds written elsewhere, from their indexes: no scan
        self.lead()

    # -- maintenance -------------------------------------------------------------------------

    def prune_log(self) -> int:
        with self._lock:
            rows = [v.row for v in self.versions.values()] + [f.row for f in self.failed.values()]
            floor = min((row.applied_seq for row in rows), default=0)
        return self.store.prune_log(self.name, floor)

    def close(self) -> None:
        self.served.close()
        for version in list(self.versions.values()):
            version.stop()

    def destroy(self) -> None:
        self.served.close()
        with self._lock:
            versions = list(self.versions.values())
            failed = list(self.failed.values())
            self.versions.clear()
            self.failed.clear()
        for version in versions:
            version.retire()
        for broken in failed:
            broken.destroy()


def _entry(row: TrafficRow) -> TrafficEntry:
    return TrafficEntry(id=row.id, weights=row.weights, reason=row.reason, created_at=row.created_at)
