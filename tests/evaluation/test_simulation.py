"""Simulated users: the click model's probabilities, reproducibility, driving the real API (in
process and over HTTP), and interleaving judged by simulated clicks on SciFact."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _encoded import EncodedCache
from _subset import COLLECTION, subset, subset_data_dir
from conftest import FAST, SCIFACT, ServerThread, needs_scifact, require_scifact

from embedswitch import Client, Engine
from embedswitch.evaluation.simulation import ClickModel, JudgedSet, Simulation, judged_subset
from embedswitch.results import InterleavingReport

RANKED = [f"d{i}" for i in range(10)]


# -- the click model ---------------------------------------------------------------------------------


def test_examination_decays_with_rank_and_stops_at_depth() -> None:
    model = ClickModel(eta=1.0, depth=10)
    assert [model.examine(r) for r in (1, 2, 4, 10, 11)] == [1.0, 0.5, 0.25, 0.1, 0.0]
    assert ClickModel(eta=2.0).examine(3) == pytest.approx(1 / 9)
    probs = model.probabilities(RANKED, {"d0": 1, "d3": 2})
    expected = [0.8 if i in (0, 3) else 0.05 for i in range(10)]
    assert probs == pytest.approx([p / (i + 1) for i, p in enumerate(expected)])
    assert len(ClickModel(depth=3).probabilities(RANKED, {})) == 3


@pytest.mark.parametrize("bad", [{"p_relevant": 1.5}, {"p_irrelevant": -0.1}, {"eta": -1.0}, {"depth": 0}])
def test_click_model_refuses_impossible_parameters(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ClickModel(**bad)  # type: ignore[arg-type]


def test_click_frequencies_follow_the_model() -> None:
    """Over many users, each hit is clicked as often as the model says (relevant at ranks 1 and
    4, judged 0 at rank 2: not relevant), and only relevant clicks convert."""
    model = ClickModel(p_relevant=0.8, p_irrelevant=0.05, eta=1.0, p_convert=0.5)
    rels = {"d0": 1, "d1": 0, "d3": 1}
    rng = np.random.default_rng(7)
    n = 20_000
    clicks: Counter[int] = Counter()
    conversions: Counter[int] = Counter()
    for _ in range(n):
        for click in model.clicks(RANKED, rels, rng):
            clicks[click.rank] += 1
            conversions[click.rank] += click.converted
    want = model.probabilities(RANKED, rels)
    for rank in range(1, 11):
        assert clicks[rank] / n == pytest.approx(want[rank - 1], abs=0.01), rank
    assert conversions[1] / clicks[1] == pytest.approx(0.5, abs=0.02)
    assert conversions[2] == conversions[3] == 0


@needs_scifact
def test_sessions_are_reproducible_whatever_the_order() -> None:
    data = subset_small()
    first = Simulation(data.queries, data.qrels, users=50, seed=3)
    again = Simulation(data.queries, data.qrels, users=50, seed=3)
    other = Simulation(data.queries, data.qrels, users=50, seed=4)
    numbers = list(range(200))
    forward = [(first.session(n), first.play(n, RANKED)) for n in numbers]
    backward = [(again.session(n), again.play(n, RANKED)) for n in reversed(numbers)]
    assert forward == list(reversed(backward))
    assert [other.session(n) for n in numbers] != [s for s, _ in forward]
    assert {s.key for s, _ in forward} <= {f"user-{u}" for u in range(50)}
    assert len({s.query_id for s, _ in forward}) > 10


@needs_scifact
def test_judged_subset_keeps_every_judged_document() -> None:
    data = judged_subset(SCIFACT, queries=30, extra_docs=40, seed=1)
    ids = {r["id"] for r in data.records}
    judged = {doc for rels in data.qrels.values() for doc in rels}
    assert len(data.queries) == 30 and set(data.qrels) == set(data.queries)
    assert judged <= ids and len(ids) == len(judged) + 40
    assert judged_subset(SCIFACT, queries=30, extra_docs=40, seed=1) == data


# -- driving the API ---------------------------------------------------------------------------------


def subset_small() -> JudgedSet:
    return judged_subset(SCIFACT, queries=20, extra_docs=30, seed=0)


@pytest.fixture
def split_engine(tmp_path: Path) -> Iterator[Engine]:
    """Two hashing versions (different seeds) at 50/50 over a small SciFact subset."""
    with Engine.open(tmp_path / "data", FAST) as engine:
        engine.create_collection("c", {"name": "v1", "model": "hashing"})
        engine.upsert("c", subset_small().records)
        engine.add_version("c", {"name": "v2", "model": {"type": "hashing", "seed": 1}})
        engine.wait_ready("c", "v2")
        engine.set_traffic("c", {"v1": 50, "v2": 50})
        engine.reset_experiment("c")
        yield engine


@needs_scifact
def test_simulated_users_drive_the_engine_and_the_server(split_engine: Engine) -> None:
    """Sessions search with their user's key (sticky routing decides the version) and post their
    clicks as feedback: the experiment report counts exactly what the simulation did."""
    data = subset_small()
    sim = Simulation(data.queries, data.qrels, users=40, seed=11)
    in_process = sim.run(split_engine, "c", 150, threads=2)
    with ServerThread(split_engine) as server, Client(server.url) as client:
        over_http = sim.run(client, "c", 150, threads=2, start=150)
    assert in_process.errors == over_http.errors == {}
    assert in_process.sessions == over_http.sessions == 150

    router = split_engine.collection("c").router
    routed = Counter(router.pick(sim.session(n).key) for n in range(300))
    report = split_engine.experiment("c")
    for version in ("v1", "v2"):
        tally = [r.by_version[version] for r in (in_process, over_http)]
        assert sum(t.sessions for t in tally) == routed[version] == report.ab.arms[version].requests
        assert sum(t.clicked_sessions for t in tally) == report.ab.arms[version].clicks
        assert sum(t.conversions for t in tally) >= report.ab.arms[version].conversions > 0
    assert in_process.clicks > 0


@needs_scifact
def test_a_stop_condition_ends_the_run(split_engine: Engine) -> None:
    data = subset_small()
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 25

    report = Simulation(data.queries, data.qrels, seed=1).run(split_engine, "c", 10_000, stop=stop)
    assert report.sessions == 25


# -- interleaving under simulated clicks -------------------------------------------------------------


@pytest.fixture(scope="module")
def sci(tmp_path_factory: pytest.TempPathFactory, encoded: EncodedCache) -> Iterator[Engine]:
    require_scifact()
    with Engine.open(subset_data_dir(tmp_path_factory, encoded), FAST) as engine:
        yield engine


def interleave(engine: Engine, pair: list[str], sessions: int, seed: int) -> InterleavingReport:
    engine.set_traffic(COLLECTION, {"v1": 100}, interleave={"versions": pair, "percent": 100})
    engine.reset_experiment(COLLECTION)
    data = subset()
    simulation = Simulation(data.queries, data.qrels, users=500, seed=seed)
    report = simulation.run(engine, COLLECTION, sessions, threads=2)
    assert report.errors == {} and report.sessions == sessions
    found = engine.experiment(COLLECTION).interleaving
    assert found is not None and list(found.versions) == pair and found.impressions == sessions
    return found


def test_identical_versions_interleave_to_a_draw(sci: Engine) -> None:
    """``v1`` and ``twin`` embed with the same model, so they rank alike: clicks split between
    them by the team draft's coin flips only. The win rate is about 50%. A correct implementation
    is significant at the 5% level in 5% of runs by definition, so the test asks for p > 0.001
    (a false alarm once in a thousand runs); a biased credit (always the first team, say) gives
    p far below that with this many impressions."""
    found = interleave(sci, ["v1", "twin"], sessions=600, seed=5)
    decisive = found.wins["v1"] + found.wins["twin"]
    assert decisive > 150
    assert found.wins["twin"] / decisive == pytest.approx(0.5, abs=0.1)
    assert found.p_value > 0.001


def test_minilm_wins_the_interleaving_against_minilm_static(sci: Engine) -> None:
    """``minilm`` ranks the judged documents higher (nDCG@10 0.88 against 0.63 on this subset), so
    it wins more clicked impressions than it loses: about 59% of the decisive ones, significant
    with a margin at this many sessions (the expected z is above 4)."""
    found = interleave(sci, ["v1", "mini"], sessions=1000, seed=6)
    assert found.wins["mini"] > found.wins["v1"]
    assert found.outcome == "better" and found.p_value < 0.05
    assert "mini" in found.verdict
