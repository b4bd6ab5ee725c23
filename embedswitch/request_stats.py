"""Per-version counts of the requests that traffic routing sent to each version, kept in process.

A gated rollout reads them over a window (since a ``mark``): how many requests each version
answered, how many failed with a server error (a 5xx: an ``EmbedswitchError`` of status 500 or
more, or any other exception; a client's mistake such as an unknown kind is not the version's
failure) and the latency percentiles of the ones that succeeded. Requests that name their version
explicitly (evaluation, debugging, shadow mirrors, interleaved halves) are not counted: they are
not the version's share of live traffic.

Nothing here is persisted: after a restart the counts start from zero.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._errors import EmbedswitchError

SAMPLES = 20_000
"""Latencies kept per version; a window's percentiles come from at most this many recent ones."""


def is_server_error(error: BaseException | None) -> bool:
    """Whether ``error`` would reach the caller as a 5xx."""
    if error is None:
        return False
    return not isinstance(error, EmbedswitchError) or error.status >= 500


def percentile_ms(seconds: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (numpy's linear interpolation) of durations in seconds, in
    milliseconds rounded to the microsecond; None when there are none."""
    if not len(seconds):
        return None
    return round(float(np.percentile(np.asarray(seconds, dtype=np.float64), q)) * 1000, 3)


@dataclass(frozen=True)
class Mark:
    """A moment in the request counts: windows are measured from it."""

    seq: int
    counts: dict[str, tuple[int, int]]  # version -> (requests, errors) at the mark


@dataclass(frozen=True)
class Window:
    """A version's routed requests since a mark."""

    requests: int
    errors: int
    latencies_s: np.ndarray  # of the successful ones (the latest SAMPLES at most)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th latency percentile in milliseconds; None without a successful request."""
        return percentile_ms(self.latencies_s, q)


class RequestStats:
    """Thread-safe counts per version; ``record`` is called once per routed request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._counts: dict[str, tuple[int, int]] = {}
        self._latencies: dict[str, deque[tuple[int, float]]] = {}

    def record(self, version: str, seconds: float, error: BaseException | None) -> None:
        failed = is_server_error(error)
        with self._lock:
            self._seq += 1
            requests, errors = self._counts.get(version, (0, 0))
            self._counts[version] = (requests + 1, errors + failed)
            if not failed:
                samples = self._latencies.setdefault(version, deque(maxlen=SAMPLES))
                samples.append((self._seq, seconds))

    def mark(self) -> Mark:
        with self._lock:
            return Mark(self._seq, dict(self._counts))

    def since(self, mark: Mark) -> dict[str, Window]:
        """Every version that answered a routed request since ``mark``."""
        with self._lock:
            counts = dict(self._counts)
            recent = {version: _after(samples, mark.seq) for version, samples in self._latencies.items()}
        out = {}
        for version, (requests, errors) in counts.items():
            before = mark.counts.get(version, (0, 0))
            if requests > before[0]:
                latencies = np.asarray(recent.get(version, []), dtype=np.float64)
                out[version] = Window(requests - before[0], errors - before[1], latencies)
        return out


def _after(samples: deque[tuple[int, float]], seq: int) -> list[float]:
    """The latencies recorded after ``seq`` (samples are in seq order; newest last)."""
    out = []
    for recorded, seconds in reversed(samples):
        if recorded <= seq:
            break
        out.append(seconds)
    return out
