"""Serving comes first: queries in flight are counted, and background threads run at idle priority.

Backfill encoders and the shadow mirror call ``lower_priority`` in their threads and wait briefly
on ``Activity.wait_idle`` before each piece of work, so they use CPU time live requests don't want.
"""

from __future__ import annotations

import contextlib
import os
import threading


class Activity:
    """Counts queries in flight so background work can step aside for them."""

    def __init__(self) -> None:
        self._busy = 0
        self._cond = threading.Condition()

    def enter(self) -> None:
        with self._cond:
            self._busy += 1

    def exit(self) -> None:
        with self._cond:
            self._busy -= 1
            if self._busy == 0:
                self._cond.notify_all()

    def wait_idle(self, max_wait_s: float) -> None:
        """Return once no query is in flight, or after ``max_wait_s`` (so work never starves)."""
        with self._cond:
            self._cond.wait_for(lambda: self._busy == 0, timeout=max_wait_s)


def lower_priority(nice: int, idle: bool = True) -> None:
    """Run the calling thread only on CPU time nothing else wants (Linux SCHED_IDLE; with
    ``idle`` False, or where it is not permitted, at ``nice`` only); where neither is permitted
    it runs at normal priority."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    if idle:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
