"""Wake-ups across processes: one LISTEN connection per store feeding in-process conditions.

A write transaction announces itself with ``pg_notify`` (delivered at its commit, dropped with
its rollback) on one of three channels: ``es_log`` (payload: the collection) when a collection's
change log grew, ``es_applied`` (``[collection, version, seq]``) when a version announced its
applied position, ``es_control`` (the collection) when control state changed. Every process's
``Listener`` turns them into ``Wakeups`` that its waiters block on.

A notification sent while the listening connection is down is lost: after a reconnect every waiter
is woken (it re-reads the database), and waiters poll the database every ``POLL_S`` anyway.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from ..._backoff import Backoff

log = logging.getLogger("embedswitch")

LOG, APPLIED, CONTROL = "es_log", "es_applied", "es_control"
POLL_S = 1.0
"""How often a waiter re-reads the database when no notification comes."""


class Wakeups:
    """In-process state that notifications (and this process's own commits) move, with one
    condition every waiter blocks on; ``close`` ends every wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._log: defaultdict[str, int] = defaultdict(int)  # per collection: commits seen
        self._wakes: defaultdict[str, int] = defaultdict(int)  # per collection: ``wake`` calls
        self._applied: dict[tuple[str, str], int] = {}
        self.control = 0  # control notifications received
        self.closed = False

    def _update(self, change: Callable[[], None]) -> None:
        with self._cond:
            change()
            self._cond.notify_all()

    def log_changed(self, collection: str) -> None:
        self._update(lambda: self._log.__setitem__(collection, self._log[collection] + 1))

    def wake(self, collection: str) -> None:
        self._update(lambda: self._wakes.__setitem__(collection, self._wakes[collection] + 1))

    def applied(self, collection: str, version: str, seq: int) -> None:
        key = (collection, version)
        self._update(lambda: self._applied.__setitem__(key, max(seq, self._applied.get(key, seq))))

    def control_changed(self, collection: str) -> None:
        """Count one control change (a notification)."""

        def change() -> None:
            self.control += 1
            self._forget(collection)

        self._update(change)

    def forget(self, collection: str) -> None:
        """Drop what is cached of the collection's applied positions (a version may be gone)."""
        self._update(lambda: self._forget(collection))

    def _forget(self, collection: str) -> None:
        for key in [key for key in self._applied if key[0] == collection]:
            del self._applied[key]

    def everything(self) -> None:
        """Notifications may have been lost: every waiter re-reads the database."""

        def change() -> None:
            for collection in list(self._log):
                self._log[collection] += 1
            self.control += 1
            self._applied.clear()

        self._update(change)

    def close(self) -> None:
        self._update(lambda: setattr(self, "closed", True))

    # -- waiting ----------------------------------------------------------------------------------

    def log_marks(self, collection: str) -> tuple[int, int]:
        """(commits, wakes) seen so far for ``collection``."""
        with self._cond:
            return self._log[collection], self._wakes[collection]

    def wait_log(self, collection: str, seen: tuple[int, int], timeout_s: float) -> tuple[int, int]:
        """The marks once they differ from ``seen`` (or at the timeout, or when closed)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.closed or (self._log[collection], self._wakes[collection]) != seen,
                timeout=timeout_s,
            )
            return self._log[collection], self._wakes[collection]

    def applied_at(self, collection: str, version: str) -> int | None:
        with self._cond:
            return self._applied.get((collection, version))

    def wait_applied(self, collection: str, version: str, seq: int, timeout_s: float) -> bool:
        """True once a notification says ``version`` applied ``seq``; False at the timeout."""
        with self._cond:
            return (
                self._cond.wait_for(
                    lambda: self._applied.get((collection, version), -1) >= seq or self.closed,
                    timeout=timeout_s,
                )
                and self._applied.get((collection, version), -1) >= seq
            )

    def wait_control(self, after: int, timeout_s: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.control > after or self.closed, timeout=timeout_s)
            return self.control


class Listener:
    """One autocommit connection that LISTENs on the store's channels, in a thread of its own,
    reconnecting (with backoff) when the connection drops."""

    def __init__(self, conninfo: str, wakeups: Wakeups, poke: Callable[[str], None]) -> None:
        self._conninfo = conninfo
        self._wakeups = wakeups
        self._poke = poke  # sends a notification on a channel (to stop the thread at once)
        self._stop_channel = f"es_stop_{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = self._connect()  # fail at open, not later
        self._thread = threading.Thread(target=self._run, name="embedswitch-pg-listener", daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        for channel in (LOG, APPLIED, CONTROL, self._stop_channel):
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return conn

    def _run(self) -> None:
        backoff = Backoff(initial_s=0.05, max_s=2.0)
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                    backoff.reset()
                    self._wakeups.everything()
                for note in self._conn.notifies(timeout=POLL_S):
                    if self._stop.is_set():
                        break
                    self._dispatch(note.channel, note.payload)
            except psycopg.Error as exc:
                log.warning("PostgreSQL store: the notification connection failed (%s); reconnecting", exc)
                self._drop()
                self._stop.wait(backoff.next_delay())
        self._drop()

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == LOG:
            self._wakeups.log_changed(payload)
        elif channel == APPLIED:
            collection, version, seq = json.loads(payload)
            self._wakeups.applied(collection, version, int(seq))
        elif channel == CONTROL:
            self._wakeups.control_changed(payload)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Stop the thread (at once, when the database is reachable) and close the connection."""
        self._stop.set()
        with contextlib.suppress(psycopg.Error):  # else the thread sees the stop at its next poll
            self._poke(self._stop_channel)
        self._thread.join(timeout=2 * POLL_S + 5)
