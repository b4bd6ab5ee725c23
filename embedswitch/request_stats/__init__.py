"""Counts of the requests that traffic routing sent to each version, read over windows by the
rollout gates (``base.RequestStats``): in process memory for the embedded store (``memory.py``),
in the store's database when several processes share it (``postgres.py``), so that the gates see
every process's traffic. The one latency percentile helper lives here too."""

from __future__ import annotations

from typing import cast

from .._pg import Host
from ..store.base import ClusterStore
from .base import SAMPLES, Mark, RequestStats, Window, is_server_error, percentile_ms
from .memory import MemoryRequestStats

__all__ = [
    "SAMPLES",
    "Mark",
    "MemoryRequestStats",
    "RequestStats",
    "Window",
    "is_server_error",
    "open_request_stats",
    "percentile_ms",
]


def open_request_stats(collection: str, store: ClusterStore | None) -> RequestStats:
    """The request counts of ``collection``: in memory, or in the store's database when ``store``
    is shared by several processes (PostgreSQL)."""
    if store is None or not store.shared:
        return MemoryRequestStats()
    from .postgres import PostgresRequestStats

    return PostgresRequestStats(cast(Host, store), collection)
