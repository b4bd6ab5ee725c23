"""The experiment log the engine uses: a buffer in front of its tables (``base.ExperimentTables``).

The search path never waits for a database write: ``record`` and ``observe`` put rows into a
bounded in-memory buffer that a background thread writes every ``FLUSH_INTERVAL_S`` in one
transaction. So the assignments of the last flush interval (a quarter of a second) are lost on
``kill -9``, and feedback naming them then gets a 404. Feedback, settings and experiment starts are
written synchronously.

When the buffer is full (``MAX_PENDING`` rows, i.e. the database can't keep up), new rows are
dropped and counted. Rows older than the retention are pruned by the same thread every
``PRUNE_INTERVAL_S``.

Several processes sharing one store share one log: feedback through one finds an assignment
another recorded (``find`` waits up to ``find_wait_s`` for the other's next flush), and reports
count every process's requests written so far (each process's last flush interval excepted).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from .base import (
    Assignment,
    ExperimentRow,
    ExperimentTables,
    Feedback,
    FeedbackRow,
    Mode,
    RequestCounts,
    Settings,
    ShadowObservation,
)

log = logging.getLogger("embedswitch")

FLUSH_INTERVAL_S = 0.25
MAX_PENDING = 100_000
PRUNE_INTERVAL_S = 600.0
DEFAULT_RETENTION_S = 30 * 86_400.0
FIND_POLL_S = 0.05


class ExperimentLog:
    """The experiments' storage; every method is safe to call from several threads."""

    def __init__(
        self, tables: ExperimentTables, retention_s: float = DEFAULT_RETENTION_S, find_wait_s: float = 0.0
    ) -> None:
        self.tables = tables
        self.retention_s = retention_s
        self.find_wait_s = find_wait_s
        self.dropped = 0  # rows not recorded because the buffer was full
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, Assignment] = {}
        self._pending_shadow: list[ShadowObservation] = []
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run, name="experiment-log", daemon=True)
        self._flusher.start()

    # -- the buffered hot path ------------------------------------------------------------------

    def record(self, assignment: Assignment) -> bool:
        """Buffer an assignment (no I/O); False if the buffer is full and it was dropped."""
        with self._pending_lock:
            if len(self._pending) + len(self._pending_shadow) >= MAX_PENDING:
                self.dropped += 1
                return False
            self._pending[assignment.request_id] = assignment
            return True

    def observe(self, observation: ShadowObservation) -> bool:
        """Buffer a shadow observation; False if the buffer is full and it was dropped."""
        with self._pending_lock:
            if len(self._pending) + len(self._pending_shadow) >= MAX_PENDING:
                self.dropped += 1
                return False
            self._pending_shadow.append(observation)
            return True

    def flush(self) -> None:
        """Write everything buffered so far (one transaction)."""
        with self._flush_lock:  # flushes in order: a later flush never commits before an earlier one
            with self._pending_lock:
                assignments, self._pending = self._pending, {}
                observations, self._pending_shadow = self._pending_shadow, []
            if assignments or observations:
                self.tables.write(list(assignments.values()), observations)

    def _run(self) -> None:
        last_prune = time.monotonic()
        while not self._stop.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
                if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                    self.tables.prune(time.time() - self.retention_s)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("writing experiment assignments failed; retrying")

    # -- lookups and feedback -------------------------------------------------------------------

    def find(self, collection: str, request_id: str) -> Assignment | None:
        """The assignment of ``request_id`` in ``collection``, buffered or written (a buffered one is
        written first, so feedback never refers to an assignment that is not stored). One that
        another process recorded is waited for up to ``find_wait_s`` (its next flush)."""
        with self._pending_lock:
            buffered = request_id in self._pending
        if buffered:
            self.flush()
        else:
            with self._flush_lock:  # a flush that took it from the buffer has committed it
                pass
        deadline = time.monotonic() + self.find_wait_s
        while True:
            found = self.tables.find(collection, request_id)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(FIND_POLL_S)

    def add_feedback(self, feedback: Feedback) -> bool:
        """Store one feedback event; False if the same (request_id, id, event) is already stored."""
        return self.tables.add_feedback(feedback)

    # -- experiments and settings ---------------------------------------------------------------

    def current(self, collection: str) -> ExperimentRow | None:
        return self.tables.current(collection)

    def first(self, collection: str, control: str | None) -> ExperimentRow:
        """The current experiment of ``collection``; the first one, starting now, if it has none."""
        return self.tables.first(collection, control)

    def start(self, collection: str, control: str | None) -> ExperimentRow:
        """A new experiment of ``collection`` (number previous + 1), starting now."""
        self.flush()  # assignments of the previous experiment stay with it
        return self.tables.start(collection, control)

    def settings(self, collection: str) -> Settings:
        """``(shadow, interleave)`` as stored (None where off)."""
        return self.tables.settings(collection)

    def save_settings(
        self, collection: str, shadow: dict[str, Any] | None, interleave: dict[str, Any] | None
    ) -> None:
        self.tables.save_settings(collection, shadow, interleave)

    # -- report queries -------------------------------------------------------------------------

    def request_counts(self, collection: str, experiment: int, mode: Mode | None = None) -> RequestCounts:
        """Requests of one experiment (this process's buffered ones included), per version and per
        interleaved pair; only those of ``mode`` if given."""
        self.flush()
        modes: tuple[Mode, ...] = ("single", "interleaved") if mode is None else (mode,)
        return self.tables.request_counts(collection, experiment, modes)

    def feedback_rows(self, collection: str, experiment: int, mode: Mode) -> list[FeedbackRow]:
        """Per request of ``mode`` with feedback and per event: best rank and events per credit."""
        self.flush()
        return self.tables.feedback_rows(collection, experiment, mode)

    def shadow_rows(self, collection: str, experiment: int) -> list[ShadowObservation]:
        self.flush()
        return self.tables.shadow_rows(collection, experiment)

    # -- maintenance ----------------------------------------------------------------------------

    def prune(self, before: float) -> None:
        """Drop assignments, feedback and shadow observations older than ``before`` (epoch seconds)."""
        self.tables.prune(before)

    def forget(self, collection: str) -> None:
        """Everything about ``collection`` (it was deleted)."""
        self.flush()
        self.tables.forget(collection)

    def compact(self) -> None:
        self.tables.compact()

    def close(self) -> None:
        """Write what is buffered and close the tables."""
        self._stop.set()
        self._flusher.join(timeout=10)
        self.flush()
        self.tables.close()
