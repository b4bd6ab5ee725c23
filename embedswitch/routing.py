"""Traffic routing: which version answers a request.

A request with a ``key`` (user or session id) is *sticky*: the key hashes to one of ``BUCKETS``
buckets, and each version owns a contiguous range of buckets in proportion to its weight. Versions
are laid out newest first, so while a new version ramps up its range only grows from bucket 0: a
key that moved to it at 10% is still on it at 50% (monotone). Without a key the choice is random
by weight.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from dataclasses import dataclass, field

BUCKETS = 10_000


def bucket_of(key: str) -> int:
    """The stable bucket of a routing key (same on every process and machine)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True)
class Router:
    """An immutable traffic assignment; replaced whole when the weights change."""

    weights: dict[str, int]
    order: tuple[str, ...]  # versions newest first; only those with weight > 0 get buckets
    live: tuple[str, ...] = field(init=False)
    _bounds: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        live = tuple(v for v in self.order if self.weights.get(v, 0) > 0)
        if not live:
            raise ValueError("a traffic assignment needs at least one version with weight > 0")
        total = sum(self.weights[v] for v in live)
        bounds, acc = [], 0
        for name in live:
            acc += self.weights[name]
            bounds.append(round(acc * BUCKETS / total))
        object.__setattr__(self, "live", live)
        object.__setattr__(self, "_bounds", tuple(bounds))

    def pick(self, key: str | None) -> str:
        if len(self.live) == 1:
            return self.live[0]
        if key is None:
            return random.choices(self.live, weights=[self.weights[v] for v in self.live])[0]
        return self.live[bisect_right(self._bounds, bucket_of(key))]
