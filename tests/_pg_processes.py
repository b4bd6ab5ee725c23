"""What the PostgreSQL store tests run in other processes (started with ``spawn``, so each opens
its own ``PostgresStore``, its own connections, and is paused or killed on its own).

``SequenceSeqs`` is a FAULT INJECTION for tests only: the store with the classic log-order bug.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from threading import Barrier
from typing import Any

from embedswitch import LeaseLost
from embedswitch._errors import CollectionNotFound
from embedswitch._fence import fenced
from embedswitch.store.postgres import PostgresStore

BATCH = 3
"""Records per write in the log-order test (``SequenceSeqs`` hands out blocks of this size)."""

SEQUENCE = "es_test_log_seq"


@dataclass(frozen=True)
class Rec:
    kind: str
    id: str
    text: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    vector: tuple[float, ...] | None = None


class SequenceSeqs(PostgresStore):
    """FAULT INJECTION (test only): seqs drawn from a PostgreSQL SEQUENCE instead of the
    collection's row. Without that row lock, two writes can take seqs in one order and commit in
    the other; a pause between taking the seqs and the commit (injected) makes that happen often,
    so a reader past the later seqs never reads the earlier ones."""

    def _lock_head(self, conn: Any, collection: str) -> int:
        row = conn.execute("SELECT head_seq FROM es_collections WHERE name = %s", (collection,)).fetchone()
        if row is None:
            raise CollectionNotFound(collection)
        return int(row[0])

    def _allocate(self, conn: Any, collection: str, count: int) -> int:
        assert count == BATCH, "the sequence hands out blocks of BATCH seqs"
        (last,) = conn.execute(f"SELECT nextval('{SEQUENCE}')").fetchone()
        time.sleep(random.uniform(0, 0.01))  # the injected delay between allocation and commit
        return int(last)


# -- the log-order test's writers (a process pool) ------------------------------------------------
_start: Barrier | None = None


def init_writer(start: Barrier) -> None:
    """Pool initializer: the barrier every writer and the tailer meet at before writing."""
    global _start
    _start = start


def write_batches(uri: str, broken: bool, writer: int, batches: int) -> list[int]:
    """Open a store (``SequenceSeqs`` when ``broken``), wait for the others, then write
    ``batches`` writes of ``BATCH`` new records to collection ``c``; the acknowledged heads."""
    store = (SequenceSeqs if broken else PostgresStore).from_uri(uri, Path("."))
    try:
        assert _start is not None
        _start.wait(timeout=60)
        return [
            store.write("c", [Rec("doc", f"{writer}-{b}-{i}", "x") for i in range(BATCH)], []).seq
            for b in range(batches)
        ]
    finally:
        store.close()


# -- the lease tests' holder ------------------------------------------------------------------------
def hold_lease_then_write(uri: str, lease: str, pipe: Connection) -> None:
    """Take ``lease`` and send its epoch; on the next message, write one record under that
    fence and send what came of it: ("stored" or "LeaseLost", the lease's epoch now)."""
    store = PostgresStore.from_uri(uri, Path("."))
    try:
        epoch = store.try_lease(lease)
        pipe.send(epoch)
        pipe.recv()
        assert epoch is not None
        try:
            with fenced(lease, epoch):
                store.write("c", [Rec("doc", "late", "written by the old holder")], [])
            pipe.send(("stored", store.lease_epoch(lease)))
        except LeaseLost:
            pipe.send(("LeaseLost", store.lease_epoch(lease)))
    finally:
        store.close()
