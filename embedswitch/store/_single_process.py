"""The cluster half of the seam for a store that one process owns (SQLite: the data dir's lock).

A part of ``SqliteStore`` (a mixin), kept apart so that each module stays one noun: with one
process there is nobody to contend with, so every lease is granted at once and never lost, and
control changes are this process's own (nothing to wait for).
"""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager


class SingleProcess:
    """``ClusterStore`` for a store no other process shares."""

    shared = False

    def __init__(self) -> None:
        self._leases: dict[str, int] = {}
        self._leases_lock = threading.Lock()
        self._closing = threading.Event()

    def try_lease(self, name: str) -> int | None:
        with self._leases_lock:
            if name in self._leases:
                return None
            self._leases[name] = epoch = 1
            return epoch

    def lease_epoch(self, name: str) -> int | None:
        with self._leases_lock:
            return self._leases.get(name)

    def release_lease(self, name: str) -> None:
        with self._leases_lock:
            self._leases.pop(name, None)

    def wait_control(self, after: int, timeout_s: float) -> int:
        self._closing.wait(timeout_s)
        return after

    def together(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
