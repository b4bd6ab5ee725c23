"""Experiment reports from the logged assignments and feedback: A/B per version, interleaving wins,
shadow observations. Pure functions of the rows, so a hand-built click set checks every number.

- A/B counts routed, non-interleaved requests per answering version. CTR is the share of requests
  with at least one click, conversion rate the share with at least one conversion, MRR the mean of
  1/rank of the first clicked hit (0 without a click). Each candidate's CTR is compared with the
  control's by a two-proportion z-test (see ``stats.py``).
- Interleaving counts, per interleaved impression, the clicks credited to each version: more wins,
  equal (and at least one) ties; a sign test on wins against losses gives the p-value.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..request_stats import percentile_ms
from ..results import (
    AbReport,
    ArmStats,
    Comparison,
    InterleavingReport,
    LatencyMs,
    Outcome,
    ShadowReport,
)
from . import stats
from .log import FeedbackRow, ShadowObservation


def ab_report(requests: dict[str, int], rows: Sequence[FeedbackRow], control: str | None) -> AbReport:
    """Arms for every version with routed requests (``requests`` per version) and the control;
    each other arm is compared with the control."""
    requests = dict(requests)
    if control is not None:
        requests.setdefault(control, 0)
    arms = {name: arm_stats(name, n, [r for r in rows if r.version == name]) for name, n in requests.items()}
    comparisons = {}
    if control is not None:
        for name in sorted(arms):
            if name != control:
                comparisons[name] = compare(arms[control], arms[name])
    return AbReport(control=control, arms=dict(sorted(arms.items())), comparisons=comparisons)


def arm_stats(version: str, requests: int, rows: Sequence[FeedbackRow]) -> ArmStats:
    """One version's numbers from its request count and the feedback rows of its requests."""
    clicked = [r for r in rows if r.event == "click"]
    conversions = sum(1 for r in rows if r.event == "convert")
    reciprocal = [1.0 / r.best_rank for r in clicked]
    mrr_sum, mrr_sq = sum(reciprocal), sum(x * x for x in reciprocal)
    n = max(requests, 1)
    return ArmStats(
        version=version,
        requests=requests,
        clicks=len(clicked),
        conversions=conversions,
        ctr=len(clicked) / n if requests else 0.0,
        ctr_ci=stats.wilson(len(clicked), requests),
        conversion_rate=conversions / n if requests else 0.0,
        conversion_ci=stats.wilson(conversions, requests),
        mrr=mrr_sum / n if requests else 0.0,
        mrr_ci=stats.mean_ci(mrr_sum, mrr_sq, requests),
    )


def compare(control: ArmStats, candidate: ArmStats) -> Comparison:
    """The candidate's CTR against the control's, with a plain verdict."""
    diff, ci, p_value = stats.two_proportions(
        control.clicks, control.requests, candidate.clicks, candidate.requests
    )
    more = stats.more_requests_needed(control.clicks, control.requests, candidate.clicks, candidate.requests)
    outcome = _outcome(p_value, diff)
    return Comparison(
        candidate=candidate.version,
        control=control.version,
        difference=diff,
        ci=ci,
        p_value=p_value,
        outcome=outcome,
        verdict=_verdict(candidate.version, outcome, more, "requests", _ab_gap(control, candidate)),
        more_requests_needed=more if outcome == "not_significant" else None,
    )


def _ab_gap(control: ArmStats, candidate: ArmStats) -> str:
    if candidate.requests == 0:
        return f"no requests on {candidate.version} yet"
    if control.requests == 0:
        return f"no requests on {control.version} yet"
    return "no CTR difference so far, so no estimate of how many more requests are needed"


def interleaving_report(
    pair: tuple[str, str], impressions: int, rows: Sequence[FeedbackRow]
) -> InterleavingReport:
    """Wins per version over the clicked impressions of ``pair``; outcome of pair[1] against pair[0]."""
    first, second = pair
    wins = {first: 0, second: 0}
    ties = 0
    for row in rows:
        if row.event != "click" or row.pair != pair:
            continue
        a, b = row.credits.get(first, 0), row.credits.get(second, 0)
        if a == b:
            ties += 1
        else:
            wins[first if a > b else second] += 1
    p_value = stats.sign_test(wins[second], wins[first])
    outcome = _outcome(p_value, wins[second] - wins[first])
    more = _more_impressions(wins[second], wins[first], ties, impressions)
    gap = "no clicked impressions yet" if wins[first] + wins[second] + ties == 0 else "no winner so far"
    return InterleavingReport(
        versions=pair,
        impressions=impressions,
        wins=wins,
        ties=ties,
        p_value=p_value,
        outcome=outcome,
        verdict=_verdict(second, outcome, more, "impressions", gap),
        more_impressions_needed=more if outcome == "not_significant" else None,
    )


def _more_impressions(wins: int, losses: int, ties: int, impressions: int) -> int | None:
    """Impressions still needed, scaling decisive comparisons by the share of impressions decided."""
    needed = stats.sign_test_sample_size(wins, losses)
    decided = wins + losses
    if needed is None or decided == 0 or impressions == 0:
        return None
    return max(1, round((needed - decided) * impressions / decided))


def shadow_reports(observations: Sequence[ShadowObservation]) -> list[ShadowReport]:
    """One report per candidate, in candidate order."""
    by_candidate: dict[str, list[ShadowObservation]] = {}
    for observation in observations:
        by_candidate.setdefault(observation.candidate, []).append(observation)
    return [shadow_report(name, found) for name, found in sorted(by_candidate.items())]


def shadow_report(candidate: str, observations: Sequence[ShadowObservation]) -> ShadowReport:
    ok = [o for o in observations if o.error is None]
    errors = [o for o in observations if o.error is not None]
    overlaps = [o.overlap for o in ok if o.overlap is not None]
    return ShadowReport(
        candidate=candidate,
        mirrored=len(observations),
        errors=len(errors),
        latency_ms=_latency([o.latency_ms for o in ok]),
        live_latency_ms=_latency([o.live_latency_ms for o in observations]),
        overlap_at_10=sum(overlaps) / len(overlaps) if overlaps else 0.0,
        last_error=errors[-1].error if errors else None,
    )


def _latency(values_ms: list[float]) -> LatencyMs:
    seconds = [value / 1000 for value in values_ms]
    return LatencyMs(p50=percentile_ms(seconds, 50) or 0.0, p99=percentile_ms(seconds, 99) or 0.0)


def _outcome(p_value: float, effect: float) -> Outcome:
    if p_value >= stats.ALPHA or effect == 0:
        return "not_significant"
    return "better" if effect > 0 else "worse"


def _verdict(name: str, outcome: Outcome, more: int | None, unit: str, gap: str) -> str:
    if outcome != "not_significant":
        return f"{name} {outcome}"
    if more is None:
        return f"not significant yet, {gap}"
    return f"not significant yet, about {more} more {unit} needed"
