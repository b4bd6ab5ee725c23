"""What the logs kept in a shared store's PostgreSQL database need of it: pooled connections, and
their tables created once however many processes open them at the same moment."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

SCHEMA_LOCK = "embedswitch: create tables"
"""The advisory lock that serialises ``CREATE ... IF NOT EXISTS`` across processes (two processes
creating one table at once can otherwise both pass the ``IF NOT EXISTS`` and one then fail)."""


class Host(Protocol):
    """A database to keep tables in: ``PostgresStore`` (an ``index.base.IndexHost``) is one."""

    def connection(self) -> AbstractContextManager[Any]:
        """A pooled psycopg connection in a transaction, committed when the block exits normally
        and rolled back when it raises."""
        ...


def create_tables(host: Host, ddl: str) -> None:
    """Run ``ddl`` (statements without parameters, each ``IF NOT EXISTS``) in one transaction, one
    process at a time."""
    with host.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (SCHEMA_LOCK,))
        conn.execute(ddl)
