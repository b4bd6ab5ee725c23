"""The scale-out store: records, change log and control state in one PostgreSQL database
(``--store postgresql://user@host:5432/db``; the URI's parameters are in ``config.py``).

Several API processes share one database: their writes to a collection take seqs from its row
(``records.py``), their waiters are woken across processes by LISTEN/NOTIFY (``listener.py``), and
background work is given to one process at a time by leases with fencing (``leases.py``). Opening
the store migrates the database (``schema.py``). It is also the host of indexes kept in the same
database (``IndexHost``: ``connection`` and ``check_fence``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ... import _fence
from ..._errors import Unavailable
from .config import PostgresConfig, describe
from .control import PostgresControl
from .leases import Leases
from .listener import APPLIED, POLL_S, Listener, Wakeups
from .records import PostgresRecords
from .schema import migrate


def _pool(
    config: PostgresConfig, name: str, configure: Callable[[psycopg.Connection[Any]], None]
) -> ConnectionPool[psycopg.Connection[Any]]:
    """Up to ``pool_max`` autocommit connections to the store's database, opened as needed."""
    return ConnectionPool(
        config.conninfo,
        min_size=1,
        max_size=config.pool_max,
        kwargs={"autocommit": True},
        configure=configure,
        name=name,
        open=True,
    )


def _read_only(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET default_transaction_read_only = on")


class PostgresStore(PostgresRecords, PostgresControl):
    """The Store seam (and ``IndexHost``) on a PostgreSQL database several processes share."""

    embedded = False
    shared = True

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        try:
            with psycopg.connect(config.conninfo, autocommit=True) as conn:
                migrate(conn)
        except psycopg.OperationalError as exc:
            raise Unavailable(
                f"cannot reach the PostgreSQL store at {describe(config.conninfo)}: {exc}".strip(),
                store=describe(config.conninfo),
            ) from exc
        idle_ms = int(config.idle_in_transaction_s * 1000)

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")

        self._pool = _pool(config, "embedswitch-store", configure)
        # index searches only, so that the session settings a search leaves (pgvector's) never
        # reach the store's own statements; read-only
        self._search_pool = _pool(config, "embedswitch-search", _read_only)
        self._wakeups = Wakeups()
        try:
            self._listener = Listener(config.conninfo, self._wakeups, self._poke)
        except psycopg.OperationalError as exc:
            self._pool.close()
            self._search_pool.close()
            raise Unavailable(
                f"cannot listen for notifications on the PostgreSQL store at {describe(config.conninfo)}: "
                f"{exc}".strip(),
                store=describe(config.conninfo),
            ) from exc
        self._leases = Leases(config.conninfo, config.lease_ttl_s)
        self._closed = False
        self._unit = threading.local()  # this thread's ``together`` transaction, if any

    @classmethod
    def from_uri(cls, uri: str, data_dir: Path) -> PostgresStore:
        """The store at ``uri`` (``data_dir`` holds nothing of it)."""
        return cls(PostgresConfig.from_uri(uri))

    # -- connections (and IndexHost) --------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction, committed when the block exits normally and
        rolled back when it raises; inside ``together``, that block's connection (a savepoint)."""
        shared: psycopg.Connection[Any] | None = getattr(self._unit, "conn", None)
        if shared is not None:
            with shared.transaction():
                yield shared
            return
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def own_transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in a transaction of its own, committed when the block exits normally,
        even inside ``together`` (whose writes commit apart from it)."""
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def reader(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled autocommit connection, no transaction open; inside ``together``, that block's
        connection (its transaction open)."""
        shared: psycopg.Connection[Any] | None = getattr(self._unit, "conn", None)
        if shared is not None:
            yield shared
            return
        with self._pool.connection() as conn:
            yield conn

    def searcher(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled autocommit connection of a pool only index searches use, read-only; also inside
        ``together`` (a search sees what is committed)."""
        return self._search_pool.connection()

    @contextmanager
    def together(self) -> Iterator[None]:
        """Every write this thread makes inside, through the store or an index in its database,
        commits as one transaction, or none does; in-process wake-ups wait for the commit."""
        if getattr(self._unit, "conn", None) is not None:
            yield
            return
        self._unit.after = []
        try:
            with self._pool.connection() as conn, conn.transaction():
                self._unit.conn = conn
                try:
                    yield
                finally:
                    self._unit.conn = None
            for wake in self._unit.after:
                wake()
        finally:
            self._unit.after = []

    def _after_commit(self, wake: Callable[[], None]) -> None:
        """Run ``wake`` once this thread's writes are committed (at once outside ``together``)."""
        if getattr(self._unit, "conn", None) is not None:
            self._unit.after.append(wake)
        else:
            wake()

    def check_fence(self, conn: Any) -> None:
        """Inside ``conn``'s transaction: ``LeaseLost`` if the calling worker runs under a
        ``_fence.fenced`` lease that this store no longer holds at its epoch."""
        fence = _fence.current()
        if fence is not None:
            self._leases.check(conn, fence)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        """A write transaction, fenced when the caller runs under a lease."""
        with self.connection() as conn:
            self.check_fence(conn)
            yield conn

    def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _poke(self, channel: str) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_notify(%s, '')", (channel,))

    def compact(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum gives space back."""

    def close(self) -> None:
        """Stop the threads, release every lease and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._wakeups.close()
        self._listener.close()
        self._leases.close()
        self._pool.close()
        self._search_pool.close()

    # -- waiting ----------------------------------------------------------------------------------

    def wait_for_log(self, collection: str, after: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        seen = self._wakeups.log_marks(collection)
        while True:
            if self.head_seq(collection) > after:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wakeups.closed:
                return False
            marks = self._wakeups.wait_log(collection, seen, min(remaining, POLL_S))
            if self._wakeups.closed:
                return False
            if marks[1] != seen[1]:  # a wake: stop waiting
                return self.head_seq(collection) > after
            seen = marks

    def wake(self, collection: str) -> None:
        self._wakeups.wake(collection)

    def publish_applied(self, collection: str, version: str, seq: int) -> None:
        """Keep the position in the database (never lowering it) and tell every process."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO es_applied(collection, version, seq) VALUES (%s, %s, %s) "
                "ON CONFLICT (collection, version) "
                "DO UPDATE SET seq = GREATEST(es_applied.seq, EXCLUDED.seq)",
                (collection, version, seq),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (APPLIED, json.dumps([collection, version, seq])))
        self._after_commit(lambda: self._wakeups.applied(collection, version, seq))

    def published_applied(self, collection: str, version: str) -> int | None:
        rows = self._fetch(
            "SELECT seq FROM es_applied WHERE collection = %s AND version = %s", (collection, version)
        )
        return int(rows[0][0]) if rows else None

    def wait_applied(self, collection: str, version: str, seq: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            known = self._wakeups.applied_at(collection, version)
            if known is not None and known >= seq:
                return True
            stored = self.published_applied(collection, version)
            if stored is not None and stored >= seq:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wakeups.closed:
                return False
            if self._wakeups.wait_applied(collection, version, seq, min(remaining, POLL_S)):
                return True
            if self._wakeups.closed:
                return False

    # -- the cluster ------------------------------------------------------------------------------

    def try_lease(self, name: str) -> int | None:
        return self._leases.try_lease(name)

    def lease_epoch(self, name: str) -> int | None:
        return self._leases.lease_epoch(name)

    def release_lease(self, name: str) -> None:
        self._leases.release(name)

    def wait_control(self, after: int, timeout_s: float) -> int:
        return self._wakeups.wait_control(after, timeout_s)
