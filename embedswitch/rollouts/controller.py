"""Gated automatic rollouts: traffic moves to a candidate step by step on evidence, and comes back
on its own when the evidence is bad.

A rollout starts from one *live* version that holds all traffic and moves traffic to the candidate
``to`` through ``steps`` (percent on the candidate, ending at 100):

1. before the first step, the offline gate (if any) evaluates the candidate on judged queries
   through its own serving path (``Engine.evaluate``);
2. at each step the controller waits until the candidate has answered ``min_requests`` routed
   requests in that step and ``step_interval_s`` has passed, then checks the gates over the step's
   window: the candidate's server-error rate, its p99 latency over the live version's, and the
   current experiment's A/B or interleaving outcome (not "worse");
3. every gate passes: next step, and 100 completes the rollout. One fails: the weights go back to
   the live version at 100 and the rollout ends ``rolled_back``.

An operator's stop also puts the live version back at 100 (``stopped``). A traffic change made
outside the rollout (PUT traffic, promote, rollback) ends it as ``stopped`` and leaves the weights
as they are: people win over the controller.

Durability: each transition is saved (with the weights it wants and the ones before) before the
weights are set. ``Engine.open`` calls ``resume``: a transition that a crash left half done is
completed, and each running rollout continues at the step it was at. A step's request window
starts at a mark held in memory (``request_stats/``), so a resumed step waits for its
``min_requests`` again.
Every transition is in the rollout's ``transitions``, in the collection's events (a ``rollout``
event, and the ``traffic`` event of the weight change, with the same reason) and in ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import _fence, events
from .._errors import (
    CollectionNotFound,
    Conflict,
    EmbedswitchError,
    InvalidRequest,
    RolloutInProgress,
    RolloutNotFound,
    VersionNotReady,
)
from ..collection import Collection
from ..experiments import Experiments
from ..request_stats import Window
from ..results import GateCheck, InterleaveSetting, RolloutInfo, RolloutTransition, RolloutWindow
from ..specs import MAX_SEQ, RolloutSpec, parse
from ..store.base import RolloutRow, Store
from ..version import READY
from .gates import error_gate, experiment_gate, offline_score, p99_gate
from .state import RUNNING, RolloutRun, RolloutState, share, step_weights, traffic_reason

log = logging.getLogger("embedswitch")

TICK_S = 0.2
"""How often a running rollout looks at its window."""


class Rollouts:
    """The rollout controller of one engine: starts, lists, stops and resumes rollouts, one
    thread per running rollout, at most one running rollout per collection."""

    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry,
        collection: Callable[[str], Collection],
        collections: Callable[[], list[Collection]],
        experiments: Experiments,
    ) -> None:
        """``collection(name)`` finds a collection (``CollectionNotFound`` otherwise) and
        ``collections()`` lists them; ``experiments`` gives their current experiment reports."""
        self._store = store
        self._collection = collection
        self._collections = collections
        self._experiments = experiments
        self._lock = threading.RLock()
        self._running: dict[str, RolloutRun] = {}
        self._held: dict[str, int] = {}  # collection -> epoch of its rollout lease held here
        self._closing = threading.Event()
        self.transitions = Counter(
            "embedswitch_rollout_transitions",
            "Rollout transitions by outcome",
            ["collection", "outcome"],
            registry=registry,
        )
        registry.register(_RolloutCollector(self))

    # -- the API -----------------------------------------------------------------------------

    def start(self, collection: str, spec: RolloutSpec | dict[str, Any]) -> RolloutInfo:
        """Validate and start a rollout; it runs in the background."""
        request = parse(RolloutSpec, spec)
        target = self._collection(collection)
        with self._lock:
            running = self._running.get(collection)
            if running is not None:
                raise RolloutInProgress(
                    f"collection {collection!r} already runs rollout #{running.id} to "
                    f"{running.spec.to!r}; wait for it or stop it "
                    f"(POST /v1/collections/{collection}/rollouts/{running.id}/stop)",
                    collection=collection,
                    rollout=running.id,
                )
            live = _check_start(target, self._experiments.of(collection).interleave, request)
            weights = {live: 100}
            first = RolloutTransition(
                at=time.time(),
                outcome="started",
                step=0,
                weights=weights,
                reason=f"rollout from {live} to {request.to} through {request.steps}",
            )
            state = RolloutState(live, -1, weights, weights, [first])
            row = self._store.add_rollout(
                collection, request.model_dump(mode="json"), state.to_json(), RUNNING
            )
            run = RolloutRun.from_row(row)
            self._record(run, first)
            epoch = self._lease(collection)
            if epoch is not None:  # else the process holding the collection's lease picks it up
                with _fence.fenced(_lease_name(collection), epoch):
                    self._launch(run)
            return self._info(run)

    def history(self, collection: str) -> list[RolloutInfo]:
        """The collection's rollouts, newest first (the last 100)."""
        self._collection(collection)
        return [self._info(self._current(row)) for row in self._store.rollouts(collection)]

    def get(self, collection: str, id: int) -> RolloutInfo:
        return self._info(self._load(collection, id))

    def stop(self, collection: str, id: int) -> RolloutInfo:
        """Stop a running rollout and give the live version all traffic back."""
        with self._lock:
            run = self._load(collection, id)
            if run.status != RUNNING:
                raise Conflict(
                    f"rollout #{id} of {collection!r} is {run.status.replace('_', ' ')}; only a running "
                    "rollout can be stopped",
                    collection=collection,
                    rollout=id,
                )
            weights = {run.state.live: 100}
            self._transition(run, "stopped", "stopped", weights, "stopped by the operator", [])
            return self._info(run)

    def resume(self) -> None:
        """After a restart, and then whenever the cluster changes: for each collection whose
        rollout lease this process takes (with one process, all), complete a transition a crash
        interrupted and run its running rollout; a rollout another process started or led before
        it died is picked up here. A controller whose lease another process took over stops."""
        for target in self._collections():
            name = _lease_name(target.name)
            held = self._held.get(target.name)
            if held is not None and self._store.lease_epoch(name) != held:
                with self._lock:
                    self._held.pop(target.name, None)
                    self._running.pop(target.name, None)  # its thread ends at its next tick
                continue
            fresh = held is None
            epoch = self._lease(target.name)
            rows = self._store.rollouts(target.name, 1)
            if epoch is None or not rows or not (fresh or rows[0].status == RUNNING):
                continue
            run = RolloutRun.from_row(rows[0])
            with self._lock, _fence.fenced(name, epoch):
                if target.name in self._running:
                    continue
                if not fresh:  # started through another process while this one held the lease
                    self._launch(run)
                    continue
                try:
                    self._reconcile(target, run)
                except EmbedswitchError as exc:
                    log.error("rollout #%s of %s could not resume: %s", run.id, run.collection, exc)

    def _lease(self, collection: str) -> int | None:
        """The epoch of the collection's rollout lease if this process holds it (taking it now
        if it is free), else None."""
        with self._lock:
            held = self._held.get(collection)
            if held is None:
                held = self._store.try_lease(_lease_name(collection))
                if held is not None:
                    self._held[collection] = held
            return held

    def forget(self, collection: str) -> None:
        """The collection is being deleted: its running rollout's thread ends without a transition."""
        with self._lock:
            self._running.pop(collection, None)
            if self._held.pop(collection, None) is not None:
                self._store.release_lease(_lease_name(collection))

    def close(self) -> None:
        """Stop every controller thread (the rollouts stay running in the store and resume)."""
        self._closing.set()
        with self._lock:
            threads = [run.thread for run in self._running.values() if run.thread is not None]
        for thread in threads:
            thread.join(timeout=30)

    # -- the controller ----------------------------------------------------------------------

    def _launch(self, run: RolloutRun) -> None:
        target = self._collection(run.collection)
        run.mark = target.served.mark()
        run.step_since, run.step_started = time.time(), time.monotonic()
        self._running[run.collection] = run
        run.thread = _fence.thread(lambda: self._loop(run), f"rollout-{run.collection}-{run.id}")
        run.thread.start()

    def _loop(self, run: RolloutRun) -> None:
        while not self._closing.wait(TICK_S):
            try:
                if not self._tick(run):
                    return
            except CollectionNotFound:
                with self._lock:
                    self._running.pop(run.collection, None)
                return
            except Exception:
                log.exception("rollout #%s of %s: step check failed; retrying", run.id, run.collection)

    def _tick(self, run: RolloutRun) -> bool:
        """One look at the rollout; False once it is over."""
        target = self._collection(run.collection)
        stored = self._store.rollout(run.collection, run.id)
        with self._lock:
            if self._running.get(run.collection) is not run:
                return False
            if stored is None or stored.status != RUNNING:  # stopped through another process
                self._running.pop(run.collection, None)
                return False
            if target.traffic.weights != run.state.weights:
                reason = (
                    f"the traffic was changed outside the rollout (to {target.traffic.weights}); "
                    "the rollout stops and leaves it as it is"
                )
                self._transition(run, "stopped", "stopped", dict(target.traffic.weights), reason, [])
                return False
            index = run.state.step_index
        if index < 0:
            checks = self._offline(run)
        else:
            windows = target.served.since(run.mark) if run.mark else {}
            if not self._step_done(run, windows.get(run.spec.to)):
                return True
            checks = self._checks(run, target, windows)
        with self._lock:
            if self._running.get(run.collection) is not run or run.state.step_index != index:
                return False
            if all(check.passed for check in checks):
                self._advance(run, checks)
            else:
                failed = "; ".join(check.detail for check in checks if not check.passed)
                weights = {run.state.live: 100}
                self._transition(run, "rolled_back", "rolled_back", weights, f"gate failed: {failed}", checks)
            return run.status == RUNNING

    def _step_done(self, run: RolloutRun, window: Window | None) -> bool:
        requests = window.requests if window else 0
        waited = time.monotonic() - run.step_started
        return requests >= run.spec.min_requests and waited >= run.spec.step_interval_s

    def _advance(self, run: RolloutRun, checks: list[GateCheck]) -> None:
        index = run.state.step_index + 1
        percent = run.spec.steps[index]
        weights = step_weights(run.state.live, run.spec.to, percent)
        if checks:
            reason = "gates passed: " + "; ".join(check.detail for check in checks)
        else:
            reason = "first step (no offline gate)" if index == 0 else "no gate configured"
        if percent >= 100:
            self._transition(run, "completed", "completed", weights, reason, checks)
        else:
            self._transition(run, "advanced", RUNNING, weights, reason, checks)

    def _transition(
        self,
        run: RolloutRun,
        outcome: str,
        status: str,
        weights: dict[str, int],
        reason: str,
        checks: list[GateCheck],
    ) -> None:
        """Save the transition, then set the weights (see the module docstring on durability)."""
        target = self._collection(run.collection)
        index = run.state.step_index + 1 if outcome in ("advanced", "completed") else run.state.step_index
        entry = RolloutTransition(
            at=time.time(),
            outcome=outcome,  # type: ignore[arg-type]
            step=share(weights, run.spec.to),
            weights=weights,
            reason=reason,
            gates=checks,
        )
        before = dict(target.traffic.weights)
        run.state = RolloutState(run.state.live, index, weights, before, [*run.state.transitions, entry])
        run.status = status
        self._save(run)
        if weights != before:
            try:
                target.set_traffic(weights, reason=traffic_reason(run.id, entry))
            except EmbedswitchError as exc:
                self._abandon(run, before, f"could not set the weights {weights}: {exc.message}")
                return
        self._record(run, entry)
        self._settle(run, target)

    def _abandon(self, run: RolloutRun, weights: dict[str, int], reason: str) -> None:
        entry = RolloutTransition(
            at=time.time(),
            outcome="stopped",
            step=share(weights, run.spec.to),
            weights=weights,
            reason=reason,
        )
        run.state = RolloutState(
            run.state.live, run.state.step_index, weights, weights, [*run.state.transitions, entry]
        )
        run.status = "stopped"
        self._save(run)
        self._record(run, entry)
        self._running.pop(run.collection, None)

    def _settle(self, run: RolloutRun, target: Collection) -> None:
        """After a transition: a new window for a running rollout, or its end."""
        if run.status == RUNNING:
            run.mark = target.served.mark()
            run.step_since, run.step_started = time.time(), time.monotonic()
        elif self._running.get(run.collection) is run:
            del self._running[run.collection]

    def _save(self, run: RolloutRun) -> None:
        self._store.save_rollout(run.collection, run.id, run.state.to_json(), run.status)
        run.updated_at = time.time()

    def _record(self, run: RolloutRun, entry: RolloutTransition) -> None:
        detail = {"rollout": run.id, "outcome": entry.outcome, "step": entry.step, "reason": entry.reason}
        events.record(
            self._store, run.collection, run.spec.to, "rollout", detail | {"weights": entry.weights}
        )
        self.transitions.labels(run.collection, entry.outcome).inc()

    def _reconcile(self, target: Collection, run: RolloutRun) -> None:
        """Finish what a crash interrupted, then resume a running rollout."""
        current = dict(target.traffic.weights)
        wanted = run.state.weights
        if current != wanted and current == run.state.previous:
            target.set_traffic(wanted, reason=f"rollout #{run.id}: re-applied after a restart")
            current = wanted
        if run.status != RUNNING:
            return
        if current != wanted:
            reason = (
                f"the traffic was changed while the rollout was not running (to {current}); "
                "the rollout stops and leaves it as it is"
            )
            self._transition(run, "stopped", "stopped", current, reason, [])
            return
        percent = share(wanted, run.spec.to)
        entry = RolloutTransition(
            at=time.time(),
            outcome="resumed",
            step=percent,
            weights=wanted,
            reason=f"resumed after a restart at {percent}%; this step counts its requests again",
        )
        run.state.transitions.append(entry)
        self._save(run)
        self._record(run, entry)
        self._launch(run)

    # -- gates -------------------------------------------------------------------------------

    def _offline(self, run: RolloutRun) -> list[GateCheck]:
        gate = run.spec.gates.offline
        if gate is None:
            return []
        try:
            value = offline_score(self._collection(run.collection), run.spec.to, gate)
        except (EmbedswitchError, OSError, ValueError) as exc:
            detail = f"the offline evaluation of {run.spec.to} could not run: {exc}"
            return [GateCheck(gate="offline", passed=False, value=None, limit=gate.min, detail=detail)]
        passed = value >= gate.min
        detail = f"offline {gate.metric} of {run.spec.to} {value:.4f} {'>=' if passed else '<'} {gate.min}"
        return [
            GateCheck(gate="offline", passed=passed, value=round(value, 5), limit=gate.min, detail=detail)
        ]

    def _checks(self, run: RolloutRun, target: Collection, windows: dict[str, Window]) -> list[GateCheck]:
        gates = run.spec.gates
        to, live = run.spec.to, run.state.live
        candidate = windows[to]
        checks = []
        if gates.max_error_rate is not None:
            checks.append(error_gate(to, candidate, gates.max_error_rate))
        if gates.max_p99_ratio is not None:
            checks.append(p99_gate(to, candidate, live, windows.get(live), gates.max_p99_ratio))
        if gates.experiment != "none":
            report = self._experiments.of(target.name).report()
            checks.append(experiment_gate(report, gates.experiment, live, to))
        return checks

    # -- views -------------------------------------------------------------------------------

    def _load(self, collection: str, id: int) -> RolloutRun:
        self._collection(collection)
        row = self._store.rollout(collection, id) if 0 < id <= MAX_SEQ else None  # else: no such id
        if row is None:
            raise RolloutNotFound(
                f"collection {collection!r} has no rollout #{id}; list them with "
                f"GET /v1/collections/{collection}/rollouts",
                collection=collection,
                rollout=id,
            )
        return self._current(row)

    def _current(self, row: RolloutRow) -> RolloutRun:
        with self._lock:
            running = self._running.get(row.collection)
        return running if running is not None and running.id == row.id else RolloutRun.from_row(row)

    def _info(self, run: RolloutRun) -> RolloutInfo:
        spec, state = run.spec, run.state
        window = None
        if run.status == RUNNING and run.mark is not None:
            target = self._collection(run.collection)
            counts = target.served.since(run.mark)
            window = RolloutWindow(
                since=run.step_since,
                requests={name: w.requests for name, w in counts.items()},
                errors={name: w.errors for name, w in counts.items()},
            )
        return RolloutInfo(
            id=run.id,
            collection=run.collection,
            live=state.live,
            to=spec.to,
            steps=spec.steps,
            min_requests=spec.min_requests,
            step_interval_s=spec.step_interval_s,
            gates=spec.gates.model_dump(mode="json", exclude={"offline": {"queries", "qrels"}}),
            status=run.status,  # type: ignore[arg-type]
            step=share(state.weights, spec.to),
            weights=state.weights,
            reason=self._reason(run, window),
            created_at=run.created_at,
            updated_at=run.updated_at,
            transitions=state.transitions,
            window=window,
        )

    @staticmethod
    def _reason(run: RolloutRun, window: RolloutWindow | None) -> str:
        last = run.state.transitions[-1]
        if run.status != RUNNING:
            return last.reason
        if run.state.step_index < 0:
            return "running the offline gate" if run.spec.gates.offline else "starting"
        done = window.requests.get(run.spec.to, 0) if window else 0
        percent = share(run.state.weights, run.spec.to)
        return (
            f"at {percent}%: waiting for {run.spec.min_requests} routed requests on {run.spec.to} "
            f"({done} so far) before checking the gates"
        )

    def latest(self) -> Iterator[RolloutInfo]:
        """The latest rollout of every collection that has one."""
        for target in self._collections():
            rows = self._store.rollouts(target.name, 1)
            if rows:
                yield self._info(self._current(rows[0]))


# -- starting ----------------------------------------------------------------------------------------


def _check_start(target: Collection, interleave: InterleaveSetting | None, spec: RolloutSpec) -> str:
    """The live version the rollout starts from; raises when the rollout can't start."""
    candidate = target.get_version(spec.to)
    if candidate.state != READY:
        raise VersionNotReady(
            f"version {spec.to!r} is {candidate.state}; a rollout needs a ready candidate: wait for it "
            f"(GET /v1/collections/{target.name}/versions/{spec.to})",
            collection=target.name,
            version=spec.to,
        )
    live = [name for name, weight in target.traffic.weights.items() if weight > 0]
    if live == [spec.to]:
        raise Conflict(
            f"version {spec.to!r} already has all the traffic of {target.name!r}; nothing to roll out",
            collection=target.name,
            version=spec.to,
        )
    if len(live) != 1:
        raise Conflict(
            f"the traffic of {target.name!r} is split {dict(target.traffic.weights)}; a rollout starts "
            "from one live version with all traffic: promote one first (POST .../versions/{v}/promote)",
            collection=target.name,
        )
    offline = spec.gates.offline
    if offline is not None and offline.beir is not None:
        root = Path(offline.beir)
        if not (root / "queries.jsonl").is_file() or not (root / "qrels" / "test.tsv").is_file():
            raise InvalidRequest(
                f"gates.offline.beir: {offline.beir} has no queries.jsonl and qrels/test.tsv on the "
                "server; give a BEIR directory there, or send the judgments as queries + qrels",
                collection=target.name,
            )
    if spec.gates.experiment == "interleaving":
        _check_interleaving(target, interleave, live[0], spec.to)
    return live[0]


def _check_interleaving(target: Collection, setting: InterleaveSetting | None, live: str, to: str) -> None:
    if setting is None or set(setting.versions) != {live, to}:
        raise Conflict(
            f"the interleaving gate needs interleaving of {live} and {to} to be on; turn it on with "
            f'PUT /v1/collections/{target.name}/traffic {{"interleave": {{"versions": ["{live}", "{to}"], '
            '"percent": 10}}',
            collection=target.name,
        )


# -- metrics ---------------------------------------------------------------------------------------------


class _RolloutCollector(Collector):
    """The latest rollout of each collection, read at scrape time."""

    def __init__(self, rollouts: Rollouts) -> None:
        self._rollouts = rollouts

    def collect(self) -> Iterator[Metric]:
        labels = ["collection", "rollout", "to"]
        step = GaugeMetricFamily(
            "embedswitch_rollout_step", "Percent of traffic on the rollout's candidate", labels=labels
        )
        running = GaugeMetricFamily("embedswitch_rollout_running", "1 while the rollout runs", labels=labels)
        for info in self._rollouts.latest():
            key = [info.collection, str(info.id), info.to]
            step.add_metric(key, info.step)
            running.add_metric(key, 1 if info.status == RUNNING else 0)
        yield from (step, running)


def _lease_name(collection: str) -> str:
    """The cluster-wide lease whose holder runs the collection's rollout controller."""
    return f"rollouts:{collection}"
