"""A real database host over a ``psycopg_pool.ConnectionPool``: what the shared logs need of a
PostgreSQL store (``connection()``), until the tests can open the real ``PostgresStore``.

Each ``PoolHost`` has a pool of its own, as each process sharing a store would; two hosts on one
database stand for two replicas.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class PoolHost:
    """``connection()`` in a transaction, committed on normal exit, rolled back on an exception."""

    shared = True

    def __init__(self, uri: str, max_size: int = 4) -> None:
        from psycopg_pool import ConnectionPool  # the postgres extra: only where a test asks for it

        self.pool = ConnectionPool(uri, min_size=1, max_size=max_size, open=True)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self.pool.connection() as conn:  # commits, or rolls back when the block raises
            yield conn

    def check_fence(self, conn: Any) -> None:
        """No leases here: nothing to check."""

    def close(self) -> None:
        self.pool.close()


@contextmanager
def replicas(uri: str, n: int = 2) -> Iterator[list[PoolHost]]:
    """``n`` hosts on the database ``uri``, closed afterwards."""
    hosts = [PoolHost(uri) for _ in range(n)]
    try:
        yield hosts
    finally:
        for host in hosts:
            host.close()


@pytest.fixture
def pg_hosts(pg_uri: str) -> Iterator[list[PoolHost]]:
    """Two replicas' hosts on one fresh database."""
    with replicas(pg_uri) as found:
        yield found
