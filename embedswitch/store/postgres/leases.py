"""Cluster-wide leases on PostgreSQL: session advisory locks on one connection, epochs in a table.

A store that leases opens one autocommit connection for it. Holding lease ``name`` is holding the
session advisory lock ``hashtextextended(name, 0)`` on that connection; taking it also bumps the
row ``es_leases(name)``: its ``epoch`` (the fencing token), ``holder_pid`` (that connection's
backend) and ``heartbeat_at``, which a thread renews every third of the TTL.

A lease ends with ``release``, with its connection (the holder died, or the connection broke:
then every lease of the store is lost, and the next ``try_lease`` reconnects), or when its holder
stops renewing it for the TTL (a paused process): the next process that asks terminates the
holder's lease connection, which frees the lock. The roles of processes sharing a database must
be allowed to terminate each other's connections (the same role is).

A fenced write (``check``) locks the lease row ``FOR KEY SHARE`` in its transaction; a takeover
locks it ``FOR UPDATE`` before it bumps the epoch, so it waits for fenced writes in flight, and
every fenced write after it sees the new epoch. Renewals (``FOR NO KEY UPDATE``) wait for neither.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import psycopg

from ..._errors import LeaseLost
from ..._fence import Fence

log = logging.getLogger("embedswitch")

TERMINATE_WAIT_MS = 5000


class Leases:
    """The leases one store holds, on its own connection, renewed by its own thread. ``_held``
    changes only under ``_lock`` (reads there need no other lock)."""

    def __init__(self, conninfo: str, ttl_s: float) -> None:
        self._conninfo = conninfo
        self.ttl_s = ttl_s
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()  # one user of the connection at a time; taken before _held_lock
        self._held_lock = threading.Lock()  # guards _held (fenced writes read it without waiting)
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="embedswitch-pg-leases", daemon=True)
        self._thread.start()

    # -- the seam ---------------------------------------------------------------------------------

    def try_lease(self, name: str) -> int | None:
        """Take ``name`` if it is free (or its holder's heartbeat is older than the TTL): its new
        epoch; None when another process holds it, this store already does, or the database
        cannot be reached."""
        with self._lock:
            if name in self._held or self._stop.is_set():
                return None
            try:
                conn = self._connection()
                if not self._lock_or_take_over(conn, name):
                    return None
                epoch = self._bump(conn, name)
            except psycopg.errors.LockNotAvailable:
                self._unlock(name)  # a takeover in another process holds the row: try again later
                return None
            except psycopg.OperationalError as exc:
                self._lose_all(f"the lease connection failed: {exc}")
                return None
            self._hold(name, epoch)
            return epoch

    def lease_epoch(self, name: str) -> int | None:
        """The epoch this store holds ``name`` at, checked against the database: None once the
        lease connection is gone or another process took the lease since."""
        with self._lock:
            epoch = self._held.get(name)
            if epoch is None or self._conn is None:
                return None
            try:
                row = self._conn.execute("SELECT epoch FROM es_leases WHERE name = %s", (name,)).fetchone()
            except psycopg.Error as exc:
                self._lose_all(f"the lease connection failed: {exc}")
                return None
            if row is None or row[0] != epoch:
                self._hold(name, None)
                return None
            return epoch

    def release(self, name: str) -> None:
        with self._lock:
            if name in self._held:
                self._hold(name, None)
                self._unlock(name)

    def check(self, conn: Any, fence: Fence) -> None:
        """In ``conn``'s transaction: ``LeaseLost`` unless this store holds ``fence.lease`` and
        its row is still at ``fence.epoch`` (locked until the transaction ends)."""
        row = conn.execute(
            "SELECT epoch FROM es_leases WHERE name = %s FOR KEY SHARE", (fence.lease,)
        ).fetchone()
        with self._held_lock:
            mine = self._held.get(fence.lease)
        if row is None or row[0] != fence.epoch or mine != fence.epoch:
            now = "never taken" if row is None else f"now at epoch {row[0]}"
            raise LeaseLost(
                f"this process no longer holds the lease {fence.lease!r} at epoch {fence.epoch} "
                f"(the lease is {now}): nothing of this write was stored; the worker should stop "
                "and leave the work to the lease's holder",
                lease=fence.lease,
                epoch=fence.epoch,
            )

    def close(self) -> None:
        """Stop renewing, release every lease and close the lease connection."""
        self._stop.set()
        self._thread.join(timeout=self.ttl_s + 5)
        with self._lock:
            self._hold_none()
            if self._conn is not None:
                # free them now: a closed session's locks go only once its backend has exited
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._conn.close()
                self._conn = None

    # -- inside the lock --------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
            # a renewal or takeover never waits long on a row lock: it would hold up the others
            self._conn.execute(f"SET lock_timeout = {max(1, int(self.ttl_s * 1000 / 3))}")
        return self._conn

    def _lock_or_take_over(self, conn: psycopg.Connection[Any], name: str) -> bool:
        """Take the advisory lock of ``name``; when it is busy and its holder's heartbeat is older
        than the TTL, terminate the holder's lease connection first."""
        if self._try_lock(conn, name):
            return True
        stale = conn.execute(
            "SELECT l.pid FROM es_leases e JOIN pg_locks l ON l.locktype = 'advisory' "
            "AND l.granted AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(e.name, 0) "
            "AND l.pid = e.holder_pid "
            "WHERE e.name = %s AND e.heartbeat_at < now() - make_interval(secs => %s)",
            (name, self.ttl_s),
        ).fetchone()
        if stale is None:
            return False
        log.warning(
            "lease %r: its holder (backend %s) has not renewed it for over %g s; taking it over",
            name,
            stale[0],
            self.ttl_s,
        )
        conn.execute("SELECT pg_terminate_backend(%s, %s)", (stale[0], TERMINATE_WAIT_MS))
        deadline = time.monotonic() + 2.0
        while not self._try_lock(conn, name):  # the lock goes when the backend is gone
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    @staticmethod
    def _try_lock(conn: psycopg.Connection[Any], name: str) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
        return bool(row and row[0])

    @staticmethod
    def _bump(conn: psycopg.Connection[Any], name: str) -> int:
        """The lease row's next epoch, with this connection as its holder."""
        with conn.transaction():
            conn.execute(
                "INSERT INTO es_leases(name, epoch, holder_pid, heartbeat_at) "
                "VALUES (%s, 0, pg_backend_pid(), now()) ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            conn.execute("SELECT 1 FROM es_leases WHERE name = %s FOR UPDATE", (name,))
            row = conn.execute(
                "UPDATE es_leases SET epoch = epoch + 1, holder_pid = pg_backend_pid(), "
                "heartbeat_at = now() WHERE name = %s RETURNING epoch",
                (name,),
            ).fetchone()
        assert row is not None  # inserted above if it was missing
        return int(row[0])

    def _unlock(self, name: str) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
        except psycopg.Error as exc:
            self._lose_all(f"the lease connection failed: {exc}")

    def _hold(self, name: str, epoch: int | None) -> None:
        with self._held_lock:
            if epoch is None:
                self._held.pop(name, None)
            else:
                self._held[name] = epoch

    def _hold_none(self) -> None:
        with self._held_lock:
            self._held.clear()

    def _lose_all(self, why: str) -> None:
        if self._held:
            log.warning("PostgreSQL store: leases %s lost: %s", sorted(self._held), why)
        self._hold_none()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- renewing ---------------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            with self._lock:
                self._renew()

    def _renew(self) -> None:
        """Renew every held lease; drop those whose row moved on (another process took them)."""
        if not self._held or self._conn is None:
            return
        names, epochs = zip(*self._held.items(), strict=True)
        try:
            renewed = {
                row[0]
                for row in self._conn.execute(
                    "UPDATE es_leases e SET heartbeat_at = now() "
                    "FROM unnest(%s::text[], %s::bigint[]) AS h(name, epoch) "
                    "WHERE e.name = h.name AND e.epoch = h.epoch AND e.holder_pid = pg_backend_pid() "
                    "RETURNING e.name",
                    (list(names), list(epochs)),
                )
            }
        except psycopg.errors.LockNotAvailable:
            return  # a takeover holds a row: it is taking that lease; the next round sees it
        except psycopg.Error as exc:
            self._lose_all(f"renewing them failed: {exc}")
            return
        for name in set(names) - renewed:
            log.warning("PostgreSQL store: lease %r lost: another process took it over", name)
            self._hold(name, None)
