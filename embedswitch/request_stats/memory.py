"""Routed requests per version counted in this process: the embedded default (one process serves
the data dir). Nothing is persisted: after a restart the counts start from zero."""

from __future__ import annotations

import threading
from collections import deque

from .base import SAMPLES, Mark, Window, is_server_error, windows


class MemoryRequestStats:
    """``RequestStats`` in process memory; thread-safe."""

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
        with self._lock:
            counts = dict(self._counts)
            recent = {version: _after(samples, mark.seq) for version, samples in self._latencies.items()}
        return windows(mark, counts, recent)

    def close(self) -> None:
        """Nothing to write."""


def _after(samples: deque[tuple[int, float]], seq: int) -> list[float]:
    """The latencies recorded after ``seq`` (samples are in seq order; newest last)."""
    out = []
    for recorded, seconds in reversed(samples):
        if recorded <= seq:
            break
        out.append(seconds)
    return out
