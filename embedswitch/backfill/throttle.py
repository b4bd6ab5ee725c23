"""Pacing a backfill: records per second, and estimated tokens per minute for a hosted model's quota."""

from __future__ import annotations


class Throttle:
    """Holds pages back so that, on average, at most ``max_rate`` records per second and
    ``max_tokens_per_min`` tokens per minute go to the model (None: no cap). Each cap is a leaky
    bucket without burst: a page may go once the pages before it have drained at the capped rate,
    so the first page goes at once and a page too big for a minute simply goes alone."""

    def __init__(self, max_rate: float | None, max_tokens_per_min: float | None) -> None:
        self.max_rate, self.max_tokens_per_min = max_rate, max_tokens_per_min
        self._records_free_at: float | None = None
        self._tokens_free_at: float | None = None

    def wait(self, now: float) -> float:
        """Seconds from ``now`` (monotonic) until the next page may go."""
        free_at = max(self._records_free_at or now, self._tokens_free_at or now)
        return max(0.0, free_at - now)

    def delay(self, records: int, tokens: int, now: float) -> float:
        """``wait(now)``, after which a page of ``records`` records and ``tokens`` tokens that is
        ready at ``now`` goes: it is counted as sent then."""
        wait = self.wait(now)
        sent = now + wait
        if self.max_rate:
            self._records_free_at = max(sent, self._records_free_at or sent) + records / self.max_rate
        if self.max_tokens_per_min and tokens:
            per_token = 60 / self.max_tokens_per_min
            self._tokens_free_at = max(sent, self._tokens_free_at or sent) + tokens * per_token
        return wait
