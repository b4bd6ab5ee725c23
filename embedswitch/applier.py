"""The applier: one thread per version that keeps its indexes current with the change log.

It reads the log after the version's applied position in batches, keeps the last entry per record,
embeds the upserts with the version's own model (in up to ``workers`` parallel chunks) and writes
its indexes through their seq guards, so applying an entry twice, or one older than what an index
holds, is a no-op. A record whose text the model rejects is quarantined (``quarantine.py``) and the
batch goes on; a later write of it resolves that. Derived user vectors (``history-mean``, ``als``)
are refreshed after the records of each batch, for the users it touches. It waits for new entries
with ``RecordStore.wait_for_log`` and checkpoints the version every ``checkpoint_interval_s``. A
failing batch (an endpoint that is down) is retried after a growing delay (``Backoff``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import _fence
from ._backoff import Backoff
from .backfill.base import EmbedStep
from .events import Trouble
from .quarantine import Quarantine, embed_rejecting
from .store.base import Change, QuarantineRow, Store

MIN_CHUNK = 16
"""Texts per parallel encoding chunk, at least."""
IDLE_WAIT_S = 0.2
"""How long a caught-up applier waits for new log entries before it looks again."""
VECTOR_CATCH_UP = 8192
"""Log entries per step of an applier behind on records that bring their own vectors: with no
model to run, a bigger step is a bigger, faster index insert (a bulk load goes at the index's pace)."""


class AppliedVersion(Protocol):
    """What the applier writes into: a version's indexes and position (``Version`` implements it)."""

    collection: str
    name: str
    derives_users: bool
    takes_vectors: bool
    """Records bring their own vectors (model "none"): ``own_vectors`` turns them into the index's."""

    @property
    def applied_seq(self) -> int: ...

    def embeds(self, kind: str) -> bool:
        """Whether records of ``kind`` get their vector from their text (or bring it)."""
        ...

    def own_vectors(self, blobs: Sequence[bytes]) -> np.ndarray: ...

    def users_live(self) -> bool:
        """Whether derived user vectors follow the stream yet (not while items backfill)."""
        ...

    def write(
        self,
        kind: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        seqs: Sequence[int],
        durable: bool = False,
        texts: Sequence[str] | None = None,
    ) -> int:
        """Seq-guarded writes; ``texts``, the records' texts, for a version that indexes them."""
        ...

    def delete(self, kind: str, ids: Sequence[str], seqs: Sequence[int]) -> int: ...

    def seq_of(self, kind: str, id: str) -> int | None: ...

    def write_users(self, users: list[str], seq: int) -> None:
        """Derive each user's vector anew from the items the version holds, written with ``seq``."""
        ...

    def open_indexes(self, kinds: Sequence[str]) -> None:
        """Open the indexes of ``kinds``, creating the missing ones, each creation committed before
        the index is published to readers (never inside a ``Store.together`` block)."""
        ...

    def publish_applied(self, seq: int) -> None:
        """Tell waiters (and, shared, the other processes) the version has applied ``seq``."""
        ...

    def advance(self, seq: int) -> None:
        """The batch up to ``seq`` is committed: the version's position moves to it."""
        ...

    def checkpoint(self) -> None: ...


@dataclass
class _KindBatch:
    """What one applied batch writes for one record kind."""

    kind: str
    ups: list[Change]
    dels: list[Change]
    vectors: np.ndarray | None = None
    rejected: list[QuarantineRow] = field(default_factory=list)

    def writes(self) -> bool:
        """Whether it writes the kind's index (not only the quarantine)."""
        return bool(self.dels) or (bool(self.ups) and self.vectors is not None)


class Applier:
    """Applies the change log to one version, in a background thread."""

    def __init__(
        self,
        target: AppliedVersion,
        store: Store,
        step: EmbedStep,
        quarantine: Quarantine,
        batch: int,
        checkpoint_interval_s: float,
        workers: int,
        trouble: Trouble,
    ) -> None:
        self.lock = threading.RLock()
        """Held around each applied batch; hold it to change what derived users depend on."""
        self.caught_up = False
        self.trouble = trouble
        self._target = target
        self._store = store
        self._step = step
        self._quarantine = quarantine
        self._batch = batch
        self._checkpoint_interval_s = checkpoint_interval_s
        self._workers = workers
        self._encoders = ThreadPoolExecutor(workers, thread_name_prefix=f"apply-{target.name}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start applying; a worker started inside ``_fence.fenced`` writes under that fence."""
        self._thread = _fence.thread(self._run, f"applier-{self._target.collection}-{self._target.name}")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._store.wake(self._target.collection)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self._encoders.shutdown()

    def _run(self) -> None:
        target = self._target
        last_checkpoint = time.monotonic()
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                limit = self._batch if self.caught_up or not target.takes_vectors else VECTOR_CATCH_UP
                changes = self._store.read_log(target.collection, target.applied_seq, limit)
                if changes:
                    self.apply(changes)
                backoff.reset()
                self.caught_up = len(changes) < limit
                if time.monotonic() - last_checkpoint >= self._checkpoint_interval_s:
                    target.checkpoint()
                    last_checkpoint = time.monotonic()
                if self.caught_up and not self._stop.is_set():
                    self._store.wait_for_log(target.collection, target.applied_seq, IDLE_WAIT_S)
            except Exception as exc:  # keep serving; the error shows in status, events and the log
                self.trouble.failed(exc)
                self._stop.wait(backoff.next_delay())

    def apply(self, changes: list[Change]) -> None:
        """Apply log entries (in seq order) to the version's indexes, then its derived users: the
        texts are embedded first, then every write of the batch and the position it brings the
        version to commit together (``Store.together``: one transaction in a shared database).

        The index of a kind written for the first time is created before that transaction, in one
        of its own: created inside it, the index would be published to readers before its table
        commits (a search on another connection would find no table)."""
        target = self._target
        seq = changes[-1].seq
        with self.lock:
            batches = self._embed_records(changes)
            users = self._users(changes) if target.derives_users and target.users_live() else []
            target.open_indexes([b.kind for b in batches if b.writes()] + (["user"] if users else []))
            with self._store.together():
                for batch in batches:
                    self._write(batch)
                if users:
                    target.write_users(users, seq)
                target.publish_applied(seq)
            target.advance(seq)
        self.trouble.cleared()

    def _users(self, changes: list[Change]) -> list[str]:
        """The users whose derived vectors the batch changes: those who interacted, and those with
        an interaction with an item it writes."""
        users = {c.id for c in changes if c.op == "interact"}
        items = [c.id for c in changes if c.kind == "item" and c.op != "interact"]
        if items:
            users |= self._store.users_of_items(self._target.collection, items)
        return sorted(users)

    def _embed_records(self, changes: list[Change]) -> list[_KindBatch]:
        """Per record kind, the records' last changes with their vectors (nothing written yet)."""
        target = self._target
        latest: dict[tuple[str, str], Change] = {}
        for change in changes:
            # interactions don't change record vectors; derived user vectors ignore user records;
            # a model without text keeps its loaded vectors until a delete
            if change.op == "interact" or (target.derives_users and change.kind == "user"):
                continue
            if change.op == "delete" or target.embeds(change.kind):
                latest[(change.kind, change.id)] = change
        by_kind: dict[str, list[Change]] = {}
        for change in latest.values():
            by_kind.setdefault(change.kind, []).append(change)
        batches = []
        for kind, group in by_kind.items():
            batch = _KindBatch(
                kind, [c for c in group if c.op == "upsert"], [c for c in group if c.op == "delete"]
            )
            if batch.ups and target.takes_vectors:  # the records' own vectors; one without has none now
                batch.dels += [c for c in batch.ups if c.vector is None]
                batch.ups = [c for c in batch.ups if c.vector is not None]
                batch.vectors = target.own_vectors([c.vector for c in batch.ups if c.vector is not None])
            elif batch.ups:
                embedded = embed_rejecting(self._encode, [c.text or "" for c in batch.ups])
                batch.rejected = [
                    QuarantineRow(kind, batch.ups[row].id, batch.ups[row].seq, message)
                    for row, message in embedded.rejected.items()
                ]
                batch.ups = [batch.ups[row] for row in embedded.rows]
                batch.vectors = embedded.vectors
            batches.append(batch)
        return batches

    def _write(self, batch: _KindBatch) -> None:
        """One kind's vectors and deletes into the index; the rejected records quarantined, the
        quarantine of the others resolved."""
        target, kind = self._target, batch.kind
        if batch.ups and batch.vectors is not None:
            ids, seqs, texts = (
                [c.id for c in batch.ups],
                [c.seq for c in batch.ups],
                [c.text or "" for c in batch.ups],
            )
            target.write(kind, ids, batch.vectors, seqs, texts=texts)
        if batch.rejected:
            self._quarantine.add(batch.rejected, target.seq_of)
        if batch.dels:
            target.delete(kind, [c.id for c in batch.dels], [c.seq for c in batch.dels])
        self._quarantine.settle({(kind, c.id): c.seq for c in batch.ups + batch.dels})

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Documents embedded in up to ``workers`` parallel chunks (torch runs one thread per call,
        see ``EngineConfig.torch_threads``), in order."""
        chunks = min(self._workers, len(texts) // MIN_CHUNK)
        if chunks <= 1:
            return self._step(texts)
        size = -(-len(texts) // chunks)
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        return np.concatenate(list(self._encoders.map(self._step, parts)))
