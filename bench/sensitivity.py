"""Sensitivity of A/B testing and interleaving under simulated users: how many sessions each needs
to call the better version better at 95% confidence.

The ranked lists come from the real engine: SciFact goes into one collection with a version per
model, and every test query is searched once through ``engine.search`` pinned to each version (top
10, with the hits as the engine returns them). The click simulation then runs many times over those
cached lists, cheaply:

- **A/B**: each session is a new user, assigned to either version by a fair coin; it issues a
  random test query, sees that version's list and clicks by the position-based model of
  ``embedswitch/simulation.py``. The metric is the CTR (share of sessions with a click), compared by
  the two-proportion z-test of ``embedswitch/stats.py``, the test ``GET /experiment`` runs;
- **interleaving**: each session sees the two lists merged by ``team_draft`` of
  ``embedswitch/experiment.py`` (the function that serves interleaved searches) and the version
  credited with more of its clicks wins the session; wins against losses go through the same sign
  test as the interleaving report.

Each method's test is run after every session count on a geometric grid (x1.1, from 10 to
``max_sessions``). The sessions a method needs, for one seed, is the count from which its test
calls the candidate better (two-sided p < 0.05, the right direction) at every later count of the
grid: the point after which the call no longer flips. The median over seeds is the headline, with
the ratio A/B / interleaving. For comparison the table also gives the first count at which the
test called the candidate better: with a test checked this often that figure is biased low (early
flukes stop it), more so for the z-test, whose normal approximation is poor on a few dozen sessions.
The full run compares ``minilm`` with ``minilm-static`` on all of SciFact; ``--quick`` compares
``minilm-static`` with ``hashing`` on a subset.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from embedswitch import EngineConfig
from embedswitch.evaluation.metrics import evaluate_run
from embedswitch.evaluation.simulation import ClickModel, JudgedSet, judged_subset
from embedswitch.experiments import stats
from embedswitch.experiments.interleaving import team_draft
from embedswitch.results import Hit

from ._common import SCIFACT, stopwatch, temp_engine, upsert_all, wait_applied

COLLECTION = "sensitivity"
K = 10
GRID_FACTOR = 1.1
METHODS = {
    "ab": "A/B, 50/50 (CTR, z-test)",
    "ab-10": "A/B, 10% on the candidate (CTR, z-test)",
    "interleaving": "team-draft interleaving (sign test)",
}
AB_SHARES = {"ab": 0.5, "ab-10": 0.1}
"""The candidate's share of sessions in each A/B variant."""


@dataclass(frozen=True)
class Params:
    control: str  # model of the version users have now
    candidate: str  # model of the better version
    queries: int | None  # judged test queries kept (None: all 300)
    extra_docs: int  # other documents kept (-1: the whole corpus)
    seeds: int
    max_sessions: int
    click_model: ClickModel = ClickModel()

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls("hashing", "minilm-static", queries=100, extra_docs=300, seeds=5, max_sessions=5_000)
        return cls("minilm-static", "minilm", queries=None, extra_docs=-1, seeds=51, max_sessions=20_000)


Lists = dict[str, list[Hit]]  # query id -> top-K hits


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = judged_subset(SCIFACT, queries=params.queries, extra_docs=params.extra_docs, seed=0)
    with stopwatch() as ranking:
        lists = rank_with_engine(data, params)
    quality = {
        name: evaluate_run({q: [h.id for h in hits] for q, hits in by_query.items()}, data.qrels, [K])
        for name, by_query in lists.items()
    }
    with stopwatch() as simulating:
        needed = {
            method: [sessions_needed(method, lists, data, params, seed) for seed in range(params.seeds)]
            for method in METHODS
        }
    rows = [method_row(method, found, params) for method, found in needed.items()]
    median = {method: row["median sessions"] for method, row in zip(METHODS, rows, strict=True)}
    ab, ab_10, interleaving = median["ab"], median["ab-10"], median["interleaving"]
    return {
        "params": {
            **asdict(params),
            "docs": len(data.records),
            "queries_used": len(data.queries),
            "k": K,
            "grid_factor": GRID_FACTOR,
            "significance": f"two-sided p < {stats.ALPHA}",
        },
        "tables": {
            "offline quality of the two versions (through engine.search)": [
                {"version": name, "model": model, "nDCG@10": round(quality[name]["ndcg@10"], 4)}
                for name, model in (("control", params.control), ("candidate", params.candidate))
            ],
            f"sessions to call {params.candidate} better than {params.control} (p < 0.05)": rows,
        },
        "summary": {
            "A/B 50/50 median sessions": ab,
            "A/B 90/10 median sessions": ab_10,
            "interleaving median sessions": interleaving,
            "A/B 50/50 / interleaving": _ratio(ab, interleaving),
            "A/B 90/10 / interleaving": _ratio(ab_10, interleaving),
        },
        "notes": [
            f"{params.seeds} seeds; ranking through the engine took {ranking.s:.1f} s, the simulation "
            f"{simulating.s:.1f} s",
            "sessions needed = the count on a x1.1 grid from which the test calls the candidate better "
            "at every later count up to max sessions (see the module docstring)",
        ],
    }


def rank_with_engine(data: JudgedSet, params: Params) -> dict[str, Lists]:
    """Every query's top 10 from each version, through ``engine.search`` pinned to it."""
    with temp_engine(EngineConfig()) as engine:
        engine.create_collection(COLLECTION, {"name": "control", "model": params.control})
        ids = [r["id"] for r in data.records]
        seq = upsert_all(engine, COLLECTION, ids, [r["text"] for r in data.records])
        wait_applied(engine, COLLECTION, "control", seq)
        engine.add_version(COLLECTION, {"name": "candidate", "model": params.candidate})
        engine.wait_ready(COLLECTION, "candidate", timeout_s=3600)
        return {
            name: {
                qid: engine.search(COLLECTION, text, k=K, version=name).hits
                for qid, text in data.queries.items()
            }
            for name in ("control", "candidate")
        }


@dataclass(frozen=True)
class Needed:
    """One seed's verdicts: the first grid count called better, and the count from which every
    later one is (None when the last count of the grid is not)."""

    first: int | None
    stays: int | None
    effect: tuple[float, float]  # at max_sessions: A/B CTR (control, candidate); interleaving:
    # share of decisive sessions won (control, candidate)


def sessions_needed(
    method: str, lists: dict[str, Lists], data: JudgedSet, params: Params, seed: int
) -> Needed:
    """Play ``max_sessions`` sessions of ``method`` and test at every count of the grid."""
    rng = np.random.default_rng([seed, list(METHODS).index(method)])
    coin = random.Random(seed)
    query_ids = list(data.queries)
    share = AB_SHARES.get(method)
    play = _interleaved_session if share is None else functools.partial(_ab_session, share)
    counts = [0, 0, 0, 0]  # A/B: control n, control clicked, candidate n, candidate clicked;
    # interleaving: candidate wins, control wins, ties, sessions
    first: int | None = None
    stays: int | None = None
    checkpoint = 10.0
    for n in range(1, params.max_sessions + 1):
        qid = query_ids[int(rng.integers(len(query_ids)))]
        play(lists, qid, data.qrels[qid], params.click_model, rng, coin, counts)
        if n >= checkpoint or n == params.max_sessions:
            checkpoint *= GRID_FACTOR
            if _significantly_better(method, counts):
                first = n if first is None else first
                stays = n if stays is None else stays
            else:
                stays = None
    return Needed(first, stays, _effect(method, counts))


def _effect(method: str, counts: Sequence[int]) -> tuple[float, float]:
    if method in AB_SHARES:
        return (counts[1] / max(1, counts[0]), counts[3] / max(1, counts[2]))
    decisive = max(1, counts[0] + counts[1])
    return (counts[1] / decisive, counts[0] / decisive)


def _ab_session(
    share: float,
    lists: dict[str, Lists],
    qid: str,
    rels: dict[str, int],
    model: ClickModel,
    rng: np.random.Generator,
    coin: random.Random,
    counts: list[int],
) -> None:
    arm = 2 if coin.random() < share else 0
    hits = lists["candidate" if arm else "control"][qid]
    counts[arm] += 1
    counts[arm + 1] += bool(model.clicks([h.id for h in hits], rels, rng))


def _interleaved_session(
    lists: dict[str, Lists],
    qid: str,
    rels: dict[str, int],
    model: ClickModel,
    rng: np.random.Generator,
    coin: random.Random,
    counts: list[int],
) -> None:
    merged = team_draft(lists["control"][qid], lists["candidate"][qid], ("control", "candidate"), K, coin)
    clicks = model.clicks([h.id for h in merged], rels, rng)
    credit = [merged[click.rank - 1].version for click in clicks]
    candidate, control = credit.count("candidate"), credit.count("control")
    if candidate > control:
        counts[0] += 1
    elif control > candidate:
        counts[1] += 1
    elif clicks:
        counts[2] += 1
    counts[3] += 1


def _significantly_better(method: str, counts: Sequence[int]) -> bool:
    """The report's decision rule: p below ``stats.ALPHA``, in the candidate's favour."""
    if method in AB_SHARES:
        control_n, control_x, candidate_n, candidate_x = counts
        diff, _, p_value = stats.two_proportions(control_x, control_n, candidate_x, candidate_n)
        return p_value < stats.ALPHA and diff > 0
    wins, losses = counts[0], counts[1]
    return stats.sign_test(wins, losses) < stats.ALPHA and wins > losses


def method_row(method: str, found: list[Needed], params: Params) -> dict[str, Any]:
    """Median and quartiles over seeds; a seed that never got there counts as more than the most
    tried, so a quantile that falls on one is None."""
    return {
        "method": METHODS[method],
        "seeds": len(found),
        "reached": sum(n.stays is not None for n in found),
        "median sessions": _quantile([n.stays for n in found], 50),
        "p25": _quantile([n.stays for n in found], 25),
        "p75": _quantile([n.stays for n in found], 75),
        "median first significant (checked often)": _quantile([n.first for n in found], 50),
        "at max sessions": _describe(method, found),
        "max sessions": params.max_sessions,
    }


def _describe(method: str, found: list[Needed]) -> str:
    control, candidate = (float(np.mean([n.effect[i] for n in found])) for i in (0, 1))
    if method in AB_SHARES:
        return f"CTR {control:.3f} control, {candidate:.3f} candidate"
    return f"candidate wins {candidate:.3f} of decisive sessions"


def _ratio(a: int | None, b: int | None) -> float | None:
    return round(a / b, 1) if a and b else None


def _quantile(values: list[int | None], q: float) -> int | None:
    ordered = sorted(float("inf") if n is None else float(n) for n in values)
    value = float(np.percentile(ordered, q, method="lower"))
    return None if value == float("inf") else int(value)
