"""Request counts on a shared store: the rollout gates of one replica read every replica's
routed requests, errors and latencies (real PostgreSQL, two pg_hosts standing for two processes)."""

from __future__ import annotations

import time

import pytest

from embedswitch import Unavailable, UnknownKind
from embedswitch.request_stats import SAMPLES, MemoryRequestStats, open_request_stats
from embedswitch.request_stats.postgres import PostgresRequestStats
from embedswitch.store.postgres import PostgresStore


def test_a_window_read_through_one_replica_counts_the_others_traffic(pg_hosts: list[PostgresStore]) -> None:
    a, b = (PostgresRequestStats(host, "c", flush_interval_s=3600) for host in pg_hosts)
    try:
        a.record("v1", 0.010, None)
        mark = b.mark()  # a's request is not written yet: it falls after the mark
        for ms in range(1, 101):
            a.record("v2", ms / 1000, None)
        a.record("v2", 5.0, Unavailable("model endpoint down"))  # a 503: the version failed
        a.record("v2", 0.001, UnknownKind("no such kind"))  # a 422: the client's mistake
        b.record("v2", 0.001, RuntimeError("bug"))  # a 500, through the other replica
        only_b = b.since(mark)  # b writes its own counts when it reads; a's are not written yet
        assert set(only_b) == {"v2"} and (only_b["v2"].requests, only_b["v2"].errors) == (1, 1)
        a.flush()
        window = b.since(mark)
        assert set(window) == {"v1", "v2"}
        v2 = window["v2"]
        assert (v2.requests, v2.errors) == (103, 2)
        assert v2.percentile_ms(50) == pytest.approx(50.5, abs=0.6)
        assert v2.percentile_ms(99) == pytest.approx(99.0, abs=0.1)
        assert (window["v1"].requests, window["v1"].errors, len(window["v1"].latencies_s)) == (1, 0, 1)
        later = a.mark()  # the same moment seen from a: nothing since
        assert a.since(later) == {} and b.since(later) == {}
        b.record("v2", 0.5, None)
        assert b.since(later)["v2"].requests == 1 and a.since(later)["v2"].requests == 1
        assert b.since(mark)["v2"].requests == 104  # the earlier window grew by the new request
        assert len(b.since(mark)["v2"].latencies_s) == 102  # the 422 is a success of the version
    finally:
        a.close()
        b.close()


def test_collections_are_counted_apart(pg_hosts: list[PostgresStore]) -> None:
    c, d = PostgresRequestStats(pg_hosts[0], "c"), PostgresRequestStats(pg_hosts[1], "d")
    try:
        mark = d.mark()
        c.record("v1", 0.01, None)
        c.flush()
        assert d.since(mark) == {}
    finally:
        c.close()
        d.close()


def test_latencies_are_bounded_but_counts_are_not(pg_hosts: list[PostgresStore]) -> None:
    a, b = (PostgresRequestStats(host, "c", flush_interval_s=3600) for host in pg_hosts)
    try:
        mark = b.mark()
        for _ in range(SAMPLES + 10):
            a.record("v1", 0.001, None)
        a.flush()
        window = b.since(mark)["v1"]
        assert window.requests == SAMPLES + 10 and len(window.latencies_s) == SAMPLES
        for _ in range(3):
            a.record("v1", 0.002, None)
            a.flush()  # three more rows of latencies
        a.prune()  # the newest SAMPLES stay
        window = b.since(b.mark())  # nothing since a fresh mark
        assert window == {}
        again = b.since(mark)["v1"]
        assert again.requests == SAMPLES + 13 and len(again.latencies_s) == SAMPLES
        assert sorted(again.latencies_s)[-3:] == [0.002] * 3
    finally:
        a.close()
        b.close()


def test_the_writer_flushes_in_the_background_and_close_writes_the_rest(
    pg_hosts: list[PostgresStore],
) -> None:
    a = PostgresRequestStats(pg_hosts[0], "c", flush_interval_s=0.05)
    b = PostgresRequestStats(pg_hosts[1], "c", flush_interval_s=3600)
    mark = b.mark()
    a.record("v1", 0.01, None)
    deadline = time.monotonic() + 5
    while "v1" not in b.since(mark) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.since(mark)["v1"].requests == 1
    a.close()
    b.record("v1", 0.01, None)
    b.close()
    reader = PostgresRequestStats(pg_hosts[0], "c")
    try:
        assert reader.mark().counts == {"v1": (2, 0)}
    finally:
        reader.close()


def test_the_store_chooses_the_backend(pg_hosts: list[PostgresStore]) -> None:
    assert isinstance(open_request_stats("c", None), MemoryRequestStats)
    shared = open_request_stats("c", pg_hosts[0])
    try:
        assert isinstance(shared, PostgresRequestStats)
    finally:
        shared.close()
