"""Backfill: embed every record that existed when a version was created, in large batches.

Reading, encoding and index writes overlap: one thread pages through the record snapshot
(``seq <= upto_seq``, in ``(kind, id)`` order) while a pool of encoder threads embeds the next
batches, and results are written in order so the persisted cursor always means "everything before
it is in the index". Writes carry the record's seq, so the index guard drops a backfill write that
is older than a streamed update or delete of the same record: a stale text never overwrites a newer
one and a deleted record never comes back. Encoders run at idle CPU priority (SCHED_IDLE), wait
briefly while queries are in flight, and can be throttled to ``max_rate`` records per second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from .store.base import BackfillState, Record, RecordKey

if TYPE_CHECKING:
    from .version import Version

log = logging.getLogger("embedswitch")


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


@dataclass(frozen=True)
class BackfillConfig:
    batch: int = 256
    workers: int = 1
    max_rate: float | None = None  # records per second; None = as fast as the yield allows
    yield_max_wait_s: float = 0.05
    nice: int = 10
    activity: Activity = field(default_factory=Activity)


def _lower_priority(nice: int) -> None:
    """Run this encoder thread only on CPU time nothing else wants (Linux SCHED_IDLE), or at least
    at a lower priority; where neither is permitted it runs at normal priority."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread


@dataclass(frozen=True)
class _Batch:
    last: RecordKey  # the last record of the page, where the next page starts
    count: int  # records in the page
    todo: list[Record]  # those still to embed


class Backfill:
    """Runs one version's backfill in background threads; resumable from ``state.cursor``."""

    def __init__(self, version: Version, state: BackfillState, config: BackfillConfig) -> None:
        self.version = version
        self.state = state
        self.config = config
        self.rate = 0.0
        self.error: str | None = None
        self.read_cursor: RecordKey | None = state.cursor  # last record read; ahead of state.cursor
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_allowed = time.monotonic()
        self._throttle_lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"backfill-{self.version.collection}-{self.version.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def eta_s(self) -> float | None:
        if self.state.finished:
            return 0.0
        if self.rate <= 0:
            return None
        return max(0, self.state.total - self.state.done) / self.rate

    def _encode(self, records: list[Record]) -> np.ndarray:
        self.config.activity.wait_idle(self.config.yield_max_wait_s)
        if self.config.max_rate:
            with self._throttle_lock:
                now = time.monotonic()
                wait = self._next_allowed - now
                self._next_allowed = max(now, self._next_allowed) + len(records) / self.config.max_rate
            if wait > 0:
                self._stop.wait(wait)
        return self.version.model.encode([r.text for r in records], purpose="document")

    def _read(self, cursor: RecordKey | None) -> _Batch | None:
        """The next page of the snapshot, minus records the index already holds at that seq or newer
        (loaded vectors, or work done before a restart), so they are not embedded again, and minus
        records this version does not embed from text (derived users; everything, for a model
        without text)."""
        v = self.version
        records = v.store.scan_records(v.collection, self.state.upto_seq, cursor, self.config.batch)
        if not records:
            return None
        todo = []
        for record in records:
            if not v.embeds(record.kind):
                continue
            index = v.index(record.kind)
            seen = index.seq_of(record.id) if index is not None else None
            if seen is None or seen < record.seq:
                todo.append(record)
        return _Batch((records[-1].kind, records[-1].id), len(records), todo)

    def _run(self) -> None:
        pool = ThreadPoolExecutor(
            self.config.workers,
            thread_name_prefix=f"encode-{self.version.name}",
            initializer=_lower_priority,
            initargs=(self.config.nice,),
        )
        try:
            while not self._stop.is_set():
                try:
                    if self._pipeline(pool):
                        self._finish()
                        return
                except Exception as exc:  # keep going from the last written page; visible in status
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception(
                        "backfill of %s/%s failed; retrying", self.version.collection, self.version.name
                    )
                    self._stop.wait(1.0)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _pipeline(self, pool: ThreadPoolExecutor) -> bool:
        """Read, encode and write pages from the last written one; True once the snapshot is done."""
        pending: deque[tuple[_Batch, Future[np.ndarray] | None]] = deque()
        cursor = self.state.cursor
        exhausted = False
        started, started_done = time.monotonic(), self.state.done
        try:
            while not self._stop.is_set():
                while not exhausted and len(pending) <= self.config.workers:
                    batch = self._read(cursor)
                    if batch is None:
                        exhausted = True
                        break
                    cursor = self.read_cursor = batch.last
                    future = pool.submit(self._encode, batch.todo) if batch.todo else None
                    pending.append((batch, future))
                if not pending:
                    return True
                batch, future = pending.popleft()
                self._write(batch, future.result() if future is not None else None)
                self.error = None
                self.rate = (self.state.done - started_done) / max(1e-9, time.monotonic() - started)
            return False
        finally:
            for _, waiting in pending:
                if waiting is not None:
                    waiting.cancel()

    def _write(self, batch: _Batch, vectors: np.ndarray | None) -> None:
        by_kind: dict[str, list[int]] = {}
        for row, record in enumerate(batch.todo):
            by_kind.setdefault(record.kind, []).append(row)
        for kind, rows in by_kind.items():
            assert vectors is not None
            todo = batch.todo
            self.version.write_vectors(
                kind, [todo[r].id for r in rows], vectors[rows], [todo[r].seq for r in rows]
            )
        self.state = replace(self.state, done=self.state.done + batch.count, cursor=batch.last)

    def _finish(self) -> None:
        if self.version.derives_users:  # users after items: every item vector is in place now
            with self.version.apply_lock:
                self.state = replace(self.state, finished=True)
                self.version.rebuild_users()
        self.state = replace(self.state, finished=True)
        log.info("backfill of %s/%s finished", self.version.collection, self.version.name)
        self.version.store.add_event(
            self.version.collection, self.version.name, "backfill_finished", {"done": self.state.done}
        )
        self.version.checkpoint()
