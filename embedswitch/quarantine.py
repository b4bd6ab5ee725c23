"""Quarantine: records a version's model rejects are set aside, and the rest goes on.

A model says that it refuses its input by raising ``InputRejected`` for a whole ``encode`` call
(``models/openai.py`` does for an endpoint's 400, 413 and 422). ``embed_rejecting`` finds the texts
to blame by embedding halves of the batch, down to single texts (bisection): the others get their
vectors, and the rejected ones are handed to the version's ``Quarantine``, which keeps each with
the seq of the text that was rejected and the model's message (durably, in the store) while the
applier and the backfill go on. A building version with an open quarantined record does not
become ready; a skip (``skip``) or a resolution lifts that.

Resolution follows the seq guards. A later write of the record (an upsert that embeds, or a
delete) resolves its quarantine when it is applied (``settle``); a rejection is not recorded when
the version has already seen a newer write of the record, and ``add`` and ``settle`` take one lock,
so a race between the backfill and the stream leaves no stale row. ``retry`` embeds only records
whose stored seq is still the rejected one, and writes them with that seq through the version's
guarded sink: a stale text never overwrites a newer one and a deleted record never comes back.
Until then the version keeps the record's previous vector, if it had one. (A ``history-mean``
version re-derives the users of a retried item at their next interaction or the item's next
change, not at the retry.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from . import events
from ._errors import InputRejected, RecordNotFound
from .results import QuarantineAck, QuarantinedRecord, QuarantineInfo
from .store.base import ControlStore, QuarantineRow, Record, RecordKey

EVENT_RECORDS = 10
"""Records named in one event's detail, at most (the count says how many there were)."""

Embed = Callable[[list[str]], np.ndarray]


class Write(Protocol):
    """The version's seq-guarded sink (``Version.write``); ``texts`` for a lexical version."""

    def __call__(
        self,
        kind: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        seqs: Sequence[int],
        durable: bool = False,
        texts: Sequence[str] | None = None,
    ) -> int: ...


Seen = Callable[[str, str], int | None]


@dataclass(frozen=True)
class Embedded:
    """The outcome of ``embed_rejecting``: vectors for the texts at ``rows`` (in that order; None
    when there are none) and the model's message for each rejected text, by its position."""

    rows: list[int]
    vectors: np.ndarray | None
    rejected: dict[int, str]

    def after(self, other: Embedded, offset: int) -> Embedded:
        """This outcome followed by ``other``, whose positions start at ``offset``."""
        parts = [v for v in (self.vectors, other.vectors) if v is not None]
        return Embedded(
            self.rows + [offset + row for row in other.rows],
            np.concatenate(parts) if parts else None,
            self.rejected | {offset + i: message for i, message in other.rejected.items()},
        )


def embed_rejecting(embed: Embed, texts: list[str]) -> Embedded:
    """``embed(texts)``, or, when the model rejects the batch, each half embedded the same way, so
    that only the rejected texts go without a vector. One rejected text among n costs about 2 log2
    n extra calls. Any other error propagates."""
    if not texts:
        return Embedded([], None, {})
    try:
        return Embedded(list(range(len(texts))), embed(texts), {})
    except InputRejected as exc:
        if len(texts) == 1:
            return Embedded([], None, {0: exc.message})
    middle = len(texts) // 2
    return embed_rejecting(embed, texts[:middle]).after(embed_rejecting(embed, texts[middle:]), middle)


class Quarantine:
    """One version's quarantined records: durable in the store, mirrored in memory; thread-safe."""

    def __init__(self, collection: str, version: str, store: ControlStore) -> None:
        self.collection, self.version = collection, version
        self._store = store
        self._lock = threading.Lock()
        self._rows = {(row.kind, row.id): row for row in store.quarantined(collection, version)}

    def open_count(self) -> int:
        """Records that hold the version back (quarantined and not skipped)."""
        with self._lock:
            return sum(not row.skipped for row in self._rows.values())

    def skipped_count(self) -> int:
        with self._lock:
            return sum(row.skipped for row in self._rows.values())

    def info(self) -> QuarantineInfo:
        with self._lock:
            rows = [self._rows[key] for key in sorted(self._rows)]
        return QuarantineInfo(
            version=self.version,
            open=sum(not row.skipped for row in rows),
            skipped=sum(row.skipped for row in rows),
            records=[QuarantinedRecord(**vars(row)) for row in rows],
        )

    def _ack(self, changed: int, rejected: int = 0, pending: int = 0) -> QuarantineAck:
        open_now, skipped = self.open_count(), self.skipped_count()
        return QuarantineAck(
            version=self.version,
            changed=changed,
            rejected=rejected,
            pending=pending,
            open=open_now,
            skipped=skipped,
        )

    def add(self, rejected: Sequence[QuarantineRow], seen: Seen) -> None:
        """Quarantine records whose text as of their seq the model rejected, unless the version has
        seen that seq or a newer one for the record (``seen``: its index's last seq); a new
        rejection of the same seq keeps a skip (and is logged and recorded as an event only once)."""
        now = time.time()
        with self._lock:
            rows, new = [], []
            for row in rejected:
                old, last = self._rows.get((row.kind, row.id)), seen(row.kind, row.id)
                if (last is not None and last >= row.seq) or (old is not None and old.seq > row.seq):
                    continue
                if old is not None and old.seq == row.seq:  # rejected again: same since, same skip
                    rows.append(replace(row, at=old.at, skipped=old.skipped))
                else:
                    rows.append(replace(row, at=now, skipped=False))
                    new.append(rows[-1])
            if rows:
                self._store.quarantine(self.collection, self.version, rows)
                self._rows.update({(row.kind, row.id): row for row in rows})
        if new:
            self._event("quarantined", new, {"error": new[0].error})  # logged at WARNING

    def settle(self, applied: Mapping[RecordKey, int]) -> None:
        """These records were written at these seqs (a vector or a delete): a quarantine of the same
        or an older seq is resolved."""
        with self._lock:
            if not self._rows:
                return
            keys = [
                (kind, rid, seq)
                for (kind, rid), seq in applied.items()
                if (kind, rid) in self._rows and self._rows[(kind, rid)].seq <= seq
            ]
            if not keys:
                return
            self._store.unquarantine(self.collection, self.version, keys)
            resolved = [self._rows.pop((kind, rid)) for kind, rid, _ in keys]
        self._event("quarantine_resolved", resolved, {})

    def skip(self, keys: Sequence[RecordKey] | None) -> QuarantineAck:
        """Stop ``keys`` (None: every quarantined record) from holding the version back; ``changed``
        counts those newly skipped. ``RecordNotFound`` for a key that is not quarantined."""
        with self._lock:
            chosen = [self._rows[key] for key in self._chosen(keys) if not self._rows[key].skipped]
            if chosen:
                self._store.skip_quarantined(self.collection, self.version, [(r.kind, r.id) for r in chosen])
                self._rows.update({(r.kind, r.id): replace(r, skipped=True) for r in chosen})
        if chosen:
            self._event("quarantine_skipped", chosen, {})
        return self._ack(len(chosen))

    def retry(
        self,
        keys: Sequence[RecordKey] | None,
        records: Callable[[list[RecordKey]], Mapping[RecordKey, Record]],
        embed: Embed,
        write: Write,
        seen: Seen,
    ) -> QuarantineAck:
        """Embed the quarantined records (``keys``, or all) again from their stored text and write
        those the model takes now with the rejected seq (``changed``); the others keep their
        quarantine with the new message (``rejected``). Records written since are left to the
        stream (``pending``)."""
        with self._lock:
            chosen = [self._rows[key] for key in self._chosen(keys)]
        stored = records([(row.kind, row.id) for row in chosen])
        due = [row for row in chosen if (found := stored.get((row.kind, row.id))) and found.seq == row.seq]
        outcome = embed_rejecting(embed, [stored[(row.kind, row.id)].text for row in due])
        by_kind: dict[str, list[int]] = {}
        for position, row_index in enumerate(outcome.rows):
            by_kind.setdefault(due[row_index].kind, []).append(position)
        for kind, positions in by_kind.items():
            assert outcome.vectors is not None
            rows = [due[outcome.rows[p]] for p in positions]
            texts = [stored[(r.kind, r.id)].text for r in rows]
            write(kind, [r.id for r in rows], outcome.vectors[positions], [r.seq for r in rows], texts=texts)
        self.settle({(due[i].kind, due[i].id): due[i].seq for i in outcome.rows})
        again = [replace(due[i], error=message) for i, message in outcome.rejected.items()]
        self.add(again, seen)
        ack = self._ack(len(outcome.rows), len(again), len(chosen) - len(due))
        detail = ack.model_dump(include={"changed", "rejected", "pending"})
        events.record(self._store, self.collection, self.version, "quarantine_retried", detail)
        return ack

    def _chosen(self, keys: Sequence[RecordKey] | None) -> list[RecordKey]:
        """``keys`` (held under the lock), each checked to be quarantined; None: all, in order."""
        if keys is None:
            return sorted(self._rows)
        missing = [f"{kind}/{rid}" for kind, rid in keys if (kind, rid) not in self._rows]
        if missing:
            raise RecordNotFound(
                f"version {self.version!r} of {self.collection!r} has no quarantined record "
                f"{', '.join(missing[:3])}; list them with GET .../versions/{self.version}/quarantine",
                collection=self.collection,
                version=self.version,
            )
        return list(dict.fromkeys(keys))

    def _event(self, event: str, rows: Sequence[QuarantineRow], extra: dict[str, str]) -> None:
        named = [{"kind": r.kind, "id": r.id, "seq": r.seq} for r in rows[:EVENT_RECORDS]]
        detail = {"count": len(rows), "records": named, **extra}
        events.record(self._store, self.collection, self.version, event, detail)
