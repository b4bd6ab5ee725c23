"""The statistics behind experiment reports: intervals, tests and sample sizes (on scipy.stats).

Every function is pure and takes counts, so the report can be checked against a hand computation.
Conventions: 95% intervals, tests two-sided at ``ALPHA`` = 0.05, sample sizes for ``POWER`` = 0.8.
"""

from __future__ import annotations

import math

from scipy import stats

ALPHA = 0.05
POWER = 0.8
_Z = float(stats.norm.ppf(1 - ALPHA / 2))  # 1.96: two-sided 95%
_Z_POWER = float(stats.norm.ppf(POWER))  # 0.84


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; ``(0, 1)`` when there are no trials."""
    if trials == 0:
        return (0.0, 1.0)
    low, high = stats.binomtest(successes, trials).proportion_ci(confidence_level=1 - ALPHA, method="wilson")
    return (float(low), float(high))


def mean_ci(total: float, total_sq: float, n: int) -> tuple[float, float]:
    """Mean of ``n`` values given their sum and sum of squares, with a 95% normal interval."""
    if n == 0:
        return (0.0, 0.0)
    mean = total / n
    if n == 1:
        return (mean, mean)
    variance = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = _Z * math.sqrt(variance / n)
    return (mean - half, mean + half)


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> tuple[float, tuple[float, float], float]:
    """Group 2 against group 1: difference ``p2 - p1``, its 95% Wald interval, and the p-value of
    the pooled two-proportion z-test (1.0 when either group is empty or nothing varies)."""
    if n1 == 0 or n2 == 0:
        return (0.0, (-1.0, 1.0), 1.0)
    p1, p2 = x1 / n1, x2 / n2
    diff = p2 - p1
    half = _Z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 1.0 if se == 0 else float(2 * stats.norm.sf(abs(diff) / se))
    return (diff, (diff - half, diff + half), p_value)


def two_proportions_sample_size(p1: float, p2: float, ratio: float) -> float | None:
    """Size of group 2 for a two-sided test at ``ALPHA`` with ``POWER`` to detect ``p1`` against
    ``p2`` when group 1 is ``ratio`` times as large; None when there is no effect to detect."""
    if p1 == p2 or ratio <= 0:
        return None
    mean = (p1 * ratio + p2) / (ratio + 1)
    null = _Z * math.sqrt(mean * (1 - mean) * (1 + 1 / ratio))
    alt = _Z_POWER * math.sqrt(p2 * (1 - p2) + p1 * (1 - p1) / ratio)
    return ((null + alt) / (p2 - p1)) ** 2


def more_requests_needed(x1: int, n1: int, x2: int, n2: int) -> int | None:
    """How many more requests, split as now, until the observed CTR difference would be detected
    with 80% power (at least 1); None when it can't be estimated (no data or no effect)."""
    if n1 == 0 or n2 == 0:
        return None
    needed = two_proportions_sample_size(x1 / n1, x2 / n2, n1 / n2)
    if needed is None:
        return None
    return max(1, math.ceil((needed - n2) * (1 + n1 / n2)))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial (sign) test of wins against losses at p = 1/2; 1.0 without either."""
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def sign_test_sample_size(wins: int, losses: int) -> float | None:
    """Decisive comparisons needed to detect the observed win rate with 80% power (normal
    approximation); None when there is none yet or it is exactly 1/2."""
    n = wins + losses
    if n == 0 or wins == losses:
        return None
    rate = wins / n
    return ((_Z * 0.5 + _Z_POWER * math.sqrt(rate * (1 - rate))) / (rate - 0.5)) ** 2
