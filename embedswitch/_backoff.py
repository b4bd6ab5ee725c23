"""Delays for a background loop that retries until it succeeds (an applier, a backfill)."""

from __future__ import annotations

import random


class Backoff:
    """Exponential delays with jitter: ``initial_s`` doubling per failure in a row, at most
    ``max_s``, each between half and all of that; ``reset`` after a success. So a loop whose
    endpoint stays down settles at one try every ``max_s`` or so, and parallel loops don't retry
    in step."""

    def __init__(self, initial_s: float = 1.0, max_s: float = 60.0) -> None:
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next try after one more failure."""
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
