"""Several real ``PostgresStore`` objects on one database, standing for the processes (replicas)
sharing it: each has a pool and connections of its own, as each process would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from embedswitch.store.postgres import PostgresStore


@contextmanager
def replicas(uri: str, n: int = 2) -> Iterator[list[PostgresStore]]:
    """``n`` stores on the database ``uri``, closed afterwards."""
    stores = [PostgresStore.from_uri(uri, Path()) for _ in range(n)]
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


@pytest.fixture
def pg_hosts(pg_uri: str) -> Iterator[list[PostgresStore]]:
    """Two replicas' stores on one fresh database."""
    with replicas(pg_uri) as found:
        yield found
