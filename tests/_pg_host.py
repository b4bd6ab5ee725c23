"""A real ``IndexHost`` for the index tests: a connection pool on a test database, migrated as the
PostgreSQL store migrates it.

``check_fence`` enforces no lease; setting ``lease_lost`` is a fault injection (the worker's lease
is gone), making every later ``check_fence`` raise ``LeaseLost`` inside the caller's transaction.
``fence_checks`` counts the calls, so a test can see that a write was fenced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from embedswitch._errors import LeaseLost
from embedswitch.store.postgres.schema import migrate


class PgHost:
    def __init__(self, uri: str, max_size: int = 8) -> None:
        with psycopg.connect(uri, autocommit=True) as conn:
            migrate(conn)  # the store's tables (a milvus ledger's among them), as a store's open makes
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            uri, min_size=1, max_size=max_size, open=True
        )
        self.search_pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            uri, min_size=1, max_size=max_size, kwargs={"autocommit": True}, open=True
        )
        self.lease_lost = False
        self.fence_checks = 0

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction: committed when the block exits normally, rolled
        back when it raises."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def own_transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """As ``connection``: this host has no ``together``."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def reader(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection with no transaction open (autocommit while it is lent)."""
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    @contextmanager
    def searcher(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection of a pool of its own, as the store's."""
        with self.search_pool.connection() as conn:
            yield conn

    def check_fence(self, conn: psycopg.Connection[Any]) -> None:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        self.fence_checks += 1
        if self.lease_lost:
            raise LeaseLost("fault injection: this worker's lease was taken over")

    def close(self) -> None:
        self.pool.close()
        self.search_pool.close()
