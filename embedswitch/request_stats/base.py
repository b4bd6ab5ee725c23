"""What the rollout gates read of routed requests: per-version windows since a ``Mark`` (requests,
server errors, latencies of the successful ones), and the seam that counts them (``RequestStats``).

A server error is a 5xx: an ``EmbedswitchError`` of status 500 or more, or any other exception; a
client's mistake such as an unknown kind is not the version's failure. Requests that name their
version explicitly (evaluation, debugging, shadow mirrors, interleaved halves) are not counted:
they are not the version's share of live traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._errors import EmbedswitchError

SAMPLES = 20_000
"""Latencies kept per version; a window's percentiles come from at most this many recent ones."""

Counts = dict[str, tuple[int, int]]
"""version -> (requests, errors) since the counts began."""


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

    seq: int  # latencies recorded after it have a greater seq
    counts: Counts  # at the mark


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


class RequestStats(Protocol):
    """A collection's routed requests per version: ``record`` is called once per routed request,
    from many threads; it never waits on I/O.

    Callers may rely on: ``since(mark)`` holds every version that answered a routed request after
    ``mark()`` returned, with its requests, errors and up to ``SAMPLES`` latest latencies; with
    counts shared by several processes, the requests each of the others recorded in about its last
    flush interval before the mark or the call may fall on the other side.
    """

    def record(self, version: str, seconds: float, error: BaseException | None) -> None: ...

    def mark(self) -> Mark: ...

    def since(self, mark: Mark) -> dict[str, Window]:
        """Every version that answered a routed request since ``mark``."""
        ...

    def close(self) -> None:
        """Write what is buffered; stop recording."""
        ...


def windows(
    mark: Mark, counts: Counts, latencies: Mapping[str, Sequence[float] | np.ndarray]
) -> dict[str, Window]:
    """The windows of the versions whose requests grew since ``mark``, given the counts now and
    each version's latencies since the mark."""
    out = {}
    for version, (requests, errors) in counts.items():
        before = mark.counts.get(version, (0, 0))
        if requests > before[0]:
            found = np.asarray(latencies.get(version, []), dtype=np.float64)
            out[version] = Window(requests - before[0], errors - before[1], found)
    return out
