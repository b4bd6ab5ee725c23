"""The query log: an opt-in, bounded, best-effort record of the searches each collection answered,
so that a candidate version can be judged on real traffic (``comparison.py``).

Promises:
- off (``size`` 0, the default) nothing is recorded, and a log left by an earlier run is deleted
  when the engine opens (``open_query_log``), so turning it off also erases what was kept;
- ``record`` never touches the database and never blocks on it: it appends to an in-memory buffer
  of at most ``MAX_BUFFER`` entries (the oldest is dropped if the writer falls behind) that a
  background thread writes about every ``flush_interval_s``;
- at most ``size`` queries per collection are kept (the newest), and none older than
  ``retention_s``; both are enforced at every flush and before every read;
- only routed searches are kept, not those that name a ``version``; of each: the query text (or
  the ``like`` record's kind and id), the kind searched, ``k``, the version that answered and the
  time. Query texts are user data: see docs/operations.md;
- when several processes share the store, they share one log: a sample drawn through any of them
  draws from every process's queries written so far (each one's last flush interval excepted).

Not durable on purpose: the log is not part of the change log, and up to ``flush_interval_s`` of
queries are lost on ``kill -9``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from ...specs import SearchRequest
from .base import LoggedQuery, QueryRows

log = logging.getLogger("embedswitch")

MAX_BUFFER = 10_000
"""Queries held in memory between flushes, at most; past it the oldest are dropped (and counted)."""


class QueryLog:
    """The query log of one engine (all its collections), kept in ``rows`` (None when off)."""

    def __init__(
        self,
        rows: QueryRows | None,
        size: int,
        retention_s: float,
        flush_interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.size = size if rows is not None else 0
        self.retention_s = retention_s
        self.dropped = 0
        self._clock = clock
        self._rows = rows if self.size > 0 else None
        self._buffer: deque[LoggedQuery] = deque()
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._rows is not None:
            self._thread = threading.Thread(
                target=self._run, args=(flush_interval_s,), name="querylog", daemon=True
            )
            self._thread.start()

    @property
    def enabled(self) -> bool:
        return self.size > 0

    # -- the search path ----------------------------------------------------------------------

    def record(self, collection: str, request: SearchRequest, version: str) -> None:
        """Remember one answered search; O(1), in memory only (see the module docstring). A
        search that named its ``version`` (debugging, a look at a candidate) is not live traffic
        and is not recorded."""
        if not self.enabled or request.version is not None:
            return
        like = request.like
        entry = LoggedQuery(
            collection=collection,
            ts=self._clock(),
            kind=request.kind,
            k=request.k,
            version=version,
            text=request.text if like is None else None,
            like_kind=like.kind if like is not None else None,
            like_id=like.id if like is not None else None,
        )
        with self._buffer_lock:
            if len(self._buffer) >= min(MAX_BUFFER, self.size):
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(entry)

    # -- reading --------------------------------------------------------------------------------

    def count(self, collection: str) -> int:
        """Queries of ``collection`` kept now (buffered ones included, expired ones not)."""
        if self._rows is None:
            return 0
        self.flush()
        return self._rows.count(collection)

    def sample(self, collection: str, n: int, seed: int) -> tuple[list[LoggedQuery], int]:
        """Up to ``n`` kept queries of ``collection``, drawn uniformly without replacement (a query
        asked often is drawn as often as it was asked), and how many were kept to draw from."""
        rows = self._rows
        if rows is None:
            return [], 0
        self.flush()
        ids = rows.ids(collection)
        chosen = random.Random(seed).sample(ids, min(n, len(ids)))
        found: dict[int, LoggedQuery] = {}
        for start in range(0, len(chosen), 500):
            found.update(rows.get(chosen[start : start + 500]))
        return [found[i] for i in chosen if i in found], len(ids)

    # -- writing --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the buffered queries, then drop what is past the size bound or the retention."""
        rows = self._rows
        if rows is None:
            return
        with self._flush_lock:
            with self._buffer_lock:
                batch = list(self._buffer)
                self._buffer.clear()
            rows.append(batch, self._clock() - self.retention_s, self.size)

    def forget(self, collection: str) -> None:
        """Delete every query of ``collection`` (the collection was deleted)."""
        if self._rows is None:
            return
        with self._buffer_lock:
            kept = [q for q in self._buffer if q.collection != collection]
            self._buffer = deque(kept)
        self._rows.forget(collection)

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:  # best effort: the next flush retries; searches are unaffected
                log.exception("writing the query log failed")

    def close(self) -> None:
        """Write what is buffered and close the rows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._rows is not None:
            self.flush()
            self._rows.close()
            self._rows = None
