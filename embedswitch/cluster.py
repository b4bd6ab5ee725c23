"""Several processes on one shared store: each takes in the others' changes.

Every process serves every collection. Collections, versions, their state and the traffic live in
the store; a process learns of a change made elsewhere from the store's notification
(``ClusterStore.wait_control``: PostgreSQL LISTEN/NOTIFY) or, should one be lost, at the next
poll. Each version's workers (applier, backfill, training) run in the one process holding its lease
(``Collection.lead``); when that process dies, another takes the lease at its next look.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .store.base import ClusterStore

log = logging.getLogger("embedswitch")

SYNC_POLL_S = 1.0
"""How often a process looks at the cluster when no notification came: the bound on a lost
notification, and on how long a dead leader's versions wait for a new one."""


def follow_cluster(store: ClusterStore, stop: threading.Event, sync: Callable[[], None]) -> threading.Thread:
    """Start a thread that calls ``sync`` after every control change (and every ``SYNC_POLL_S``)
    until ``stop`` is set."""

    def run() -> None:
        seen = 0
        while not stop.is_set():
            seen = store.wait_control(seen, SYNC_POLL_S)
            if stop.is_set():
                return
            try:
                sync()
            except Exception:
                log.exception("taking in the cluster's changes failed; retrying")

    thread = threading.Thread(target=run, name="cluster-sync", daemon=True)
    thread.start()
    return thread
