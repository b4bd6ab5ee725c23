"""The tables of the ``pgvector`` index: ``es_indexes`` (which table holds which index, and what
built it), one table per index, the SQL run on them, and the adapters that carry vectors; and
``StoreTable``, what every index kept in the store's database shares (``pgvector``, ``pgbm25``).

``es_indexes(collection, version, kind, table_name, dim, fingerprint, live, created_at)`` has one
row per index; ``live`` counts its live vectors, kept by every write in its own transaction. An
index's table is ``id text PRIMARY KEY, seq bigint NOT NULL, embedding vector(dim)`` (NULL: a
tombstone), with a partial index on the tombstones' seq and, once built, an HNSW index on
``embedding`` with ``vector_ip_ops``.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Buffer, Dumper, Loader
from psycopg.pq import Format

from embedswitch._errors import IndexMismatch, Unavailable
from embedswitch.index import _pgfilter as restricted
from embedswitch.index._checks import closed
from embedswitch.index.base import IndexHost, IndexMeta
from embedswitch.index.specs import PgvectorSpec

MIN_PGVECTOR = (0, 8)
"""Iterative index scans (exclusions that still return ``k`` hits) came with pgvector 0.8."""
DDL_LOCK = 0x65735F696E646578  # "es_index": serialises the DDL of es_indexes and its tables

REGISTRY = """
CREATE TABLE IF NOT EXISTS es_indexes (
    collection text NOT NULL,
    version text NOT NULL,
    kind text NOT NULL,
    table_name text NOT NULL UNIQUE,
    dim integer NOT NULL,
    fingerprint text NOT NULL,
    live bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, version, kind)
)"""
KEY = "collection = %(collection)s AND version = %(version)s AND kind = %(kind)s"
MINE = KEY + " AND table_name = %(table)s"
"""An index's row of ``es_indexes``; with the table name, so a handle on a destroyed index never
reaches the table of a version created again under the same name."""
LIVE = f"SELECT live FROM es_indexes WHERE {MINE}"
LOCK = LIVE + " FOR UPDATE"
COUNT = f"UPDATE es_indexes SET live = live + %(delta)s WHERE {MINE}"

SETTINGS = f"""
SELECT set_config('transaction_read_only', 'on', true),
       set_config('hnsw.ef_search', %(ef)s, true),
       set_config('hnsw.iterative_scan', 'relaxed_order', true),
       set_config('hnsw.max_scan_tuples', %(max_scan)s, true),
       set_config('enable_indexscan', CASE WHEN live < %(exact_below)s THEN 'off' ELSE 'on' END, true),
       set_config('enable_seqscan', CASE WHEN live < %(exact_below)s THEN 'on' ELSE 'off' END, true)
FROM es_indexes WHERE {MINE}"""
"""Run before a restricted search (a filter, knobs), in its transaction: exact while the index
holds fewer than ``exact_below`` live vectors, else HNSW whatever the planner's estimates (a small
table, many excluded ids) would pick."""
SESSION = """
SELECT set_config('hnsw.ef_search', %(ef)s, false),
       set_config('hnsw.max_scan_tuples', %(max_scan)s, false),
       set_config('hnsw.iterative_scan', 'relaxed_order', false),
       set_config('enable_seqscan', 'off', false)"""
"""The settings of a plain search, for the session of a connection that only searches use
(``IndexHost.searcher``): HNSW whatever the planner's estimates would pick; an exact search orders
by an expression the HNSW index can't serve."""

LOAD_TABLE = "es_vec_load"
CREATE_LOAD = f"CREATE TEMP TABLE {LOAD_TABLE} (id text, seq bigint, embedding vector) ON COMMIT DROP"
COPY_LOAD = f"COPY {LOAD_TABLE} FROM STDIN (FORMAT BINARY)"

# Each write is one statement: the rows that pass the seq guard, and how many of them were live
# before (read per row through the primary key in the statement's snapshot, taken once the
# write's turn came, so nothing changes them meanwhile).
_UPSERT = """
WITH src AS (
    SELECT s.id, s.seq, s.embedding,
           (SELECT t.embedding IS NOT NULL FROM {table} t WHERE t.id = s.id) AS was_live
    FROM {source}
), changed AS (
    INSERT INTO {table} AS t (id, seq, embedding) SELECT id, seq, embedding FROM src
    ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, embedding = EXCLUDED.embedding
    WHERE t.seq < EXCLUDED.seq
    RETURNING t.id
)
SELECT count(*), count(*) FILTER (WHERE src.was_live IS NOT TRUE) FROM changed JOIN src USING (id)"""
_UNNEST = "unnest(%(ids)s::text[], %(seqs)s::bigint[], %(vectors)b::vector[]) AS s(id, seq, embedding)"
_DELETE = """
WITH src AS (
    SELECT s.id, s.seq, (SELECT t.embedding IS NOT NULL FROM {table} t WHERE t.id = s.id) AS was_live
    FROM unnest(%(ids)s::text[], %(seqs)s::bigint[]) AS s(id, seq)
), changed AS (
    INSERT INTO {table} AS t (id, seq, embedding) SELECT id, seq, NULL FROM src
    ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, embedding = NULL
    WHERE t.seq < EXCLUDED.seq
    RETURNING t.id
)
SELECT count(*) FILTER (WHERE src.was_live) FROM changed JOIN src USING (id)"""
_SEARCH = (
    "SELECT id, embedding <#> %(q)b AS distance FROM {table} WHERE embedding IS NOT NULL{skip} "
    "ORDER BY {order} LIMIT %(k)s"
)
_EXCLUDING = " AND id <> ALL(%(excluded)s)"
_EXACT_ORDER = "(embedding <#> %(q)b) + 0"  # an expression the HNSW index can't serve: a full scan
_WITH_FIELDS = (  # the hits' record fields in the search's own round trip and snapshot; a
    # subquery per hit: a join could scan every record of the kind on a stale row estimate
    "SELECT h.id, h.distance, (SELECT r.fields FROM es_records r WHERE r.collection = %(collection)s "
    "AND r.kind = %(kind)s AND r.id = h.id) FROM ({search}) h"
)


def _search(table: str, fields: bool, excluding: bool, exact: bool) -> str:
    text = _SEARCH.format(
        table=table, skip=_EXCLUDING if excluding else "", order=_EXACT_ORDER if exact else "distance"
    )
    return _WITH_FIELDS.format(search=text) if fields else text


@dataclass(frozen=True)
class Statements:
    """The SQL of one index, its table's name in it (formatted once: searches are hot)."""

    upsert: str  # rows from unnest(...) of the parameters
    upsert_loaded: str  # rows from the COPY's temp table
    delete: str
    forget_tombstones: str
    searches: dict[tuple[bool, bool, bool], str]
    """By (with each hit's record fields: the database holds the store's records, excluding ids,
    exact): the search."""
    get: str

    @classmethod
    def of(cls, table: str) -> Statements:
        t = sql.Identifier(table).as_string(None)
        return cls(
            upsert=_UPSERT.format(table=t, source=_UNNEST),
            upsert_loaded=_UPSERT.format(table=t, source=f"{LOAD_TABLE} AS s"),
            delete=_DELETE.format(table=t),
            forget_tombstones=f"DELETE FROM {t} WHERE embedding IS NULL AND seq <= %s",
            searches={
                (f, x, e): _search(t, f, x, e) for f, x, e in itertools.product((False, True), repeat=3)
            },
            get=f"SELECT id, embedding FROM {t} WHERE id = ANY(%s) AND embedding IS NOT NULL",
        )


# --- vectors on the wire --------------------------------------------------------------------------


class VectorDumper(Dumper):
    """A 1-d float array as pgvector's binary ``vector``; subclassed with the database's type oid."""

    format = Format.BINARY

    def dump(self, obj: np.ndarray) -> Buffer:
        return struct.pack(">HH", len(obj), 0) + np.asarray(obj, dtype=">f4").tobytes()


class VectorLoader(Loader):
    """pgvector's binary ``vector`` as a float32 array of its own."""

    format = Format.BINARY

    def load(self, data: Buffer) -> np.ndarray:
        return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


# --- DDL --------------------------------------------------------------------------------------------


def ensure_extension(conn: psycopg.Connection[Any]) -> None:
    """Create the pgvector extension if missing (it takes the right to); refuse one before 0.8."""
    version_of = "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
    row = conn.execute(version_of).fetchone()
    if row is None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise Unavailable(
                f"the store's database has no pgvector extension and it could not be created ({exc}); "
                "install pgvector 0.8 or newer on the server and run CREATE EXTENSION vector as its owner"
            ) from exc
        row = conn.execute(version_of).fetchone()
        assert row is not None
    version = tuple(int(part) for part in str(row[0]).split(".")[:2] if part.isdigit())
    if version < MIN_PGVECTOR:
        raise Unavailable(
            f"the store's database has pgvector {row[0]}; the pgvector index needs 0.8 or newer "
            "(iterative index scans): upgrade it on the server, then ALTER EXTENSION vector UPDATE"
        )


def create_table(conn: psycopg.Connection[Any], meta: IndexMeta, spec: PgvectorSpec) -> str:
    """Create a fresh table for ``meta``'s index and register it; returns its name."""
    table = f"es_vec_{secrets.token_hex(16)}"
    t = sql.Identifier(table)
    conn.execute(
        sql.SQL("CREATE TABLE {} (id text PRIMARY KEY, seq bigint NOT NULL, embedding vector({}))").format(
            t, sql.Literal(meta.dim)
        )
    )
    # forget_tombstones finds them by seq without reading the vectors
    dead = sql.Identifier(f"{table}_dead")
    conn.execute(sql.SQL("CREATE INDEX {} ON {} (seq) WHERE embedding IS NULL").format(dead, t))
    if spec.exact_below == 0:
        conn.execute(hnsw_ddl(table, spec))
    conn.execute(
        "INSERT INTO es_indexes (collection, version, kind, table_name, dim, fingerprint) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        [meta.collection, meta.version, meta.kind, table, meta.dim, meta.fingerprint],
    )
    return table


def hnsw_name(table: str) -> str:
    return f"{table}_hnsw"


def hnsw_ddl(table: str, spec: PgvectorSpec) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {} ON {} USING hnsw (embedding vector_ip_ops) "
        "WITH (m = {}, ef_construction = {})"
    ).format(
        sql.Identifier(hnsw_name(table)),
        sql.Identifier(table),
        sql.Literal(spec.m),
        sql.Literal(spec.ef_construction),
    )


def check_meta(meta: IndexMeta, table: str, *, dim: int, fingerprint: str) -> None:
    """Raise ``IndexMismatch`` when the registered index was built by another model."""
    where = f"index {meta.collection}/{meta.version}/{meta.kind} (table {table})"
    if fingerprint != meta.fingerprint:
        raise IndexMismatch(
            f"{where} was built by model {fingerprint[:12]}, not {meta.fingerprint[:12]}; open it with "
            "the same model spec, or create a new version for the new model",
            field="fingerprint",
            on_disk=fingerprint,
            requested=meta.fingerprint,
        )
    if dim != meta.dim:
        raise IndexMismatch(
            f"{where} holds {dim}-dim vectors, not {meta.dim}-dim; open it with the model that built "
            "it, or create a new version",
            field="dim",
            on_disk=dim,
            requested=meta.dim,
        )


@contextlib.contextmanager
def translated(meta: IndexMeta) -> Iterator[None]:
    """psycopg's errors of a lost table or a lost database as ``Unavailable``."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        raise Unavailable(
            f"index {meta.collection}/{meta.version}/{meta.kind} lost its table ({exc}); reopen the version",
            collection=meta.collection,
            version=meta.version,
        ) from exc
    except psycopg.OperationalError as exc:
        raise Unavailable(
            f"the database of index {meta.collection}/{meta.version}/{meta.kind} is unreachable: {exc}",
            collection=meta.collection,
            version=meta.version,
        ) from exc


class StoreTable:
    """What the indexes kept in the store's database (``pgvector``, ``pgbm25``) share: the table of
    one (version, kind), its row in the ``REGISTRY_TABLE`` (with its live count), the tombstone rows
    (``LIVE`` NULL), and every read and lifecycle step that does not depend on what a row holds."""

    REGISTRY_TABLE = "es_indexes"
    """The table that names each index's table and counts its live rows."""
    LIVE = "embedding"
    """The column a tombstone row holds NULL in."""

    def __init__(self, host: IndexHost, meta: IndexMeta, table: str) -> None:
        self.meta = meta
        self.host = host
        self.table = table
        self._t = sql.Identifier(table).as_string(None)
        self._key = {
            "collection": meta.collection,
            "version": meta.version,
            "kind": meta.kind,
            "table": table,
        }
        self._has_records: bool | None = None
        self._closed = False

    @classmethod
    def stored_kinds(cls, host: IndexHost, collection: str, version: str) -> list[str]:
        """The record kinds that have an index of this type for ``version`` in ``host``'s database."""
        with host.connection() as conn:
            if conn.execute("SELECT to_regclass(%s)", [cls.REGISTRY_TABLE]).fetchone() == (None,):
                return []
            rows = conn.execute(
                f"SELECT kind FROM {cls.REGISTRY_TABLE} WHERE collection = %s AND version = %s ORDER BY kind",
                [collection, version],
            ).fetchall()
        return [kind for (kind,) in rows]

    def checkpoint(self) -> None:
        """Nothing to do: every write committed when it returned."""
        self._check_open()

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        self._check_open()
        with self._reading() as conn:
            row = conn.execute(f"SELECT seq FROM {self._t} WHERE id = %s", [id]).fetchone()
        return None if row is None else int(row[0])

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        self._check_open()
        with self._reading() as conn:
            return [id_ for (id_,) in conn.execute(f"SELECT id FROM {self._t} WHERE {self.LIVE} IS NOT NULL")]

    def __len__(self) -> int:
        """Live rows (tombstones not counted)."""
        self._check_open()
        with self._reading() as conn:
            row = conn.execute(f"SELECT live FROM {self.REGISTRY_TABLE} WHERE {MINE}", self._key).fetchone()
        if row is None:
            raise self._gone()
        return int(row[0])

    def memory_bytes(self) -> int:
        """0: the rows and their indexes live in the database server, not in this process."""
        return 0

    def disk_bytes(self) -> int:
        """Bytes of the table with its indexes and TOAST (``pg_total_relation_size``)."""
        self._check_open()
        with self._reading() as conn:
            row = conn.execute("SELECT pg_total_relation_size(to_regclass(%s))", [self.table]).fetchone()
        if row is None or row[0] is None:
            raise self._gone()
        return int(row[0])

    def close(self) -> None:
        """Stop using the index; its table stays (the host's connections are the host's)."""
        self._closed = True

    def destroy(self) -> None:
        """Close, drop the table and forget it in the registry (fenced like a write)."""
        self._closed = True
        with translated(self.meta), self.host.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [DDL_LOCK])
            self.host.check_fence(conn)
            # a write locks this row, then the table: the same order here, or a write in flight
            # and this drop wait for each other (PostgreSQL ends one: "deadlock detected")
            conn.execute(f"SELECT 1 FROM {self.REGISTRY_TABLE} WHERE {MINE} FOR UPDATE", self._key)
            conn.execute(f"DROP TABLE IF EXISTS {self._t}")
            conn.execute(f"DELETE FROM {self.REGISTRY_TABLE} WHERE {MINE}", self._key)

    def __repr__(self) -> str:
        m = self.meta
        return f"{type(self).__name__}({m.collection!r}/{m.version!r}/{m.kind!r}, table={self.table!r})"

    def _joins_records(self) -> bool:
        """Whether this database holds the store's records (so a filter joins them)."""
        if self._has_records is None:
            with self._reading() as conn:
                found = conn.execute(restricted.HAS_RECORDS).fetchone()
            self._has_records = bool(found and found[0])
        return self._has_records

    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        with translated(self.meta), self.host.connection() as conn:
            yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise closed(self.meta)

    def _gone(self) -> Unavailable:
        m = self.meta
        return Unavailable(
            f"index {m.collection}/{m.version}/{m.kind} (table {self.table}) was destroyed, by this or "
            "another process; reopen the version",
            collection=m.collection,
            version=m.version,
        )
