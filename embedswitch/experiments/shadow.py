"""Shadow traffic: live requests replayed against a candidate version in the background.

The request thread only offers a job to a bounded queue (``put_nowait``, a few microseconds) and
returns the live answer; when the queue is full the job is dropped and counted, so a slow or stuck
candidate can never make a user wait. One worker thread, at idle CPU priority where Linux permits
(like backfill encoders), runs the jobs; any exception a candidate raises is caught and reported as
that job's error. The worker's timing of the candidate is therefore an upper bound under load: it
runs on CPU time the live requests don't want.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..activity import Activity, lower_priority

log = logging.getLogger("embedswitch")

QUEUE_CAPACITY = 256
NICE = 10


@dataclass(frozen=True)
class MirrorJob:
    """``run`` answers the mirrored request on the candidate and returns its hit ids, by rank;
    ``done(latency_ms, ids, error)`` receives the outcome (``ids`` None and ``error`` set on failure)."""

    run: Callable[[], list[str]]
    done: Callable[[float, list[str] | None, str | None], None]


class ShadowMirror:
    """A bounded queue and one worker thread; ``submit`` never blocks."""

    def __init__(
        self, activity: Activity | None = None, yield_max_wait_s: float = 0.0, capacity: int = QUEUE_CAPACITY
    ) -> None:
        self._activity = activity
        self._yield_max_wait_s = yield_max_wait_s
        self._queue: queue.Queue[MirrorJob | None] = queue.Queue(maxsize=capacity)
        self._worker = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
        self._worker.start()

    def submit(self, job: MirrorJob) -> bool:
        """Queue ``job``; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def pending(self) -> int:
        """Jobs queued or running."""
        return self._queue.unfinished_tasks

    def drain(self, timeout_s: float) -> bool:
        """Wait until no job is queued or running; False if that took longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _run(self) -> None:
        lower_priority(NICE)
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._activity is not None and self._yield_max_wait_s > 0:
                    self._activity.wait_idle(self._yield_max_wait_s)  # start between live requests
                self._execute(job)
            finally:
                self._queue.task_done()

    @staticmethod
    def _execute(job: MirrorJob) -> None:
        start = time.perf_counter()
        ids: list[str] | None = None
        error: str | None = None
        try:
            ids = job.run()
        except Exception as exc:  # a candidate's failure is recorded, never raised to anyone
            error = f"{type(exc).__name__}: {exc}"[:500]
        latency_ms = (time.perf_counter() - start) * 1000
        try:
            job.done(latency_ms, ids, error)
        except Exception:
            log.exception("recording a shadow observation failed")

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop after the jobs already queued, waiting at most about ``timeout_s``; a worker stuck in a
        candidate is abandoned (it is a daemon thread)."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            return
        self._worker.join(timeout=timeout_s)
