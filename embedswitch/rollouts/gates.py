"""The gates of a rollout step: the candidate's error rate and p99 latency in the step's window,
the current experiment's outcome, and (before the first step) its offline score on judged queries."""

from __future__ import annotations

from ..collection import Collection
from ..evaluation.beir import load_judgments
from ..evaluation.offline import evaluate_versions
from ..request_stats import Window
from ..results import AbReport, ExperimentReport, GateCheck, InterleavingReport
from ..specs import EvaluateRequest, OfflineGate, parse

MIN_LIVE_SAMPLES = 20
"""The p99 gate compares only when the live version answered at least this many requests too."""


def error_gate(version: str, window: Window, limit: float) -> GateCheck:
    """The share of ``version``'s routed requests in the window that failed with a server error."""
    rate = window.error_rate
    passed = rate <= limit
    detail = (
        f"{version} error rate {rate:.4f} ({window.errors} of {window.requests}) "
        f"{'<=' if passed else '>'} {limit}"
    )
    return GateCheck(gate="error_rate", passed=passed, value=round(rate, 6), limit=limit, detail=detail)


def p99_gate(version: str, window: Window, live: str, live_window: Window | None, limit: float) -> GateCheck:
    """``version``'s p99 latency over ``live``'s in the same window; passes when there is too
    little live traffic to compare (fewer than ``MIN_LIVE_SAMPLES`` requests)."""
    mine = window.percentile_ms(99)
    theirs = live_window.percentile_ms(99) if live_window else None
    if (
        mine is None
        or theirs is None
        or live_window is None
        or len(live_window.latencies_s) < MIN_LIVE_SAMPLES
    ):
        detail = f"p99 ratio not checked: too few requests on {live} in this step to compare"
        return GateCheck(gate="p99_ratio", passed=True, value=None, limit=limit, detail=detail)
    ratio = mine / theirs if theirs > 0 else float("inf")
    passed = ratio <= limit
    detail = (
        f"{version} p99 {mine:.1f} ms / {live} p99 {theirs:.1f} ms = {ratio:.2f} "
        f"{'<=' if passed else '>'} {limit}"
    )
    return GateCheck(gate="p99_ratio", passed=passed, value=round(ratio, 4), limit=limit, detail=detail)


def experiment_gate(report: ExperimentReport, kind: str, live: str, to: str) -> GateCheck:
    """The current experiment's outcome for ``to`` against ``live`` must not be "worse"."""
    if kind == "ab":
        return ab_gate(report.ab, live, to)
    return interleaving_gate(report.interleaving, live, to)


def ab_gate(report: AbReport, live: str, to: str) -> GateCheck:
    """The A/B comparison of ``to`` against ``live`` (the experiment's control) is not "worse"."""
    comparison = report.comparisons.get(to)
    if comparison is None or comparison.control != live:
        detail = f"A/B: no comparison of {to} against {live} in the current experiment yet"
        return GateCheck(gate="ab", passed=True, value="not_significant", limit="not worse", detail=detail)
    passed = comparison.outcome != "worse"
    detail = f"A/B: {comparison.verdict}"
    return GateCheck(gate="ab", passed=passed, value=comparison.outcome, limit="not worse", detail=detail)


def interleaving_gate(report: InterleavingReport | None, live: str, to: str) -> GateCheck:
    """The interleaving of ``live`` and ``to`` does not find ``to`` significantly worse; fails when
    the interleaving is off (the gate can't judge)."""
    if report is None or set(report.versions) != {live, to}:
        detail = f"interleaving of {live} and {to} is off: the gate can't judge {to}"
        return GateCheck(gate="interleaving", passed=False, value=None, limit="not worse", detail=detail)
    flipped = {"better": "worse", "worse": "better", "not_significant": "not_significant"}
    # the report's outcome is of versions[1] against versions[0]
    outcome = report.outcome if report.versions[1] == to else flipped[report.outcome]
    passed = outcome != "worse"
    detail = f"interleaving: {report.verdict}"
    return GateCheck(gate="interleaving", passed=passed, value=outcome, limit="not worse", detail=detail)


def offline_score(collection: Collection, version: str, gate: OfflineGate) -> float:
    """``gate.metric`` of ``version`` on the gate's judged queries, through its serving search."""
    if gate.beir is not None:
        queries, qrels = load_judgments(gate.beir)
    else:
        queries, qrels = dict(gate.queries or {}), dict(gate.qrels or {})
    request = parse(EvaluateRequest, {"versions": [version], "queries": queries, "qrels": qrels, "k": 10})
    result = evaluate_versions(collection, request)
    scores = result.versions[version].model_dump()
    return float(scores[gate.metric])
