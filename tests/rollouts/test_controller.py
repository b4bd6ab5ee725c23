"""Gated automatic rollouts on a real server under simulated users.

The SciFact subset (``_subset.py``) serves ``v1`` (``minilm-static``); the candidates are ``hash``
(``hashing``: worse) and ``mini`` (``minilm``: better). Simulated users (``embedswitch/simulation.py``)
search with sticky keys and click by the judgments, four at a time over HTTP, while the controller
moves the traffic. A bad candidate is rolled back at the first step (by the offline gate, by the
A/B outcome, by its error rate), a good one reaches 100% on its own, and no user ever gets a 5xx
from a healthy version. A kill -9 in the middle of a rollout resumes at the step it was at.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from _encoded import EncodedCache
from _subset import COLLECTION, subset, subset_data_dir
from conftest import FAST, ServerProcess, ServerThread, require_scifact
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from embedswitch import Client, Conflict, Engine, InvalidRequest, NotFound, VersionNotFound
from embedswitch.evaluation.simulation import Simulation, SimulationReport
from embedswitch.models.hashing import HashingModel
from embedswitch.results import RolloutInfo
from embedswitch.store.sqlite import SqliteStore

C = COLLECTION


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, encoded: EncodedCache) -> Iterator[Engine]:
    require_scifact()
    with Engine.open(subset_data_dir(tmp_path_factory, encoded), FAST) as opened:
        yield opened


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[ServerThread]:
    with ServerThread(engine) as running:
        yield running


@pytest.fixture
def client(engine: Engine, server: ServerThread) -> Iterator[Client]:
    """A client, with ``v1`` holding all traffic, interleaving and shadow off, a fresh experiment."""
    engine.set_traffic(C, {"v1": 100}, shadow="off", interleave="off")
    engine.reset_experiment(C)
    with Client(server.url) as opened:
        yield opened


class Users:
    """Simulated users over HTTP in the background until the rollout is over."""

    def __init__(self, url: str, seed: int, threads: int = 4) -> None:
        data = subset()
        self.simulation = Simulation(data.queries, data.qrels, users=2000, seed=seed)
        self.url = url
        self.threads = threads
        self.done = threading.Event()
        self.report = SimulationReport()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with Client(self.url) as client:
            self.report = self.simulation.run(client, C, 10**6, threads=self.threads, stop=self.done.is_set)

    def __enter__(self) -> Users:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._thread.join(timeout=60)


def outcomes(info: RolloutInfo) -> list[tuple[str, int]]:
    return [(t.outcome, t.step) for t in info.transitions]


def judged() -> dict[str, Any]:
    data = subset()
    return {"queries": data.queries, "qrels": data.qrels}


def live_ndcg(client: Client) -> float:
    """The live version's nDCG@10 on the subset: the floor a candidate must reach offline."""
    result = client.evaluate(C, {"versions": ["v1"], **judged()})
    return float(result.versions["v1"].model_dump()["ndcg@10"])


# -- a worse candidate is rolled back at the first step --------------------------------------------


def test_the_offline_gate_stops_a_worse_candidate_before_it_gets_traffic(client: Client) -> None:
    floor = live_ndcg(client)
    gates = {"offline": {"metric": "ndcg@10", "min": floor, **judged()}}
    started = client.start_rollout(C, {"to": "hash", "steps": [1, 10, 50, 100], "gates": gates})
    assert started.status == "running" and started.live == "v1" and started.step == 0
    final = client.wait_rollout(C, started.id, timeout_s=120)

    assert final.status == "rolled_back" and final.weights == {"v1": 100}
    assert outcomes(final) == [("started", 0), ("rolled_back", 0)]
    (check,) = final.transitions[-1].gates
    assert check.gate == "offline" and not check.passed
    assert isinstance(check.value, float) and check.value < floor and check.limit == floor
    assert "offline ndcg@10 of hash" in final.reason
    assert client.traffic(C).weights == {"v1": 100}
    assert all(entry.weights.get("hash", 0) == 0 for entry in client.traffic(C).history)
    event = client.events(C, "hash")[0]
    assert event.event == "rollout" and event.detail["outcome"] == "rolled_back"
    assert event.detail["rollout"] == started.id and "offline" in event.detail["reason"]


def test_the_ab_gate_rolls_back_a_worse_candidate_under_simulated_clicks(client: Client) -> None:
    """At 50% the A/B test has hundreds of requests per arm: hashing's CTR is about 12 points
    below minilm-static's on this subset, far beyond the noise (expected z near 5)."""
    spec = {"to": "hash", "steps": [50, 100], "min_requests": 800, "gates": {"experiment": "ab"}}
    with Users(client.url, seed=21) as users:
        started = client.start_rollout(C, spec)
        final = client.wait_rollout(C, started.id, timeout_s=300)
    assert users.report.server_errors == 0 and users.report.errors == {}
    assert final.status == "rolled_back" and final.weights == {"v1": 100}
    assert outcomes(final) == [("started", 0), ("advanced", 50), ("rolled_back", 0)]
    checks = {check.gate: check for check in final.transitions[-1].gates}
    assert checks["ab"].value == "worse" and not checks["ab"].passed
    assert checks["error_rate"].passed and checks["error_rate"].value == 0.0
    assert "hash worse" in final.reason
    arms = client.experiment(C).ab.arms
    assert arms["hash"].requests >= 800 and arms["hash"].ctr < arms["v1"].ctr


# -- a better candidate reaches 100% on its own, with zero 5xx --------------------------------------


def test_a_better_candidate_reaches_full_traffic_on_its_own(client: Client) -> None:
    floor = live_ndcg(client)
    gates = {
        "max_error_rate": 0.0,
        "max_p99_ratio": 1000.0,
        "experiment": "ab",
        "offline": {"metric": "ndcg@10", "min": floor, **judged()},
    }
    spec = {"to": "mini", "steps": [10, 50, 100], "min_requests": 60, "gates": gates}
    with Users(client.url, seed=22) as users:
        started = client.start_rollout(C, spec)
        final = client.wait_rollout(C, started.id, timeout_s=600)
        time.sleep(0.5)  # users keep going a little on the new weights
    report = users.report
    assert report.server_errors == 0 and report.errors == {}
    assert set(report.by_version) == {"v1", "mini"} and report.by_version["mini"].sessions >= 120

    assert final.status == "completed" and final.weights == {"mini": 100} and final.step == 100
    assert outcomes(final) == [("started", 0), ("advanced", 10), ("advanced", 50), ("completed", 100)]
    offline = final.transitions[1].gates[0]
    assert offline.gate == "offline" and offline.passed and isinstance(offline.value, float)
    assert offline.value > floor
    for entry in final.transitions[2:]:
        assert {c.gate for c in entry.gates} == {"error_rate", "p99_ratio", "ab"}
        assert all(c.passed for c in entry.gates)
    assert client.traffic(C).weights == {"mini": 100}

    history = [e.reason for e in reversed(client.traffic(C).history) if e.reason.startswith("rollout")]
    assert [reason.split(":")[0] for reason in history[-3:]] == [
        f"rollout #{started.id} step {step}%" for step in (10, 50, 100)
    ]
    events = [
        e for e in client.events(C, "mini") if e.event == "rollout" and e.detail["rollout"] == started.id
    ]
    assert [e.detail["outcome"] for e in reversed(events)] == ["started", "advanced", "advanced", "completed"]
    metrics = httpx.get(f"{client.url}/metrics").text
    assert f'embedswitch_rollout_step{{collection="{C}",rollout="{started.id}",to="mini"}} 100.0' in metrics
    assert f'embedswitch_rollout_transitions_total{{collection="{C}",outcome="completed"}}' in metrics


# -- a candidate whose model fails is rolled back by its error rate -----------------------------------


class EmbeddingRequest(BaseModel):
    model: str
    input: list[str]


@contextlib.contextmanager
def embedding_endpoint(state: dict[str, bool]) -> Iterator[str]:
    """A real OpenAI-compatible embeddings server (hashing vectors) that fails while
    ``state["fail"]``: the fault a remote model produces when its provider goes down."""
    app = FastAPI()

    @app.post("/v1/embeddings")
    def embeddings(body: EmbeddingRequest) -> Any:
        if state["fail"]:
            return JSONResponse({"error": {"message": "provider down"}}, status_code=500)
        vectors = HashingModel(dim=64, seed=5).encode(body.input)
        return {"data": [{"index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_error_gate_rolls_back_a_candidate_that_fails(client: Client, engine: Engine) -> None:
    state = {"fail": False}
    with embedding_endpoint(state) as url:
        model = {"type": "openai", "url": url, "model": "h", "query_retry_max_s": 0}  # queries fail at once
        client.add_version(C, {"name": "remote", "model": model})
        client.wait_ready(C, "remote", timeout_s=120)
        state["fail"] = True
        spec = {"to": "remote", "steps": [20, 100], "min_requests": 30, "gates": {"max_error_rate": 0.05}}
        with Users(client.url, seed=23, threads=2) as users:
            started = client.start_rollout(C, spec)
            final = client.wait_rollout(C, started.id, timeout_s=120)
    assert final.status == "rolled_back" and client.traffic(C).weights == {"v1": 100}
    assert outcomes(final) == [("started", 0), ("advanced", 20), ("rolled_back", 0)]
    (check,) = final.transitions[-1].gates
    assert check.gate == "error_rate" and check.value == 1.0 and not check.passed
    # the failures users saw are the candidate's, during its one step: model_unavailable (503)
    assert set(users.report.errors) == {"model_unavailable"}
    assert users.report.by_version.keys() == {"v1"}
    client.retire(C, "remote")


# -- what is refused, stopping, and people winning over the controller --------------------------------


def test_refusals_change_nothing(client: Client) -> None:
    before = (client.list_rollouts(C), client.traffic(C).weights)
    refused: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"to": "nope"}, VersionNotFound, "version_not_found"),
        ({"to": "v1"}, Conflict, "conflict"),
        ({"to": "mini", "steps": [10, 50]}, InvalidRequest, "invalid_request"),
        ({"to": "mini", "steps": [50, 10, 100]}, InvalidRequest, "invalid_request"),
        ({"to": "mini", "min_requests": 0}, InvalidRequest, "invalid_request"),
        ({"to": "mini", "gates": {"experiment": "interleaving"}}, Conflict, "conflict"),
        ({"to": "mini", "gates": {"offline": {"min": 0.5}}}, InvalidRequest, "invalid_request"),
        (
            {"to": "mini", "gates": {"offline": {"min": 0.5, "beir": "/nowhere"}}},
            InvalidRequest,
            "invalid_request",
        ),
        ({"to": "mini", "gates": {"max_error_rate": 2}}, InvalidRequest, "invalid_request"),
        ({"to": "mini", "surprise": 1}, InvalidRequest, "invalid_request"),
    ]
    for spec, error, code in refused:
        with pytest.raises(error) as caught:
            client.start_rollout(C, spec)
        assert caught.value.code == code, spec
    client.set_traffic(C, {"v1": 90, "mini": 10})
    with pytest.raises(Conflict, match="split"):
        client.start_rollout(C, {"to": "mini"})
    client.set_traffic(C, {"v1": 100})
    with pytest.raises(NotFound) as missing:
        client.rollout(C, 999)
    assert missing.value.code == "rollout_not_found"
    assert client.list_rollouts(C) == before[0] and client.traffic(C).weights == before[1]


def test_one_rollout_at_a_time_and_stopping_gives_traffic_back(client: Client) -> None:
    spec = {"to": "mini", "steps": [10, 100], "min_requests": 10**6}
    started = client.start_rollout(C, spec)
    running = wait_for(client, started.id, lambda info: info.step == 10)
    assert client.traffic(C).weights == {"v1": 90, "mini": 10}
    assert running.window is not None and "waiting for 1000000 routed requests on mini" in running.reason
    with pytest.raises(Conflict) as busy:
        client.start_rollout(C, {"to": "hash"})
    assert busy.value.code == "rollout_in_progress" and f"#{started.id}" in busy.value.message

    stopped = client.stop_rollout(C, started.id)
    assert stopped.status == "stopped" and stopped.weights == {"v1": 100}
    assert outcomes(stopped)[-1] == ("stopped", 0) and "operator" in stopped.reason
    assert client.traffic(C).weights == {"v1": 100}
    with pytest.raises(Conflict, match="only a running rollout"):
        client.stop_rollout(C, started.id)
    assert client.list_rollouts(C)[0].id == started.id


def test_a_manual_traffic_change_stops_the_rollout_and_stays(client: Client) -> None:
    started = client.start_rollout(C, {"to": "mini", "steps": [10, 100], "min_requests": 10**6})
    wait_for(client, started.id, lambda info: info.step == 10)
    client.set_traffic(C, {"v1": 70, "mini": 30})
    final = client.wait_rollout(C, started.id, timeout_s=30)
    assert final.status == "stopped" and "changed outside the rollout" in final.reason
    assert client.traffic(C).weights == {"v1": 70, "mini": 30}
    client.set_traffic(C, {"v1": 100})


def wait_for(client: Client, id: int, condition: Any, timeout_s: float = 60) -> RolloutInfo:
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.rollout(C, id)
        if condition(info):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


# -- restarts ----------------------------------------------------------------------------------------


def test_a_transition_half_done_by_a_crash_is_completed_on_open(tmp_path: Path) -> None:
    """The state of a step is saved before its weights are set: a crash in between leaves the
    store wanting 10% while the traffic is still at 0%. Opening the engine finishes the job."""
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"record {i}"} for i in range(20)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        engine.wait_ready("c", "v2")
        started = engine.start_rollout("c", {"to": "v2", "steps": [10, 100], "min_requests": 10**6})
        wait_engine(engine, started.id, lambda info: info.step == 10)
    store = SqliteStore(data / "embedswitch.db")
    row = store.rollout("c", started.id)
    assert row is not None and row.state["weights"] == {"v1": 90, "v2": 10}
    halfway = {**row.state, "weights": {"v2": 100}, "previous": {"v1": 90, "v2": 10}, "step_index": 1}
    store.save_rollout("c", started.id, halfway, "completed")  # saved; the weights not set yet
    store.close()

    with Engine.open(data, FAST) as engine:
        assert engine.traffic("c").weights == {"v2": 100}
        assert engine.traffic("c").history[0].reason == f"rollout #{started.id}: re-applied after a restart"
        assert engine.rollout("c", started.id).status == "completed"


def wait_engine(engine: Engine, id: int, condition: Any, timeout_s: float = 60) -> RolloutInfo:
    deadline = time.monotonic() + timeout_s
    while True:
        info = engine.rollout("c", id)
        if condition(info):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.05)


class Searches:
    """Sticky-key searches against a server that may die: connection failures are expected while
    it is down; any answer must be a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                key = f"user-{rng.integers(10_000)}"
                try:
                    response = http.post("/v1/collections/c/search", json={"text": "record 7", "key": key})
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                self.statuses.append(response.status_code)

    def __enter__(self) -> Searches:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=60)


def test_kill_9_midway_resumes_at_the_same_step(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine.open(data, FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", [{"id": f"d{i}", "text": f"record {i}"} for i in range(50)])
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        engine.wait_ready("c", "v2")
    server = ServerProcess(data).start()
    try:
        with Searches(server.url) as load, Client(server.url) as client:
            spec = {"to": "v2", "steps": [10, 30, 60, 100], "min_requests": 150}
            started = client.start_rollout("c", spec)
            wait_for_step(client, started.id, 30)
            server.kill()
            store = SqliteStore(data / "embedswitch.db")
            saved = store.rollout("c", started.id)
            store.close()
            assert saved is not None and saved.status == "running"
            step = saved.state["weights"].get("v2", 0)
            assert step in (30, 60)  # the kill came at 30%, or just after the next transition

            server.start()
            resumed = client.rollout("c", started.id)
            assert resumed.transitions[-1].outcome in ("resumed", "advanced", "completed")
            final = client.wait_rollout("c", started.id, timeout_s=120)
        assert final.status == "completed" and final.weights == {"v2": 100}
        assert set(load.statuses) == {200}
        steps = [(t.outcome, t.step) for t in final.transitions]
        resumed_at = steps.index(("resumed", step))
        assert steps[:resumed_at] == [("started", 0)] + [("advanced", s) for s in (10, 30, 60) if s <= step]
        assert steps[resumed_at + 1 :] == [("advanced", s) for s in (60,) if s > step] + [("completed", 100)]
    finally:
        server.stop()


def wait_for_step(client: Client, id: int, step: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while client.rollout("c", id).step < step:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_deleting_the_collection_ends_its_rollout_quietly(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", FAST) as engine:
        for _ in range(2):
            engine.create_collection("c", {"name": "v1", "model": "hashing"})
            engine.upsert("c", [{"id": "d1", "text": "one record"}])
            engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
            engine.wait_ready("c", "v2")
            started = engine.start_rollout("c", {"to": "v2", "steps": [10, 100], "min_requests": 10**6})
            wait_engine(engine, started.id, lambda info: info.step == 10)
            engine.delete_collection("c")
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        time.sleep(0.5)  # a few controller ticks
        assert engine.list_rollouts("c") == []
        assert [e.event for e in engine.events("c")] == ["created"]


def test_the_interleaving_gate_rolls_back_a_worse_candidate(client: Client, engine: Engine) -> None:
    """60% of the searches are interleavings of v1 and hash; the rest follow the rollout's weights.
    By the time hash has answered its 840 routed requests at 50%, about 2,500 interleaved
    impressions have voted (expected z near 5 on this subset)."""
    engine.set_traffic(C, interleave={"versions": ["v1", "hash"], "percent": 60})
    engine.reset_experiment(C)
    spec = {"to": "hash", "steps": [50, 100], "min_requests": 840, "gates": {"experiment": "interleaving"}}
    started = engine.start_rollout(C, spec)
    data = subset()
    simulation = Simulation(data.queries, data.qrels, users=2000, seed=24)

    def over() -> bool:
        return engine.rollout(C, started.id).status != "running"

    report = simulation.run(engine, C, 10**6, threads=2, stop=over)
    final = engine.rollout(C, started.id)
    assert report.errors == {}
    assert final.status == "rolled_back" and engine.traffic(C).weights == {"v1": 100}
    assert outcomes(final) == [("started", 0), ("advanced", 50), ("rolled_back", 0)]
    checks = {check.gate: check for check in final.transitions[-1].gates}
    assert checks.keys() == {"error_rate", "interleaving"} and checks["error_rate"].passed
    assert checks["interleaving"].value == "worse" and not checks["interleaving"].passed
    assert checks["interleaving"].detail == "interleaving: hash worse"


def test_gate_verdicts_from_reports() -> None:
    """The gates' reading of the experiment reports, on hand-built reports."""
    from embedswitch.request_stats import Window
    from embedswitch.results import AbReport, Comparison, InterleavingReport
    from embedswitch.rollouts.gates import ab_gate, error_gate, interleaving_gate, p99_gate

    def interleaving(versions: tuple[str, str], outcome: str) -> InterleavingReport:
        wins = {versions[0]: 10, versions[1]: 30}
        return InterleavingReport.model_validate(
            {"versions": versions, "impressions": 50, "wins": wins, "ties": 2, "p_value": 0.01}
            | {"outcome": outcome, "verdict": "x"}
        )

    # the report's outcome is of versions[1] against versions[0], whichever the candidate is
    assert interleaving_gate(interleaving(("v1", "v2"), "worse"), "v1", "v2").passed is False
    assert interleaving_gate(interleaving(("v2", "v1"), "worse"), "v1", "v2").passed is True
    assert interleaving_gate(interleaving(("v2", "v1"), "better"), "v1", "v2").value == "worse"
    assert interleaving_gate(interleaving(("v1", "v3"), "better"), "v1", "v2").passed is False
    assert interleaving_gate(None, "v1", "v2").passed is False

    def ab(control: str, outcome: str) -> AbReport:
        comparison = Comparison(
            candidate="v2", control=control, difference=-0.1, ci=(-0.2, 0.0), p_value=0.01,
            outcome=outcome, verdict=f"v2 {outcome}", more_requests_needed=None,
        )  # fmt: skip
        return AbReport(control=control, arms={}, comparisons={"v2": comparison})

    assert ab_gate(ab("v1", "worse"), "v1", "v2").passed is False
    assert ab_gate(ab("v1", "not_significant"), "v1", "v2").passed is True
    assert ab_gate(ab("v0", "worse"), "v1", "v2").passed is True  # not compared against the live one
    assert ab_gate(AbReport(control="v1", arms={}, comparisons={}), "v1", "v2").passed is True

    fast = Window(100, 0, np.full(100, 0.001))
    slow = Window(100, 2, np.full(100, 0.004))
    assert error_gate("v2", slow, 0.01).passed is False and error_gate("v2", slow, 0.02).passed is True
    assert p99_gate("v2", slow, "v1", fast, 3.0).value == pytest.approx(4.0)
    assert p99_gate("v2", slow, "v1", fast, 3.0).passed is False
    assert p99_gate("v2", slow, "v1", Window(5, 0, np.full(5, 0.001)), 3.0).passed is True  # too few
