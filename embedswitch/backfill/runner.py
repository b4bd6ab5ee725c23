"""Backfill: embed every record that existed when a version was created, in large batches.

Reading, encoding and index writes overlap: this driver pages through the record snapshot
(``seq <= upto_seq``, in ``(kind, id)`` order) while an executor embeds the next pages, and
results are written in order so the persisted cursor always means "everything before it is in the
index". Each page is written durably and its progress saved before it counts as done, so the
progress a status shows survives a crash, and a crash loses only the pages still being embedded,
however slow the model. Writes carry the record's seq, so the index guard drops a backfill write
that is older than a streamed update or delete of the same record: a stale text never overwrites a
newer one and a deleted record never comes back. Pages can be throttled to ``max_rate`` records
per second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from ..store.base import BackfillState, Record, RecordKey, RecordStore
from .base import BackfillConfig, EmbedExecutor, EmbedStep, VectorSink

log = logging.getLogger("embedswitch")


@dataclass(frozen=True)
class _Batch:
    last: RecordKey  # the last record of the page, where the next page starts
    count: int  # records in the page
    todo: list[Record]  # those still to embed


class Backfill:
    """Runs one version's backfill in a background thread; resumable from ``state.cursor``.

    ``embeds(kind)`` says which records the version embeds from text; ``save`` persists the
    progress of a page written durably; ``on_finish`` runs once the snapshot is written (it must
    call ``mark_finished``). With ``own_vectors`` (a version whose model is "none") the records'
    own vectors are written instead, through it, and records without one are skipped.

    ``state`` is the progress saved: ``lock`` is held while a page's progress is saved and
    published, so whoever else saves ``state`` (the version's checkpoint) holds it from reading
    ``state`` until it is saved, and saved progress never goes back.
    """

    def __init__(
        self,
        collection: str,
        version: str,
        state: BackfillState,
        store: RecordStore,
        sink: VectorSink,
        embeds: Callable[[str], bool],
        step: EmbedStep,
        executor: Callable[[], EmbedExecutor],
        config: BackfillConfig,
        save: Callable[[BackfillState], None],
        on_finish: Callable[[], None],
        own_vectors: Callable[[list[bytes]], np.ndarray] | None = None,
    ) -> None:
        self.collection = collection
        self.version = version
        self.state = state
        self.lock = threading.Lock()
        self.rate = 0.0
        self.error: str | None = None
        self.read_cursor: RecordKey | None = state.cursor  # last record read; ahead of state.cursor
        self._store = store
        self._sink = sink
        self._embeds = embeds
        self._step = step
        self._executor = executor
        self._config = config
        self._save = save
        self._on_finish = on_finish
        self._own_vectors = own_vectors
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_allowed = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"backfill-{self.collection}-{self.version}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()

    def mark_finished(self) -> None:
        self.state = replace(self.state, finished=True)

    def eta_s(self) -> float | None:
        if self.state.finished:
            return 0.0
        if self.rate <= 0:
            return None
        return max(0, self.state.total - self.state.done) / self.rate

    def _throttle(self, records: int) -> None:
        """Hold a page back so the backfill stays under ``max_rate`` records per second."""
        if not self._config.max_rate:
            return
        now = time.monotonic()
        wait = self._next_allowed - now
        self._next_allowed = max(now, self._next_allowed) + records / self._config.max_rate
        if wait > 0:
            self._stop.wait(wait)

    def _read(self, cursor: RecordKey | None) -> _Batch | None:
        """The next page of the snapshot, minus records the index already holds at that seq or newer
        (loaded vectors, or work done before a restart), so they are not embedded again, and minus
        records this version does not embed from text (derived users; everything, for a model
        without text)."""
        records = self._store.scan_records(self.collection, self.state.upto_seq, cursor, self._config.batch)
        if not records:
            return None
        todo = []
        for record in records:
            if not self._embeds(record.kind) or (self._own_vectors is not None and record.vector is None):
                continue
            seen = self._sink.seq_of(record.kind, record.id)
            if seen is None or seen < record.seq:
                todo.append(record)
        return _Batch((records[-1].kind, records[-1].id), len(records), todo)

    def _run(self) -> None:
        executor = self._executor()
        try:
            while not self._stop.is_set():
                try:
                    if self._pipeline(executor):
                        self._on_finish()
                        log.info("backfill of %s/%s finished", self.collection, self.version)
                        return
                except Exception as exc:  # keep going from the last written page; visible in status
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.exception("backfill of %s/%s failed; retrying", self.collection, self.version)
                    self._stop.wait(1.0)
        finally:
            executor.close()

    def _pipeline(self, executor: EmbedExecutor) -> bool:
        """Read, encode and write pages from the last written one; True once the snapshot is done."""
        pending: deque[tuple[_Batch, Future[np.ndarray] | None]] = deque()
        cursor = self.state.cursor
        exhausted = False
        started, started_done = time.monotonic(), self.state.done
        try:
            while not self._stop.is_set():
                while not exhausted and len(pending) <= self._config.workers:
                    batch = self._read(cursor)
                    if batch is None:
                        exhausted = True
                        break
                    cursor = self.read_cursor = batch.last
                    future = None
                    if batch.todo:
                        self._throttle(len(batch.todo))
                        future = self._vectors(executor, batch.todo)
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

    def _vectors(self, executor: EmbedExecutor, todo: list[Record]) -> Future[np.ndarray]:
        """The page's vectors: embedded by the executor, or the records' own (already at hand)."""
        if self._own_vectors is None:
            return executor.submit(self._step, [r.text for r in todo])
        done: Future[np.ndarray] = Future()
        done.set_result(self._own_vectors([r.vector for r in todo if r.vector is not None]))
        return done

    def _write(self, batch: _Batch, vectors: np.ndarray | None) -> None:
        """Write a page durably, then save and publish its progress: done only once it is kept."""
        by_kind: dict[str, list[int]] = {}
        for row, record in enumerate(batch.todo):
            by_kind.setdefault(record.kind, []).append(row)
        todo = batch.todo
        for kind, rows in by_kind.items():
            assert vectors is not None
            ids, seqs = [todo[r].id for r in rows], [todo[r].seq for r in rows]
            self._sink.write(kind, ids, vectors[rows], seqs, durable=True)
        with self.lock:
            state = replace(self.state, done=self.state.done + batch.count, cursor=batch.last)
            self._save(state)
            self.state = state
