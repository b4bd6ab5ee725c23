"""Concurrent searches, gets, upserts, deletes, checkpoints and rebuilds on one index, every type
(pgvector too, in a real PostgreSQL, and the engines qdrant and milvus in their embedded modes:
they have no rebuilds).

Every read must be what some serial order of the writes gives. Each write call and each read is
timed (``perf_counter``, one clock for all threads); a read may see a write that started before it
ended, and must not see one superseded (a higher seq of the same id, upsert or delete) by a write
that ended before it began. So: every hit's score is the query's inner product with a vector
written for that id by an admissible write (no torn vectors, no rows of another id), no hit for an
id deleted before the search began, every ``get`` returns such a vector, an id that is live for the
whole of a search is in its hits (exact index, k >= every id), and the end state is the last write
per id, before and after a reopen. ``test_unsafe_reads_are_caught`` shows the check fails when the
reads skip the read lock.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from _indexes import ATOL, DIM, ENGINES, TYPES, open_seam, open_typed
from _pg_host import PgHost
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch.index import VectorIndex
from embedswitch.index._local import LocalIndex

N_IDS = 48
WRITERS, READERS, OPS = 4, 4, 200
ENGINE_OPS = 60


@functools.cache
def vector_for(id_num: int, seq: int) -> np.ndarray:
    """A unit vector determined by (id, seq), so any stored vector tells which write it came from."""
    v = np.random.default_rng([id_num, seq]).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Write:
    id: str
    seq: int
    op: str  # "upsert" or "delete"
    start: float
    end: float


@dataclass(frozen=True)
class Read:
    start: float
    end: float
    query: np.ndarray | None = None  # a search, with its hits
    hits: list[tuple[str, float]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)  # a get, with what it returned
    got: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class History:
    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)

    def admissible(self, id_: str, start: float, end: float) -> list[Write | None]:
        """The states of ``id_`` a read over ``[start, end]`` may see: writes begun before it ended
        and not superseded by one that ended before it began; None (never written) too if no
        write of it ended before the read began."""
        mine = [w for w in self.writes if w.id == id_]
        states: list[Write | None] = [
            w for w in mine if w.start < end and not any(o.seq > w.seq and o.end < start for o in mine)
        ]
        if not any(w.end < start for w in mine):
            states.append(None)
        return states


def num(id_: str) -> int:
    return int(id_[2:])


def violations(history: History, precision: str, complete: bool) -> list[str]:
    """What no serial order of the writes explains, one line per problem."""
    atol = max(1e-5, 2 * ATOL[precision])
    found = []
    for read in history.reads:
        if read.query is not None:
            found += _search_violations(history, read, atol, complete)
        for id_ in read.asked:
            states = history.admissible(id_, read.start, read.end)
            vec = read.got.get(id_)
            if vec is None and not any(s is None or s.op == "delete" for s in states):
                found.append(f"get lost {id_}: it was live all along")
            if vec is not None and not any(
                s is not None
                and s.op == "upsert"
                and np.allclose(vec, vector_for(num(id_), s.seq), atol=atol)
                for s in states
            ):
                found.append(f"get of {id_} returned a vector no admissible write stored")
    return found


def _search_violations(history: History, read: Read, atol: float, complete: bool) -> list[str]:
    assert read.query is not None
    found = []
    ids = [id_ for id_, _ in read.hits]
    if len(set(ids)) != len(ids):
        found.append(f"duplicate ids in one result: {ids}")
    scores = [score for _, score in read.hits]
    if scores != sorted(scores, reverse=True):
        found.append("hits are not sorted by score")
    for id_, score in read.hits:
        states = history.admissible(id_, read.start, read.end)
        upserts = [s for s in states if s is not None and s.op == "upsert"]
        if not upserts:
            found.append(f"{id_} was deleted (or never written) before the search began, yet it is a hit")
        elif not any(abs(float(vector_for(num(id_), s.seq) @ read.query) - score) <= atol for s in upserts):
            found.append(f"{id_} scored {score:.5f}: not the inner product with any vector it may hold")
    if complete:
        for n in range(N_IDS):
            id_ = f"id{n}"
            states = history.admissible(id_, read.start, read.end)
            if states and all(s is not None and s.op == "upsert" for s in states) and id_ not in ids:
                found.append(f"{id_} was live for the whole search but is missing from its hits")
    return found


def writer(index: VectorIndex, seed: int, seqs: Iterator[int], history: History, ops: int = OPS) -> None:
    rnd = random.Random(seed)
    for _ in range(ops):
        nums = rnd.sample(range(N_IDS), rnd.randint(1, 4))
        ids = [f"id{n}" for n in nums]
        batch = [next(seqs) for _ in nums]
        op = "upsert" if rnd.random() < 0.7 else "delete"
        start = time.perf_counter()
        if op == "upsert":
            index.upsert(ids, np.stack([vector_for(n, s) for n, s in zip(nums, batch, strict=True)]), batch)
        else:
            index.delete(ids, batch)
        end = time.perf_counter()
        history.writes.extend(Write(i, s, op, start, end) for i, s in zip(ids, batch, strict=True))


def reader(index: VectorIndex, seed: int, history: History, ops: int = OPS) -> None:
    rnd = random.Random(seed)
    for _ in range(ops):
        if rnd.random() < 0.75:
            query = vector_for(10_000 + seed, rnd.randint(0, 10**9))
            start = time.perf_counter()
            hits = index.search(query[None, :], N_IDS)[0]
            history.reads.append(Read(start, time.perf_counter(), query=query, hits=hits))
        else:
            asked = [f"id{n}" for n in rnd.sample(range(N_IDS), 4)]
            start = time.perf_counter()
            got = index.get(asked)
            history.reads.append(Read(start, time.perf_counter(), asked=asked, got=got))


def maintenance(index: LocalIndex) -> None:
    for _ in range(3):
        index.checkpoint()
        index.rebuild()


def hammer(index: VectorIndex, maintain: Callable[[], object], ops: int = OPS) -> History:
    """Writers, readers and a thread that calls ``maintain`` (checkpoints, rebuilds), all at once."""
    history, seqs = History(), itertools.count(1)
    errors: list[BaseException] = []

    def guarded(target: object, *args: object) -> None:
        try:
            target(*args)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=guarded, args=(writer, index, s, seqs, history, ops)) for s in range(WRITERS)
    ]
    threads += [
        threading.Thread(target=guarded, args=(reader, index, s, history, ops)) for s in range(READERS)
    ]
    threads.append(threading.Thread(target=guarded, args=(maintain,)))
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often so that races show up
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old_interval)
    if errors:
        raise errors[0]
    return history


@pytest.mark.parametrize("index_type", TYPES)
def test_concurrent_reads_match_a_serial_order(index_type: str, tmp_path: Path) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    history = hammer(index, functools.partial(maintenance, index))
    assert len(history.reads) == READERS * OPS and index.rebuilds == 3
    found = violations(history, index.precision, complete=index.index_type == "exact")
    assert not found, f"{len(found)} reads no serial order explains, e.g. {found[:5]}"
    assert_end_state_is_last_write(index, history)
    index.checkpoint()
    index.close()
    assert_end_state_is_last_write(open_typed(index_type, tmp_path / "idx"), history)


def test_concurrent_reads_match_a_serial_order_on_pgvector(pg_uri: str, tmp_path: Path) -> None:  # noqa: F811
    """Each write one transaction, each search its own read-only one: the same checks hold, exact
    (the table stays below ``exact_below``), and again through another process's pool."""
    host = PgHost(pg_uri, max_size=WRITERS + READERS + 1)
    try:
        index = open_seam("pgvector", tmp_path, host)
        history = hammer(index, index.checkpoint)
        assert len(history.reads) == READERS * OPS
        found = violations(history, index.precision, complete=True)
        assert not found, f"{len(found)} reads no serial order explains, e.g. {found[:5]}"
        assert_end_state_is_last_write(index, history)
        other = PgHost(pg_uri)
        assert_end_state_is_last_write(open_seam("pgvector", tmp_path, other), history)
        other.close()
    finally:
        host.close()


@pytest.mark.parametrize("index_type", list(ENGINES))
def test_concurrent_reads_match_a_serial_order_on_engines(index_type: str, tmp_path: Path) -> None:
    """qdrant (local mode, in memory) and milvus (milvus-lite, its ledger on disk), both exact: the
    same checks hold, and milvus's again after a reopen. Fewer operations: their calls take turns."""
    index = open_seam(index_type, tmp_path / "idx", None, persistent=False)
    history = hammer(index, index.checkpoint, ops=ENGINE_OPS)
    assert len(history.reads) == READERS * ENGINE_OPS
    found = violations(history, index.precision, complete=True)
    assert not found, f"{len(found)} reads no serial order explains, e.g. {found[:5]}"
    assert_end_state_is_last_write(index, history)
    index.close()
    if index_type == "milvus":
        assert_end_state_is_last_write(open_seam(index_type, tmp_path / "idx", None), history)


def assert_end_state_is_last_write(index: VectorIndex, history: History) -> None:
    last: dict[str, Write] = {}
    for write in history.writes:
        if write.id not in last or write.seq > last[write.id].seq:
            last[write.id] = write
    live = sorted(id_ for id_, w in last.items() if w.op == "upsert")
    assert sorted(index.ids()) == live
    vectors = index.get(live)
    for id_, write in last.items():
        assert index.seq_of(id_) == write.seq
        if write.op == "upsert":
            np.testing.assert_allclose(
                vectors[id_], vector_for(num(id_), write.seq), atol=ATOL[index.precision]
            )


def test_unsafe_reads_are_caught(tmp_path: Path) -> None:
    """The same hammer with reads that skip the read lock (the bug this suite guards against): the
    check finds reads no serial order explains. Exact index only: an unguarded hnswlib read during
    a resize can crash the process instead."""
    rounds = []
    for attempt in range(5):
        index = open_typed("exact", tmp_path / f"idx{attempt}")
        index._rw.read = contextlib.nullcontext()  # type: ignore[assignment]
        try:
            history = hammer(index, functools.partial(maintenance, index))
        except Exception as exc:  # a torn read may also blow up inside the read itself
            rounds.append([f"{type(exc).__name__}: {exc}"])
        else:
            rounds.append(violations(history, "f32", complete=True))
        if rounds[-1]:
            break
    assert rounds[-1], f"{len(rounds)} rounds of unguarded reads found nothing"
