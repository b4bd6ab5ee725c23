"""The experiments' log: request assignments, feedback, shadow observations, experiment starts and
the shadow/interleave settings. ``ExperimentLog`` (``buffered.py``) buffers the hot path in front of
the tables (``base.ExperimentTables``): a SQLite file of the data dir for the embedded store
(``sqlite.py``), the store's own database when several processes share it (``postgres.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from ..._pg import Host
from ...store.base import ClusterStore
from .base import (
    Assignment,
    ExperimentRow,
    ExperimentTables,
    Feedback,
    FeedbackRow,
    Mode,
    Op,
    RequestCounts,
    ShadowObservation,
)
from .buffered import DEFAULT_RETENTION_S, FLUSH_INTERVAL_S, ExperimentLog
from .sqlite import FILE_NAME, SqliteTables

FIND_WAIT_S = 4 * FLUSH_INTERVAL_S
"""With a shared store, how long feedback waits for an assignment another process has not written
yet (its flush interval, with room for a slow commit) before it is a 404."""

__all__ = [
    "Assignment",
    "ExperimentLog",
    "ExperimentRow",
    "ExperimentTables",
    "Feedback",
    "FeedbackRow",
    "Mode",
    "Op",
    "RequestCounts",
    "ShadowObservation",
    "open_experiment_log",
]


def open_experiment_log(
    data_dir: Path, store: ClusterStore | None, retention_s: float = DEFAULT_RETENTION_S
) -> ExperimentLog:
    """The log of an engine: in ``experiments.db`` of ``data_dir``, or, when ``store`` is shared by
    several processes (PostgreSQL), in the store's database, where they all read and write it."""
    if store is None or not store.shared:
        return ExperimentLog(SqliteTables(data_dir / FILE_NAME), retention_s)
    from .postgres import PostgresTables

    return ExperimentLog(PostgresTables(cast(Host, store)), retention_s, find_wait_s=FIND_WAIT_S)
