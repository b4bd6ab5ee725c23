"""The query log (``buffered.QueryLog``): routed searches kept for judging a candidate on real
traffic, in ``querylog.db`` of the data dir (``sqlite.py``), or in the store's database when
several processes share it (``postgres.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from ..._pg import Host
from ...store.base import ClusterStore
from . import sqlite
from .base import LoggedQuery, QueryRows
from .buffered import MAX_BUFFER, QueryLog
from .sqlite import FILE_NAME

__all__ = ["FILE_NAME", "MAX_BUFFER", "LoggedQuery", "QueryLog", "QueryRows", "open_query_log"]


def open_query_log(
    data_dir: Path,
    store: ClusterStore | None,
    size: int,
    retention_s: float,
    flush_interval_s: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> QueryLog:
    """The query log of an engine: in ``data_dir``, or in the store's database when ``store`` is
    shared by several processes (PostgreSQL). Off (``size`` 0), what an earlier run kept there is
    deleted."""
    shared = store is not None and store.shared
    if shared:
        from . import postgres

        host = cast(Host, store)
        if size <= 0:
            postgres.erase(host)
            return QueryLog(None, 0, retention_s)
        return QueryLog(postgres.PostgresQueryRows(host), size, retention_s, flush_interval_s, clock)
    if size <= 0:
        sqlite.erase(data_dir)
        return QueryLog(None, 0, retention_s)
    return QueryLog(sqlite.SqliteQueryRows(data_dir), size, retention_s, flush_interval_s, clock)
