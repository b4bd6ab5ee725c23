"""The ``pgvector`` index: the vectors of one (collection, version, kind) in a table of the
PostgreSQL store's database, searched with pgvector's HNSW, shared by every process of a cluster.

Beyond ``VectorIndex``'s promises:

- every write is one transaction, committed before the call returns (so ``durable`` is always
  true and ``checkpoint`` does nothing), and fenced: it calls ``host.check_fence`` inside that
  transaction, so a worker that lost its cluster lease stores nothing of it (``LeaseLost``);
- writes to one index take turns (each locks the index's row of ``es_indexes`` first, as the
  embedded indexes' writers take a mutex). Reads run in transactions of their own, take no lock a
  write holds, so wait for no write and no other read, and see every write committed before they
  began. A plain search (no filter, no knobs) is one autocommit statement, the hits' record fields
  read in it, on a connection that only searches use (``host.searcher``, read-only): its session
  holds the search's settings (``tables.SESSION``), set again only when a search needs others;
- the table is ``id text PRIMARY KEY, seq bigint, embedding vector(dim)``; a delete keeps its row,
  ``embedding`` NULL, as the tombstone. Its short physical name (``es_vec_`` and 32 random hex
  digits, fresh for every table created, so a handle on a destroyed index never reaches its
  successor) and the meta that built it are kept in ``es_indexes``; opening it with another
  fingerprint or dim is an ``IndexMismatch``;
- scores are inner products (pgvector's ``<#>`` negated), computed in float32 like the embedded
  indexes', so they agree to float32 rounding; ``get`` returns vectors exactly as written.

Limits:

- HNSW is approximate: recall@10 depends on the data and ``ef_search`` (``bench/pgvector_index.py``
  measures it beside hnswlib). While the table holds fewer than ``exact_below`` live vectors every
  query is an exact sequential scan (by the count this process last wrote or read, at most
  ``LIVE_TTL_S`` old: another process's writes may take that long to switch it); the HNSW index is
  built, in bulk, by the write that first takes the table to ``exact_below`` (that write waits for
  the build; reads don't).
- A search sets ``hnsw.ef_search`` to ``max(ef_search, k + excluded ids)``, capped at 1000 (pgvector's
  limit), and scans iteratively (``hnsw.iterative_scan = relaxed_order``, pgvector >= 0.8, checked
  at open), so that exclusions and not yet vacuumed deletes still leave ``k`` hits; an iterative
  scan stops after ``hnsw.max_scan_tuples`` rows (raised to twice ``k`` plus the excluded ids), so
  a search excluding most of a huge table may return fewer.
- pgvector's HNSW takes vectors of up to 2,000 dimensions. Replaced and deleted vectors leave dead
  rows (and graph nodes) that autovacuum reclaims, as for any PostgreSQL table.
- A search costs one statement on a pooled connection: 0.95x the same SQL run by hand in a pooled
  transaction, 1.06x on one autocommit connection, at 100,000 x 384 (``bench/pgvector_index.py``).
- The host's transactions must be READ COMMITTED (PostgreSQL's default): each write's statements
  must see the writes committed while it waited for its turn.
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg.types import TypeInfo

from embedswitch import _json
from embedswitch._errors import InvalidRequest
from embedswitch.filters import Filter
from embedswitch.index import _pgfilter as restricted
from embedswitch.index import _pgtables as tables
from embedswitch.index._checks import check_k, check_queries, check_seqs, check_vectors
from embedswitch.index._ids import IdMap
from embedswitch.index.base import Allowed, Hit, IndexHost, IndexMeta, Ranked, SearchParams
from embedswitch.index.specs import PGVECTOR_MAX_EF, PgvectorSpec

MAX_DIM = 2000
"""The most dimensions pgvector's HNSW indexes for the ``vector`` type."""
COPY_ABOVE = 2000
"""Upserts of more ids than this (a backfill page, a vector load) send their rows by COPY."""
LIVE_TTL_S = 1.0
"""How long a search trusts the live count it last wrote or read, to choose exact or HNSW (another
process's writes may have moved it)."""
MAX_SCAN_TUPLES = 20_000
"""pgvector's default ``hnsw.max_scan_tuples``; a search raises it for many exclusions."""


_SESSIONS: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()
"""Per searcher connection: the (ef, max_scan) its session was last set to (``tables.SESSION``);
its adapters carry numpy rows as ``vector`` once it is in here."""


class PgvectorIndex(tables.StoreTable):
    """A ``VectorIndex`` in the host's PostgreSQL database; see the module docstring."""

    index_type = "pgvector"
    precision = "f32"

    def __init__(
        self, host: IndexHost, meta: IndexMeta, spec: PgvectorSpec, table: str, vector_type: TypeInfo
    ) -> None:
        """Use the table ``table`` that ``open`` found or created; ``vector_type``: the database's."""
        super().__init__(host, meta, table)
        self.spec = spec
        self._sql = tables.Statements.of(table)
        self._type = vector_type
        self._dumper = type("VectorDumper", (tables.VectorDumper,), {"oid": vector_type.oid})
        self._has_hnsw = False
        self._live: tuple[float, int] | None = None  # (when, live vectors) as last written or read

    @classmethod
    def from_spec(cls, spec: PgvectorSpec, host: IndexHost, meta: IndexMeta) -> PgvectorIndex:
        return cls.open(host, meta, spec)

    @classmethod
    def open(cls, host: IndexHost, meta: IndexMeta, spec: PgvectorSpec | None = None) -> PgvectorIndex:
        """Open the index of ``meta``'s (collection, version, kind) in ``host``'s database, creating
        its table (and the pgvector extension and ``es_indexes``, if missing) the first time; that
        is a write, fenced.

        Raises ``IndexMismatch`` when it was built with another fingerprint or dim, ``Unavailable``
        when the database lacks pgvector >= 0.8, ``InvalidRequest`` past 2,000 dimensions."""
        spec = spec or PgvectorSpec()
        if meta.dim > MAX_DIM:
            raise InvalidRequest(
                f"pgvector's HNSW indexes vectors of up to {MAX_DIM} dimensions, not {meta.dim}; use an "
                "embedded index type (hnsw, usearch) or a model with fewer dimensions",
                collection=meta.collection,
                version=meta.version,
            )
        key = {"collection": meta.collection, "version": meta.version, "kind": meta.kind}
        with tables.translated(meta), host.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [tables.DDL_LOCK])
            tables.ensure_extension(conn)
            conn.execute(tables.REGISTRY)
            found = conn.execute(
                f"SELECT table_name, dim, fingerprint FROM es_indexes WHERE {tables.KEY}", key
            )
            row = found.fetchone()
            if row is None:
                host.check_fence(conn)
                table = tables.create_table(conn, meta, spec)
            else:
                table = row[0]
                tables.check_meta(meta, table, dim=row[1], fingerprint=row[2])
            oids = conn.execute("SELECT oid, typarray FROM pg_type WHERE oid = 'vector'::regtype").fetchone()
        assert oids is not None
        return cls(host, meta, spec, table, TypeInfo("vector", int(oids[0]), int(oids[1])))

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Store each vector under its id unless the id has seen a seq >= its seq; returns how many.
        Committed (durable) when it returns, whatever ``durable`` says."""
        vecs = check_vectors(vectors, len(ids), self.meta, what="vectors")
        # PostgreSQL refuses to change one row twice in a statement: the latest write per id only
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        rows = [row for row, _ in latest.values()]
        params = {
            "ids": list(latest),
            "seqs": [seq for _, seq in latest.values()],
            "vectors": list(vecs[rows]),
        }
        by_copy = len(rows) > COPY_ABOVE
        with self._writing() as (cur, live):
            if by_copy:
                self._copy_in(cur, params)
            cur.execute(self._sql.upsert_loaded if by_copy else self._sql.upsert, params)
            changed, revived = _one(cur)
            self._count(cur, live, revived)
        self._live = (time.monotonic(), live + revived)
        return int(changed)

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Tombstone each id unless it has seen a seq >= its seq (ids never seen included, so an
        older upsert arriving later is a no-op); returns how many vectors were removed."""
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        params = {"ids": list(latest), "seqs": [seq for _, seq in latest.values()]}
        with self._writing() as (cur, live):
            cur.execute(self._sql.delete, params)
            (removed,) = _one(cur)
            self._count(cur, live, -removed)
        self._live = (time.monotonic(), live - removed)
        return int(removed)

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        self._check_open()
        with self._writing() as (cur, _):
            cur.execute(self._sql.forget_tombstones, [int(upto_seq)])
            return cur.rowcount

    # --- reads ----------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[list[Hit]]:
        """Up to ``k`` hits ``(id, inner product)`` per query row, best first, skipping ``exclude``;
        with ``allowed`` or ``params``, see ``_pgfilter.py``."""
        q = check_queries(queries, self.meta)
        check_k(k)
        self._check_open()
        if k == 0 or not len(q):
            return [[] for _ in range(len(q))]
        if allowed is not None or params is not None:
            return self._restricted(q, k, exclude, allowed, params or SearchParams())
        excluded = list(set(exclude)) if exclude else []
        joined = self._joins_records()
        values = self._values(k, excluded)
        with tables.translated(self.meta), self.host.searcher() as conn:
            statement = self._statement(conn, joined, k, excluded)
            if len(q) == 1:  # one statement, autocommit: its own read-only transaction
                found = [conn.cursor(binary=True).execute(statement, {"q": q[0], **values}).fetchall()]
            else:
                with conn.pipeline():
                    cursors = [conn.cursor(binary=True).execute(statement, {"q": row, **values}) for row in q]
                found = [cur.fetchall() for cur in cursors]
        return [_ranked(rows, joined) for rows in found]

    def _values(self, k: int, excluded: list[str]) -> dict[str, Any]:
        """A search's parameters but the query vector."""
        return {"k": k, "excluded": excluded, "collection": self.meta.collection, "kind": self.meta.kind}

    def _statement(self, conn: psycopg.Connection[Any], joined: bool, k: int, excluded: list[str]) -> str:
        """The SQL of a plain search on ``conn``, a connection of ``host.searcher``, after bringing
        its session's settings (``tables.SESSION``) up to this search's when they differ."""
        settings = self._settings(k, len(excluded))
        wanted = (settings["ef"], settings["max_scan"])
        known = _SESSIONS.get(conn)
        if known is None:  # a connection new to searches: numpy rows go and come back as vectors
            conn.adapters.register_dumper(np.ndarray, self._dumper)
            conn.adapters.register_loader(self._type.oid, tables.VectorLoader)
        if known != wanted:
            conn.execute(tables.SESSION, settings)
            _SESSIONS[conn] = wanted
        return self._sql.searches[joined, bool(excluded), self._exact(conn)]

    def _exact(self, conn: psycopg.Connection[Any]) -> bool:
        """Whether a search scores every vector: the table holds fewer than ``exact_below`` live
        vectors, as this process last wrote or read the count (at most ``LIVE_TTL_S`` ago)."""
        if self.spec.exact_below == 0:
            return False
        known = self._live
        if known is None or time.monotonic() - known[0] > LIVE_TTL_S:
            row = conn.execute(tables.LIVE, self._key).fetchone()
            if row is None:
                raise self._gone()
            known = self._live = (time.monotonic(), int(row[0]))
        return known[1] < self.spec.exact_below

    def _restricted(
        self,
        q: np.ndarray,
        k: int,
        exclude: Iterable[str] | None,
        allowed: Allowed | None,
        params: SearchParams,
    ) -> list[list[Hit]]:
        excluded = list(set(exclude)) if exclude else []
        where = allowed.where if allowed is not None and self._joins_records() else None
        by_ids = allowed is not None and where is None
        values = self._values(k, excluded)
        values["allowed"] = sorted(allowed.ids()) if by_ids and allowed else []
        settings = self._settings(k, len(excluded))
        if params.ef is not None:
            settings["ef"] = str(min(PGVECTOR_MAX_EF, max(int(settings["ef"]), params.ef)))
        out: list[list[Hit]] = []
        for row in q:
            # an id list is small (its caller knows every id): score it exactly, like a short scan
            hits = self._ranked(row, values, settings, where, by_ids, exact=params.exact or by_ids)
            if len(hits) < k and not (params.exact or by_ids):
                hits = self._ranked(row, values, settings, where, by_ids, exact=True)
            out.append(hits)
        return out

    def _ranked(
        self,
        row: np.ndarray,
        values: dict[str, Any],
        settings: dict[str, Any],
        where: Filter | None,
        by_ids: bool,
        exact: bool,
    ) -> list[Hit]:
        text, extra = restricted.statement(
            self.table, where=where, by_ids=by_ids, excluding=bool(values["excluded"]), exact=exact
        )
        with self._reading() as conn:
            conn.execute(tables.SETTINGS, settings)
            if exact:
                conn.execute(restricted.EXACT_SETTINGS)
            # never prepared: a generic plan, blind to the filter's values, may scan every record
            rows = self._cursor(conn).execute(text, {**values, **extra, "q": row}, prepare=False).fetchall()
        return [(id_, -distance) for id_, distance in sorted(rows, key=_distance)]

    def plan(self, query: np.ndarray, k: int, exclude: Iterable[str] | None = None) -> str:
        """The plan PostgreSQL runs for ``search`` of the one-row ``query`` (``EXPLAIN ANALYZE``
        of the same statement under the same settings): whether the HNSW index or a sequential
        scan answers."""
        q = check_queries(query, self.meta)
        check_k(k)
        self._check_open()
        excluded = list(set(exclude)) if exclude else []
        with tables.translated(self.meta), self.host.searcher() as conn:
            explain = "EXPLAIN ANALYZE " + self._statement(conn, self._joins_records(), k, excluded)
            rows = (
                conn.cursor(binary=True).execute(explain, {"q": q[0], **self._values(k, excluded)}).fetchall()
            )
        return "\n".join(line for (line,) in rows)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present, as float32 arrays of their own."""
        self._check_open()
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._reading() as conn:
            stored = dict(self._cursor(conn).execute(self._sql.get, [wanted]).fetchall())
        return {id_: stored[id_] for id_ in wanted if id_ in stored}

    # --- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[tuple[psycopg.Cursor[Any], int]]:
        """A fenced write transaction, once this index's earlier writes (any process's) committed:
        a cursor on it and the live vectors at the start."""
        with tables.translated(self.meta), self.host.connection() as conn:
            cur = self._cursor(conn, arrays=True)
            row = cur.execute(tables.LOCK, self._key).fetchone()
            if row is None:
                raise self._gone()
            self.host.check_fence(conn)  # after the wait for the turn, as close to the write as can be
            yield cur, int(row[0])

    def _cursor(self, conn: psycopg.Connection[Any], arrays: bool = False) -> psycopg.Cursor[Any]:
        """A binary cursor that sends numpy rows as ``vector`` (lists of them as ``vector[]`` with
        ``arrays``) and reads ``vector`` as float32 arrays; the adapters are the cursor's own, so
        the host's other users of the connection see none of them."""
        cur = conn.cursor(binary=True)
        cur.adapters.register_dumper(np.ndarray, self._dumper)
        cur.adapters.register_loader(self._type.oid, tables.VectorLoader)
        if arrays:
            cur.adapters.types.add(self._type)
        return cur

    def _copy_in(self, cur: psycopg.Cursor[Any], params: dict[str, Any]) -> None:
        """The rows into a temp table dropped at commit, by binary COPY."""
        cur.execute(tables.CREATE_LOAD)
        with cur.copy(tables.COPY_LOAD) as copy:
            copy.set_types(["text", "int8", self._type.oid])
            for row in zip(params["ids"], params["seqs"], params["vectors"], strict=True):
                copy.write_row(row)

    def _count(self, cur: psycopg.Cursor[Any], live: int, delta: int) -> None:
        """Record ``delta`` more live vectors; build the HNSW index once there are ``exact_below``."""
        if delta:
            cur.execute(tables.COUNT, {**self._key, "delta": delta})
        if self._has_hnsw or live + delta < self.spec.exact_below:
            return
        if cur.execute("SELECT to_regclass(%s)", [tables.hnsw_name(self.table)]).fetchone() == (None,):
            cur.execute(tables.hnsw_ddl(self.table, self.spec))
        self._has_hnsw = True

    def _settings(self, k: int, excluded: int) -> dict[str, Any]:
        return {
            **self._key,
            "ef": str(min(PGVECTOR_MAX_EF, max(self.spec.ef_search, k + excluded))),
            "max_scan": str(max(MAX_SCAN_TUPLES, 2 * (k + excluded))),
            "exact_below": self.spec.exact_below,
        }


def _one(cur: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    row = cur.fetchone()
    assert row is not None  # an aggregate always returns its row
    return tuple(row)


def _distance(row: tuple[Any, ...]) -> float:
    return float(row[1])


def _ranked(rows: list[tuple[Any, ...]], joined: bool) -> Ranked:
    """A search's rows ``(id, distance[, fields])`` as hits, best first (a relaxed_order scan may
    return them slightly out of order), with the fields when the query read them."""
    rows = sorted(rows, key=_distance)
    hits = Ranked((row[0], -row[1]) for row in rows)
    if joined:
        hits.fields = {row[0]: _json.loads(row[2]) for row in rows if row[2] is not None}
    return hits
