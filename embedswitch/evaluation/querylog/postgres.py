"""The query log's rows in the shared store's PostgreSQL database (``es_querylog``): one log for
every process sharing the store."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..._pg import Host, create_tables
from .base import COLUMNS, LoggedQuery

log = logging.getLogger("embedswitch")

SCHEMA = """
CREATE TABLE IF NOT EXISTS es_querylog(
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, collection TEXT NOT NULL,
  ts DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, k INTEGER NOT NULL, version TEXT NOT NULL,
  text TEXT, like_kind TEXT, like_id TEXT);
CREATE INDEX IF NOT EXISTS es_querylog_by_collection ON es_querylog(collection, id);
CREATE INDEX IF NOT EXISTS es_querylog_by_ts ON es_querylog(ts);
"""


class PostgresQueryRows:
    """``QueryRows`` in a database that several processes share."""

    def __init__(self, host: Host) -> None:
        self._host = host
        create_tables(host, SCHEMA)

    def append(self, queries: Sequence[LoggedQuery], before: float, size: int) -> None:
        with self._host.connection() as conn:
            if queries:
                with conn.cursor() as cur, cur.copy(f"COPY es_querylog({COLUMNS}) FROM STDIN") as copy:
                    for query in queries:
                        copy.write_row(query.row())
            conn.execute("DELETE FROM es_querylog WHERE ts < %s", (before,))
            for collection in sorted({q.collection for q in queries}):
                conn.execute(
                    "DELETE FROM es_querylog WHERE collection = %s AND id <= (SELECT id FROM es_querylog "
                    "WHERE collection = %s ORDER BY id DESC LIMIT 1 OFFSET %s)",
                    (collection, collection, size),
                )

    def count(self, collection: str) -> int:
        with self._host.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM es_querylog WHERE collection = %s", (collection,))
            return int(row.fetchone()[0])

    def ids(self, collection: str) -> list[int]:
        with self._host.connection() as conn:
            found = conn.execute(
                "SELECT id FROM es_querylog WHERE collection = %s ORDER BY id", (collection,)
            )
            return [row[0] for row in found]

    def get(self, ids: Sequence[int]) -> dict[int, LoggedQuery]:
        with self._host.connection() as conn:
            found = conn.execute(f"SELECT id, {COLUMNS} FROM es_querylog WHERE id = ANY(%s)", (list(ids),))
            return {row[0]: LoggedQuery(*row[1:]) for row in found}

    def forget(self, collection: str) -> None:
        with self._host.connection() as conn:
            conn.execute("DELETE FROM es_querylog WHERE collection = %s", (collection,))

    def close(self) -> None:
        """Nothing to do: the connections are the store's."""


def erase(host: Host) -> None:
    """Delete every logged query of every process sharing the database, if there are any."""
    with host.connection() as conn:
        if conn.execute("SELECT to_regclass('es_querylog')").fetchone()[0] is not None:
            deleted = conn.execute("DELETE FROM es_querylog").rowcount
            if deleted:
                log.info("query logging is off; deleted the %d queries of the shared query log", deleted)
