"""A/B reports, interleaving and experiment settings on a real engine (real SQLite, hashing models).

Versions use hashing models with different seeds and dimensions, so a vector only matches vectors
of its own version: a hit's score is reproduced only by the model of the version that found it.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FAST
from scipy.stats import chi2_contingency

from embedswitch import Engine, InvalidRequest, RequestNotFound, VersionNotFound, VersionNotReady
from embedswitch.evaluation.metrics import jaccard
from embedswitch.experiments.interleaving import team_draft
from embedswitch.models import load_model, parse_model_spec
from embedswitch.results import Hit

SPECS = {
    "v1": {"type": "hashing", "seed": 0, "dim": 256},
    "v2": {"type": "hashing", "seed": 1, "dim": 128},
}
WORDS = ["protein", "cell", "gene", "cancer", "virus", "brain", "heart", "drug", "trial", "mouse"]
QUERIES = [f"{a} {b}" for a in WORDS[:5] for b in WORDS[5:]]


def docs(n: int = 300) -> list[dict[str, str]]:
    rng = random.Random(3)
    return [{"id": f"d{i:03}", "text": " ".join(rng.choice(WORDS) for _ in range(4))} for i in range(n)]


def two_versions(engine: Engine, v2: dict | None = None) -> None:
    engine.create_collection("c", {"name": "v1", "model": SPECS["v1"]})
    engine.upsert("c", docs())
    engine.add_version("c", {"name": "v2", "model": v2 or SPECS["v2"]})
    engine.wait_ready("c", "v2")


def wilson(x: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval written out (Wilson 1927), independent of the code under test."""
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half, centre + half)


def test_ab_report_on_a_hand_built_click_set(engine: Engine) -> None:
    two_versions(engine)
    engine.set_traffic("c", {"v1": 50, "v2": 50})
    served: dict[str, list] = {"v1": [], "v2": []}
    for i in range(240):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=5, key=f"user{i}")
        served[result.version].append(result)
    engine.search("c", QUERIES[0], k=5, version="v2")  # pinned: not part of the experiment
    n1, n2 = len(served["v1"]), len(served["v2"])
    assert n1 > 60 and n2 > 60

    # v1: 20 requests clicked at rank 1, 10 at rank 3 (each also clicked at rank 4 later: MRR uses
    # the first-ranked click); v2: 45 at rank 2, 5 of them twice (a duplicate counts once).
    plan = {
        "v1": [(r, [1]) for r in served["v1"][:20]] + [(r, [3, 4]) for r in served["v1"][20:30]],
        "v2": [(r, [2]) for r in served["v2"][:45]],
    }
    counted = []
    for version, clicks in plan.items():
        for result, ranks in clicks:
            for rank in ranks:
                ack = engine.feedback(
                    "c", {"request_id": result.request_id, "id": result.hits[rank - 1].id, "event": "click"}
                )
                assert ack.version == version and ack.rank == rank
                counted.append(ack.counted)
    for result, _ in plan["v2"][:5]:
        again = engine.feedback(
            "c", {"request_id": result.request_id, "id": result.hits[1].id, "event": "click"}
        )
        assert not again.counted
    for result in served["v2"][:7]:
        engine.feedback(
            "c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "convert", "value": 9.5}
        )
    assert all(counted)

    report = engine.experiment("c")
    ab = report.ab
    assert ab.control == "v1"
    arm1, arm2 = ab.arms["v1"], ab.arms["v2"]
    assert (arm1.requests, arm1.clicks, arm1.conversions) == (n1, 30, 0)
    assert (arm2.requests, arm2.clicks, arm2.conversions) == (n2, 45, 7)
    assert arm1.ctr == pytest.approx(30 / n1) and arm2.ctr == pytest.approx(45 / n2)
    assert arm1.ctr_ci == pytest.approx(wilson(30, n1)) and arm2.ctr_ci == pytest.approx(wilson(45, n2))
    assert arm2.conversion_rate == pytest.approx(7 / n2)
    assert arm2.conversion_ci == pytest.approx(wilson(7, n2))
    rr1 = [1.0] * 20 + [1 / 3] * 10 + [0.0] * (n1 - 30)
    rr2 = [0.5] * 45 + [0.0] * (n2 - 45)
    assert arm1.mrr == pytest.approx(np.mean(rr1)) and arm2.mrr == pytest.approx(np.mean(rr2))
    half = 1.959963984540054 * np.std(rr1, ddof=1) / math.sqrt(n1)
    assert arm1.mrr_ci == pytest.approx((np.mean(rr1) - half, np.mean(rr1) + half))

    comparison = ab.comparisons["v2"]
    table = [[30, n1 - 30], [45, n2 - 45]]
    chi2, p_value, _, _ = chi2_contingency(table, correction=False)  # = the pooled two-proportion z-test
    assert comparison.p_value == pytest.approx(p_value)
    assert comparison.difference == pytest.approx(45 / n2 - 30 / n1)
    expected = "v2 better" if p_value < 0.05 else "not significant yet, about"
    assert comparison.verdict.startswith(expected)
    assert comparison.outcome == ("better" if p_value < 0.05 else "not_significant")


def test_verdicts_better_worse_and_sample_size(engine: Engine) -> None:
    two_versions(engine)
    engine.set_traffic("c", {"v1": 50, "v2": 50})
    served: dict[str, list] = {"v1": [], "v2": []}
    for i in range(400):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=3, key=f"u{i}")
        served[result.version].append(result)
    for result in served["v2"][: len(served["v2"]) // 2]:
        engine.feedback("c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"})
    for result in served["v1"][:10]:
        engine.feedback("c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"})
    report = engine.experiment("c").ab.comparisons["v2"]
    assert (report.outcome, report.verdict, report.more_requests_needed) == ("better", "v2 better", None)
    assert report.p_value < 1e-6 and report.ci[0] > 0

    fresh = engine.reset_experiment("c")  # v1 and v2 have equal weight: the older, v1, is control
    assert fresh.experiment == 2 and fresh.ab.control == "v1" and fresh.ab.arms["v1"].requests == 0
    engine.set_traffic("c", {"v1": 10, "v2": 90})
    assert engine.reset_experiment("c").ab.control == "v2"
    served = {"v1": [], "v2": []}
    for i in range(400):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=3, key=f"u{i}")
        served[result.version].append(result)
    for version, share in (("v2", 0.30), ("v1", 0.36)):
        for result in served[version][: round(len(served[version]) * share)]:
            engine.feedback("c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"})
    report = engine.experiment("c").ab.comparisons["v1"]
    assert report.outcome == "not_significant" and report.more_requests_needed
    assert report.verdict == f"not significant yet, about {report.more_requests_needed} more requests needed"
    # the estimate: at the observed CTRs and the current split, the test would then have ~80% power
    assert 1_000 < report.more_requests_needed < 100_000


def test_feedback_errors_leave_nothing_counted(engine: Engine) -> None:
    two_versions(engine)
    result = engine.search("c", "gene cancer", k=3)
    with pytest.raises(RequestNotFound, match="no recorded request"):
        engine.feedback("c", {"request_id": "f" * 32, "id": "d001", "event": "click"})
    pinned = engine.search("c", "gene cancer", k=3, version="v1")
    with pytest.raises(RequestNotFound):
        engine.feedback("c", {"request_id": pinned.request_id, "id": pinned.hits[0].id, "event": "click"})
    shown = {hit.id for hit in result.hits}
    other = next(d["id"] for d in docs() if d["id"] not in shown)
    with pytest.raises(InvalidRequest, match="not in the response"):
        engine.feedback("c", {"request_id": result.request_id, "id": other, "event": "click"})
    with pytest.raises(InvalidRequest, match="event"):
        engine.feedback("c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "like"})
    assert engine.experiment("c").ab.arms[result.version].clicks == 0
    # the request's assignment is still in the in-memory buffer: feedback finds it all the same
    fresh = engine.search("c", "gene cancer", k=3)
    assert engine.feedback(
        "c", {"request_id": fresh.request_id, "id": fresh.hits[0].id, "event": "click"}
    ).counted


def test_team_draft_keeps_each_teams_order_and_never_repeats() -> None:
    a = [Hit(id=f"a{i}", score=1 - i / 10) for i in range(6)] + [Hit(id="both", score=0.1)]
    b = [Hit(id="both", score=0.9)] + [Hit(id=f"b{i}", score=1 - i / 10) for i in range(3)]
    first_picks = set()
    for seed in range(50):
        merged = team_draft(a, b, ("A", "B"), 8, random.Random(seed))
        ids = [hit.id for hit in merged]
        assert len(ids) == len(set(ids)) == 8
        for team, source in (("A", a), ("B", b)):
            picked = [hit.id for hit in merged if hit.version == team]
            assert picked == [hit.id for hit in source if hit.id in picked]  # in the team's own order
            assert all(hit.id in {h.id for h in source} for hit in merged if hit.version == team)
        first_picks.add(merged[0].version)
    assert first_picks == {"A", "B"}  # the coin decides who starts
    short = team_draft(a[:1], b[1:2], ("A", "B"), 10, random.Random(0))
    assert sorted(h.id for h in short) == ["a0", "b0"]
    assert jaccard(["x", "y"], ["y", "z"]) == pytest.approx(1 / 3) and jaccard([], []) == 1.0


def test_interleaved_lists_each_come_from_their_own_version(engine: Engine) -> None:
    two_versions(engine)
    engine.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 100})
    models = {name: load_model(parse_model_spec(spec)) for name, spec in SPECS.items()}
    texts = {d["id"]: d["text"] for d in docs()}
    for query in QUERIES:
        result = engine.search("c", query, k=6)
        assert result.interleaved == ["v1", "v2"] and result.version == "v1"
        own = {name: engine.search("c", query, k=6, version=name) for name in ("v1", "v2")}
        for hit in result.hits:
            assert hit.version in ("v1", "v2")
            model = models[hit.version]
            expected = float(model.encode([query], "query")[0] @ model.encode([texts[hit.id]], "document")[0])
            assert hit.score == pytest.approx(expected, abs=1e-4), f"{hit.id} not scored by {hit.version}"
            assert hit.id in {h.id for h in own[hit.version].hits}
        counts = [sum(1 for h in result.hits[: i + 1] if h.version == "v1") for i in range(len(result.hits))]
        assert all(abs(2 * c - (i + 1)) <= 1 for i, c in enumerate(counts))  # picks alternate


def test_interleaving_two_identical_versions_is_not_significant(engine: Engine) -> None:
    """Same model twice: the lists are identical, so who contributed the clicked top hit is the team
    draft's coin flip. Statistical: the win rate is near 1/2 (a 4.9-sigma band) and the sign test
    does not reject at 0.1% (it would by chance in 0.1% of runs)."""
    two_versions(engine, v2=SPECS["v1"])
    engine.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 100})
    for i in range(600):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=4)
        engine.feedback("c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"})
        if i % 3 == 0:  # clicks on both of the first pair of picks: always a tie
            engine.feedback("c", {"request_id": result.request_id, "id": result.hits[1].id, "event": "click"})
    report = engine.experiment("c").interleaving
    assert report is not None and report.versions == ("v1", "v2")
    assert report.impressions == 600 and report.ties == 200
    assert report.wins["v1"] + report.wins["v2"] == 400
    assert 0.4 <= report.wins["v2"] / 400 <= 0.6
    assert report.p_value > 1e-3
    if report.p_value >= 0.05:
        assert report.outcome == "not_significant" and report.verdict.startswith("not significant yet")
    arms = engine.experiment("c").ab.arms
    assert list(arms) == ["v1"] and arms["v1"].requests == 0  # interleaved requests are not A/B rows


def test_interleaving_credits_the_contributor_and_finds_the_better_version(engine: Engine) -> None:
    two_versions(engine)
    engine.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 100})
    for i in range(120):
        result = engine.search("c", QUERIES[i % len(QUERIES)], k=4)
        clicked = next(hit for hit in result.hits if hit.version == "v2")  # users prefer v2's hits
        ack = engine.feedback("c", {"request_id": result.request_id, "id": clicked.id, "event": "click"})
        assert ack.version == "v2"
    report = engine.experiment("c").interleaving
    assert report is not None
    assert report.wins == {"v1": 0, "v2": 120} and report.ties == 0
    assert report.outcome == "better" and report.verdict == "v2 better" and report.p_value < 1e-30


def test_settings_are_checked_kept_and_survive_restart(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "data", FAST) as engine:
        two_versions(engine)
        with pytest.raises(VersionNotFound):
            engine.set_traffic("c", {"v1": 50, "v2": 50}, shadow={"version": "v9", "percent": 5})
        assert engine.traffic("c").weights == {"v1": 100}  # a rejected request changes nothing
        engine.add_version("c", {"name": "v3", "model": "hashing", "source": "vectors"})  # stays building
        with pytest.raises(VersionNotReady):
            engine.set_traffic("c", interleave={"versions": ["v1", "v3"], "percent": 5})
        engine.set_traffic("c", shadow={"version": "v3", "percent": 10})  # a building candidate is fine
        engine.set_traffic("c", interleave={"versions": ["v1", "v2"], "percent": 20})
        engine.collection("c").set_traffic({"v1": 90, "v2": 10}, "rollout step")  # as the controller does
        info = engine.traffic("c")
        assert info.weights == {"v1": 90, "v2": 10}
        assert info.shadow is not None and (info.shadow.version, info.shadow.percent) == ("v3", 10)
        assert info.interleave is not None and info.interleave.versions == ["v1", "v2"]
        result = engine.search("c", "gene cancer", k=3, key="somebody")
        experiment = engine.experiment("c").experiment
    with Engine.open(tmp_path / "data", FAST) as engine:
        info = engine.traffic("c")
        assert info.shadow is not None and info.shadow.version == "v3"
        assert info.interleave is not None and info.interleave.percent == 20
        assert engine.experiment("c").experiment == experiment
        ack = engine.feedback(
            "c", {"request_id": result.request_id, "id": result.hits[0].id, "event": "click"}
        )
        assert ack.counted  # assignments buffered at close were written
        engine.set_traffic("c", shadow="off")
        assert engine.traffic("c").shadow is None and engine.traffic("c").interleave is not None
        engine.set_traffic("c", {"v1": 100})
        engine.retire("c", "v2")  # a retired version leaves the settings that name it
        assert engine.traffic("c").interleave is None


def test_recommendations_are_recorded_and_mirrored(engine: Engine) -> None:
    engine.create_collection("c", {"name": "v1", "model": SPECS["v1"]})
    items = [{"id": f"i{i}", "kind": "item", "text": text["text"]} for i, text in enumerate(docs(60))]
    engine.upsert("c", items)
    engine.add_version("c", {"name": "v2", "model": SPECS["v2"]})
    engine.wait_ready("c", "v2")
    engine.set_traffic("c", shadow={"version": "v2", "percent": 100})
    result = engine.recommend("c", item="i1", k=5)
    ack = engine.feedback("c", {"request_id": result.request_id, "id": result.hits[2].id, "event": "click"})
    assert (ack.version, ack.rank, ack.counted) == ("v1", 3, True)
    arm = engine.experiment("c").ab.arms["v1"]
    assert (arm.requests, arm.clicks, arm.mrr) == (1, 1, pytest.approx(1 / 3))
    deadline = time.monotonic() + 30
    while not engine.experiment("c").shadow:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (shadow,) = engine.experiment("c").shadow
    pinned = engine.recommend("c", item="i1", k=5, version="v2")
    expected = jaccard([h.id for h in result.hits], [h.id for h in pinned.hits])
    assert (shadow.mirrored, shadow.errors, shadow.overlap_at_10) == (1, 0, pytest.approx(expected))
