"""The change log's order under writers in several processes, on a real PostgreSQL.

Four writer processes (``spawn``, each with its own ``PostgresStore``) write small batches to one
collection at once while a tailer reads ``read_log(after=last_seen)`` in a loop, as an applier
does. Every seq must reach the tailer exactly once, in order: a seq that commits after the tailer
has read past it is skipped for good. The same checker is then shown to catch the classic bug: a
store that takes seqs from a SEQUENCE (``_pg_processes.SequenceSeqs``, a fault injection with a
pause between taking the seqs and committing) skips seqs.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pytest
from _pg_processes import BATCH, SEQUENCE, init_writer, write_batches

from embedswitch.store.base import VersionRow
from embedswitch.store.postgres import PostgresStore

WRITERS, BATCHES = 4, 60


def tail_problems(tailed: list[int], full: list[int]) -> list[str]:
    """What is wrong with the seqs a tailer read (``tailed``, in reading order), given the whole
    log once the writers are done (``full``); empty when every seq arrived once, in order."""
    problems = []
    if full != list(range(1, len(full) + 1)):
        problems.append(f"the final log is not 1..{len(full)} without gaps")
    seen: set[int] = set()
    last = 0
    for seq in tailed:
        if seq in seen:
            problems.append(f"seq {seq} was read twice")
        elif seq <= last:
            problems.append(f"skipped: seq {seq} arrived after seq {last}")
        seen.add(seq)
        last = max(last, seq)
    missed = sorted(set(full) - seen)
    if missed:
        problems.append(
            f"skipped: {len(missed)} seqs (e.g. {missed[:5]}) were committed after the tailer had "
            "read past them, so it never read them"
        )
    return problems


@pytest.fixture(scope="module")
def writers() -> Iterator[tuple[Pool, Any]]:
    """A pool of WRITERS spawned processes, and the barrier they and the tailer start at."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WRITERS + 1)
    with ctx.Pool(WRITERS, initializer=init_writer, initargs=(start,)) as pool:
        yield pool, start


def run(uri: str, writers: tuple[Pool, Any], broken: bool) -> tuple[list[int], list[int], list[int]]:
    """Write from every process while tailing; (acknowledged heads, seqs tailed, the full log)."""
    pool, start = writers
    tailer = PostgresStore.from_uri(uri, Path("."))
    try:
        tailer.create_collection("c", VersionRow("c", "v1", {"name": "v1"}, "ready", 0, 0, None, 1.0), {})
        jobs = pool.starmap_async(write_batches, [(uri, broken, w, BATCHES) for w in range(WRITERS)])
        start.wait(timeout=60)
        tailed: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = jobs.ready()  # before the read: a read after the last commit ends the loop
            seqs = [c.seq for c in tailer.read_log("c", tailed[-1] if tailed else 0, 1000)]
            tailed += seqs
            if done and not seqs:
                break
        acks = [seq for heads in jobs.get(timeout=60) for seq in heads]
        full = [c.seq for c in tailer.read_log("c", 0, 10**6)]
        return acks, tailed, full
    finally:
        tailer.close()


def test_every_seq_reaches_a_tailer_once_in_order(pg_uri: str, writers: tuple[Pool, Any]) -> None:
    acks, tailed, full = run(pg_uri, writers, broken=False)
    total = WRITERS * BATCHES * BATCH
    assert tail_problems(tailed, full) == []
    assert tailed == full == list(range(1, total + 1))
    assert sorted(acks) == list(range(BATCH, total + 1, BATCH))  # each write got a block of its own


def test_the_checker_catches_seqs_taken_from_a_sequence(pg_uri: str, writers: tuple[Pool, Any]) -> None:
    """Fault injection: ``SequenceSeqs`` draws seqs from a SEQUENCE and pauses before committing."""
    import psycopg

    with psycopg.connect(pg_uri, autocommit=True) as conn:
        PostgresStore.from_uri(pg_uri, Path(".")).close()  # the tables
        conn.execute(f"CREATE SEQUENCE {SEQUENCE} INCREMENT BY {BATCH} START WITH {BATCH}")
    _, tailed, full = run(pg_uri, writers, broken=True)
    assert full == list(range(1, WRITERS * BATCHES * BATCH + 1))  # nothing lost in the database...
    problems = tail_problems(tailed, full)
    assert problems and all(p.startswith("skipped") for p in problems)  # ...but the tailer missed some
