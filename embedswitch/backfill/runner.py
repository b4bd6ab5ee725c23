"""Backfill: embed every record that existed when a version was created, in large batches.

Reading, encoding and index writes overlap: this driver pages through the record snapshot
(``seq <= upto_seq``, in ``(kind, id)`` order) while an executor embeds the next pages, and
results are written in order so the persisted cursor always means "everything before it is in the
index". Each page is written durably and its progress saved before it counts as done, so the
progress a status shows survives a crash, and a crash loses only the pages still being embedded,
however slow the model. Writes carry the record's seq, so the index guard drops a backfill write
that is older than a streamed update or delete of the same record: a stale text never overwrites a
newer one and a deleted record never comes back. Pages can be throttled to ``max_rate`` records
per second and to ``max_tokens_per_min`` estimated tokens per minute (a hosted model's quota). A
record whose text the model rejects is quarantined (``quarantine.py``) and the page goes on without
it; a failing page is retried after a growing delay (``Backoff``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from .. import _fence
from .._backoff import Backoff
from .._errors import InputRejected
from ..events import Trouble
from ..models.tokens import estimate_tokens
from ..quarantine import Quarantine, embed_rejecting
from ..store.base import BackfillState, QuarantineRow, Record, RecordKey, RecordStore
from .base import BackfillConfig, EmbedExecutor, EmbedStep, VectorSink
from .throttle import Throttle


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
    own vectors are written instead, through it, and records without one are skipped. Records the model
    rejects go to ``quarantine``.

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
        trouble: Trouble,
        quarantine: Quarantine,
        own_vectors: Callable[[list[bytes]], np.ndarray] | None = None,
    ) -> None:
        self.collection = collection
        self.version = version
        self.state = state
        self.lock = threading.Lock()
        self.rate = 0.0
        self.trouble = trouble
        self.read_cursor: RecordKey | None = state.cursor  # last record read; ahead of state.cursor
        self._store = store
        self._sink = sink
        self._embeds = embeds
        self._step = step
        self._executor = executor
        self._config = config
        self._save = save
        self._on_finish = on_finish
        self._quarantine = quarantine
        self._own_vectors = own_vectors
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.executor: EmbedExecutor | None = None
        """The executor while the backfill runs."""
        self._pace = Throttle(config.max_rate, config.max_tokens_per_min)

    def start(self) -> None:
        self._thread = _fence.thread(self._run, f"backfill-{self.collection}-{self.version}")
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

    def _throttle(self, records: list[Record]) -> None:
        """Hold a page back as ``throttle.Throttle`` says; tokens count only pages the model embeds."""
        tokens = 0 if self._own_vectors is not None else sum(estimate_tokens(r.text) for r in records)
        wait = self._pace.delay(len(records), tokens, time.monotonic())
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
        executor = self.executor = self._executor()
        backoff = Backoff()
        try:
            while not self._stop.is_set():
                try:
                    if self._pipeline(executor, backoff):
                        self._on_finish()
                        return
                except Exception as exc:  # keep going from the last written page; visible in status
                    self.trouble.failed(exc)
                    self._stop.wait(backoff.next_delay())
        finally:
            executor.close()
            self.executor = None

    def _pipeline(self, executor: EmbedExecutor, backoff: Backoff) -> bool:
        """Read, encode and write pages from the last written one; True once the snapshot is done."""
        pending: deque[tuple[_Batch, Future[np.ndarray] | None]] = deque()
        cursor = self.state.cursor
        exhausted = False
        started, started_done = time.monotonic(), self.state.done
        try:
            while not self._stop.is_set():
                while not exhausted and len(pending) <= self._config.workers:
                    if pending and self._pace.wait(time.monotonic()) > 0:
                        break  # write the pages at hand rather than hold them while the throttle waits
                    batch = self._read(cursor)
                    if batch is None:
                        exhausted = True
                        break
                    cursor = self.read_cursor = batch.last
                    future = None
                    if batch.todo:
                        self._throttle(batch.todo)
                        future = self._vectors(executor, batch.todo)
                    pending.append((batch, future))
                if not pending:
                    return True
                batch, future = pending.popleft()
                self._write(batch, *self._embedded(executor, batch.todo, future))
                self.trouble.cleared()
                backoff.reset()
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

    def _embedded(
        self, executor: EmbedExecutor, todo: list[Record], future: Future[np.ndarray] | None
    ) -> tuple[list[Record], np.ndarray | None]:
        """The page's records that got a vector, and their vectors: when the model rejects the page,
        its halves are embedded (``embed_rejecting``) and the rejected records quarantined."""
        if future is None:
            return [], None
        try:
            return todo, future.result()
        except InputRejected:
            embedded = embed_rejecting(
                lambda texts: executor.submit(self._step, texts).result(), [r.text for r in todo]
            )
        rejected = [
            QuarantineRow(todo[i].kind, todo[i].id, todo[i].seq, m) for i, m in embedded.rejected.items()
        ]
        self._quarantine.add(rejected, self._sink.seq_of)
        return [todo[row] for row in embedded.rows], embedded.vectors

    def _write(self, batch: _Batch, todo: list[Record], vectors: np.ndarray | None) -> None:
        """Write a page's vectors (of ``todo``, its records that got one) durably, then save and
        publish its progress: done only once it is kept."""
        by_kind: dict[str, list[int]] = {}
        for row, record in enumerate(todo):
            by_kind.setdefault(record.kind, []).append(row)
        for kind, rows in by_kind.items():
            assert vectors is not None
            ids, seqs = [todo[r].id for r in rows], [todo[r].seq for r in rows]
            self._sink.write(kind, ids, vectors[rows], seqs, durable=True, texts=[todo[r].text for r in rows])
        with self.lock:
            state = replace(self.state, done=self.state.done + batch.count, cursor=batch.last)
            self._save(state)
            self.state = state
