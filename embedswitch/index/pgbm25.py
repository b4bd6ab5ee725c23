"""The lexical index on a PostgreSQL store: BM25 over the texts of one (collection, version, kind)
in a table of the store's database, shared by every process of a cluster (a ``Bm25Index``).

PostgreSQL's own text search analyses the texts (``to_tsvector``: the ``simple`` configuration for
the ``unicode61`` tokenizer, ``english``, Snowball stemming and English stop words dropped, for
``porter``) and a GIN index on the ``tsvector`` finds the records holding a query word. The score is
Okapi BM25 as SQLite FTS5's ``bm25()`` computes it, in SQL: k1 = 1.2, b = 0.75,
``idf = ln((N - n + 0.5) / (n + 0.5))`` floored at 1e-6, a word's frequency in a record the number
of its positions in the ``tsvector``, a record's length the number of its indexed words. N and the
records' total length are kept beside the index's name in ``es_bm25_indexes`` by every write, in
its transaction; each query word's document count n is counted through the GIN index per search.
Before analysis both texts and queries are cut to their words (letters and digits, diacritics
removed, lowercase), so ``unicode61`` finds FTS5's words and scores as FTS5 does.

Beyond ``Bm25Index``'s promises, as ``index/pgvector.py`` keeps them:

- every write is one transaction, committed before the call returns (inside ``store.together``,
  the caller's one), fenced (``host.check_fence`` in it: a worker that lost its lease stores
  nothing), and writes to one index take turns (each locks its row of ``es_bm25_indexes``). A
  search is one statement: it sees every write committed before it began and waits for none;
- the table is ``n`` (the order ids were first written: ties rank older first), ``id text PRIMARY
  KEY``, ``seq``, ``body``, ``terms tsvector``, ``len``; the seq guard is the database's own
  (``INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE seq < EXCLUDED.seq``) and a delete keeps its
  row, ``body`` NULL, as the tombstone. Its name (``es_bm25_`` and 32 random hex digits) and the
  meta that built it are kept in ``es_bm25_indexes``; opening it with another fingerprint is an
  ``IndexMismatch``; ``destroy`` drops the table.
- a filter (``Allowed.where``) joins the store's records (``es_records``, same database) in the
  search itself, before ranking; the document counts stay those of the whole index.

Limits: a ``tsvector`` keeps at most 256 positions of a word (a word's frequency in one record
counts to 256) and positions up to 16,383 (words past them in a longer text count once each at
most); a record's ``tsvector`` must stay under 1 MB. A search costs a GIN lookup per query word
(counting n: cheap for rare words, proportional to the matches for common ones) and scores every
record holding a word: ~30 ms at p50 over SciFact's 5,183 abstracts, where FTS5 takes ~11 ms.
Records holding only words of more than half the records (their idf floored, so they rank after
every other match) are scored only when the other matches are fewer than ``k``.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from embedswitch.filters import predicate
from embedswitch.index import _pgfilter as restricted
from embedswitch.index import _pgtables as tables
from embedswitch.index._checks import check_k, check_seqs
from embedswitch.index._ids import IdMap
from embedswitch.index.base import Allowed, Hit, IndexHost, IndexMeta
from embedswitch.index.lexical import MAX_QUERY_TERMS, Tokenizer

K1 = 1.2
B = 0.75
CONFIGS: dict[str, str] = {"unicode61": "simple", "porter": "english"}
"""The text search configuration that analyses a tokenizer's texts."""
MAX_WORD_BYTES = 2047
"""PostgreSQL skips longer words (with a notice); they are left out before it sees them."""

REGISTRY = """
CREATE TABLE IF NOT EXISTS es_bm25_indexes (
    collection text NOT NULL,
    version text NOT NULL,
    kind text NOT NULL,
    table_name text NOT NULL UNIQUE,
    dim integer NOT NULL,
    fingerprint text NOT NULL,
    live bigint NOT NULL DEFAULT 0,
    words bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection, version, kind)
)"""
_MINE = tables.MINE
_LIVE = f"SELECT live FROM es_bm25_indexes WHERE {_MINE}"
_LOCK = _LIVE + " FOR UPDATE"
_COUNT = f"UPDATE es_bm25_indexes SET live = live + %(live)s, words = words + %(words)s WHERE {_MINE}"

# One statement per write: the rows that pass the seq guard, how many of them were live and how
# many words they held before (read per row in the statement's snapshot, taken once the write's
# turn came), and the words they hold now.
_UPSERT = """
WITH src AS (
    SELECT s.id, s.seq, s.body, to_tsvector({config}, s.words) AS terms,
           (SELECT t.body IS NOT NULL FROM {table} t WHERE t.id = s.id) AS was_live,
           (SELECT t.len FROM {table} t WHERE t.id = s.id) AS old_len
    FROM unnest(%(ids)s::text[], %(seqs)s::bigint[], %(bodies)s::text[], %(words)s::text[])
        AS s(id, seq, body, words)
), changed AS (
    INSERT INTO {table} AS t (id, seq, body, terms, len)
    SELECT id, seq, body, terms,
           (SELECT coalesce(sum(cardinality(u.positions)), 0) FROM unnest(terms) u) FROM src
    ON CONFLICT (id) DO UPDATE
    SET seq = EXCLUDED.seq, body = EXCLUDED.body, terms = EXCLUDED.terms, len = EXCLUDED.len
    WHERE t.seq < EXCLUDED.seq
    RETURNING t.id, t.len
)
SELECT count(*), count(*) FILTER (WHERE src.was_live IS NOT TRUE),
       coalesce(sum(changed.len), 0) - coalesce(sum(src.old_len), 0)
FROM changed JOIN src USING (id)"""
_DELETE = """
WITH src AS (
    SELECT s.id, s.seq, (SELECT t.body IS NOT NULL FROM {table} t WHERE t.id = s.id) AS was_live,
           (SELECT t.len FROM {table} t WHERE t.id = s.id) AS old_len
    FROM unnest(%(ids)s::text[], %(seqs)s::bigint[]) AS s(id, seq)
), changed AS (
    INSERT INTO {table} AS t (id, seq, body, terms, len) SELECT id, seq, NULL, NULL, 0 FROM src
    ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, body = NULL, terms = NULL, len = 0
    WHERE t.seq < EXCLUDED.seq
    RETURNING t.id
)
SELECT count(*) FILTER (WHERE src.was_live), coalesce(sum(src.old_len), 0)
FROM changed JOIN src USING (id)"""
# N and the average length; each query word (analysed as the index analysed its texts) and its idf
# (n counted through the GIN index, over the whole index); the records holding a word, each
# ``tsvector`` cut to the query's words (weight A marks them, ``ts_filter`` keeps them); their BM25
# scores. Unless ``every_word``, the records holding only words of more than half the records
# (idf floored at 1e-6: they would rank after every other match) are left out of the candidates.
_SEARCH = """
WITH stats AS (
    SELECT live::float8 AS n, CASE WHEN live > 0 THEN words::float8 / live ELSE 1 END AS avgdl
    FROM es_bm25_indexes WHERE {mine}
), idf AS (
    SELECT w.lexeme, c.hits < stats.n / 2 AS rare,
           greatest(ln((stats.n - c.hits + 0.5) / (c.hits + 0.5)), 1e-6) AS idf
    FROM unnest(to_tsvector({config}, %(q)s)) AS w CROSS JOIN stats
    CROSS JOIN LATERAL (
        SELECT count(*) AS hits FROM {table} t WHERE t.terms @@ quote_literal(w.lexeme)::tsquery
    ) c
), words AS (
    SELECT array_agg(lexeme) AS lexemes,
           string_agg(quote_literal(lexeme), ' | ') FILTER (WHERE rare OR %(every_word)s)::tsquery AS query
    FROM idf
), matched AS (
    SELECT t.n, t.id, t.len, ts_filter(setweight(t.terms, 'A', (SELECT lexemes FROM words)), '{{a}}') AS found
    FROM {table} t{joins}
    WHERE {conds}
)
SELECT m.id, sum(
    i.idf * cardinality(u.positions) * {k1_plus_1}
    / (cardinality(u.positions) + {k1} * (1 - {b} + {b} * m.len / stats.avgdl))
) AS score
FROM matched m CROSS JOIN LATERAL unnest(m.found) u JOIN idf i ON i.lexeme = u.lexeme CROSS JOIN stats
GROUP BY m.n, m.id ORDER BY score DESC, m.n LIMIT %(k)s"""

_WORD = re.compile(r"[^\W_]+")


def analysable(text: str, limit: int | None = None) -> str:
    """``text`` cut to its words (as FTS5's ``unicode61`` finds them: runs of letters and digits,
    diacritics removed), lowercase, one space apart; with ``limit``, its first ``limit`` distinct
    words only (a query)."""
    plain = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    words = [w for w in _WORD.findall(plain.lower()) if len(w.encode()) <= MAX_WORD_BYTES]
    if limit is not None:
        words = list(dict.fromkeys(words))[:limit]
    return " ".join(words)


class PgBm25Index(tables.StoreTable):
    """A ``Bm25Index`` in the host's PostgreSQL database; see the module docstring."""

    index_type = "bm25"
    precision = "text"
    REGISTRY_TABLE = "es_bm25_indexes"
    LIVE = "body"

    def __init__(self, host: IndexHost, meta: IndexMeta, tokenizer: Tokenizer, table: str) -> None:
        """Use the table ``table`` that ``open`` found or created."""
        super().__init__(host, meta, table)
        self._config = sql.Literal(CONFIGS[tokenizer]).as_string(None) + "::regconfig"
        self._upsert = _UPSERT.format(table=self._t, config=self._config)
        self._delete = _DELETE.format(table=self._t)

    @classmethod
    def open(cls, host: IndexHost, meta: IndexMeta, tokenizer: Tokenizer) -> PgBm25Index:
        """Open the index of ``meta``'s (collection, version, kind) in ``host``'s database, creating
        its table (and ``es_bm25_indexes``, if missing) the first time; that is a write, fenced.
        ``IndexMismatch`` when it was built with another fingerprint (another tokenizer included)."""
        key = {"collection": meta.collection, "version": meta.version, "kind": meta.kind}
        with tables.translated(meta), host.connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [tables.DDL_LOCK])
            conn.execute(REGISTRY)
            found = conn.execute(
                f"SELECT table_name, dim, fingerprint FROM es_bm25_indexes WHERE {tables.KEY}", key
            ).fetchone()
            if found is None:
                host.check_fence(conn)
                table = _create_table(conn, meta)
            else:
                table = found[0]
                tables.check_meta(meta, table, dim=found[1], fingerprint=found[2])
        return cls(host, meta, tokenizer, table)

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], texts: Sequence[str], seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Index each text under its id unless the id has seen a seq >= its seq; returns how many
        ids changed. Committed (durable) when it returns, whatever ``durable`` says."""
        seq_list = check_seqs(ids, seqs)
        if len(texts) != len(ids):
            raise ValueError(f"got {len(ids)} ids but {len(texts)} texts; pass one text per id")
        # PostgreSQL refuses to change one row twice in a statement: the latest write per id only
        latest = IdMap.latest_per_id(ids, seq_list)
        self._check_open()
        if not latest:
            return 0
        bodies = [texts[row] for row, _ in latest.values()]
        params = {
            "ids": list(latest),
            "seqs": [seq for _, seq in latest.values()],
            "bodies": bodies,
            "words": [analysable(body) for body in bodies],
        }
        with self._writing() as cur:
            cur.execute(self._upsert, params)
            changed, added, words = _one(cur)
            self._count(cur, added, words)
        return int(changed)

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Tombstone each id unless it has seen a seq >= its seq (ids never seen included, so an
        older upsert arriving later is a no-op); returns how many texts were removed."""
        latest = IdMap.latest_per_id(ids, check_seqs(ids, seqs))
        self._check_open()
        if not latest:
            return 0
        params = {"ids": list(latest), "seqs": [seq for _, seq in latest.values()]}
        with self._writing() as cur:
            cur.execute(self._delete, params)
            removed, words = _one(cur)
            self._count(cur, -removed, -words)
        return int(removed)

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        self._check_open()
        with self._writing() as cur:
            cur.execute(f"DELETE FROM {self._t} WHERE body IS NULL AND seq <= %s", [int(upto_seq)])
            return cur.rowcount

    # --- reads ----------------------------------------------------------------------------------

    def search(
        self, text: str, k: int, exclude: Iterable[str] | None = None, allowed: Allowed | None = None
    ) -> list[Hit]:
        """Up to ``k`` hits ``(id, BM25 score)`` for records holding any word of ``text``, best
        first (ties: older first), skipping ``exclude`` and, with ``allowed``, every record it does
        not allow: the ``k`` best allowed matches, whatever ranks above them."""
        check_k(k)
        self._check_open()
        query = analysable(text, MAX_QUERY_TERMS)
        if not query or k == 0:
            return []
        excluded = list(set(exclude)) if exclude else []
        values: dict[str, Any] = {**self._key, "q": query, "k": k, "excluded": excluded}
        conds = ["t.terms @@ (SELECT query FROM words)"]
        joins = ""
        if allowed is not None and allowed.where is not None and self._joins_records():
            found = predicate(allowed.where, "postgres", "r.fields::jsonb")
            mine = "r.collection = %(collection)s AND r.kind = %(kind)s AND r.id = t.id"
            joins = f" JOIN {restricted.RECORDS} r ON {mine}"
            conds.append(found.sql)
            values |= found.params
        elif allowed is not None:
            conds.append("t.id = ANY(%(allowed)s)")
            values["allowed"] = sorted(allowed.ids())
        if excluded:
            conds.append("t.id <> ALL(%(excluded)s)")
        statement = _SEARCH.format(
            config=self._config,
            mine=_MINE,
            table=self._t,
            joins=joins,
            conds=" AND ".join(conds),
            k1=K1,
            k1_plus_1=K1 + 1,
            b=B,
        )
        with tables.translated(self.meta), self.host.reader() as conn:
            # never prepared: a generic plan, blind to the filter's values, may scan every record
            rows = conn.execute(statement, {**values, "every_word": False}, prepare=False).fetchall()
            if len(rows) < k:  # fewer matches than asked for: the common words' too
                rows = conn.execute(statement, {**values, "every_word": True}, prepare=False).fetchall()
        return [(str(id_), float(score)) for id_, score in rows]

    def get(self, ids: Sequence[str]) -> dict[str, str]:
        """The indexed texts of those ids that are present."""
        self._check_open()
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._reading() as conn:
            rows = conn.execute(
                f"SELECT id, body FROM {self._t} WHERE id = ANY(%s) AND body IS NOT NULL", [wanted]
            ).fetchall()
        stored = dict(rows)
        return {id_: stored[id_] for id_ in wanted if id_ in stored}

    def tombstones(self) -> dict[str, int]:
        """Deleted id -> the seq of its delete."""
        self._check_open()
        with self._reading() as conn:
            rows = conn.execute(f"SELECT id, seq FROM {self._t} WHERE body IS NULL").fetchall()
        return {str(id_): int(seq) for id_, seq in rows}

    # --- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[psycopg.Cursor[Any]]:
        """A fenced write transaction, once this index's earlier writes (any process's) committed."""
        with tables.translated(self.meta), self.host.connection() as conn:
            cur = conn.cursor()
            if cur.execute(_LOCK, self._key).fetchone() is None:
                raise self._gone()
            self.host.check_fence(conn)  # after the wait for the turn, as close to the write as can be
            yield cur

    def _count(self, cur: psycopg.Cursor[Any], live: int, words: int) -> None:
        if live or words:
            cur.execute(_COUNT, {**self._key, "live": live, "words": words})


def _one(cur: psycopg.Cursor[Any]) -> tuple[int, ...]:
    row = cur.fetchone()
    assert row is not None  # an aggregate always returns its row
    return tuple(int(value) for value in row)


def _create_table(conn: psycopg.Connection[Any], meta: IndexMeta) -> str:
    """Create a fresh table for ``meta``'s index and register it; returns its name."""
    table = f"es_bm25_{secrets.token_hex(16)}"
    t = sql.Identifier(table)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (n bigint GENERATED BY DEFAULT AS IDENTITY, id text PRIMARY KEY, "
            "seq bigint NOT NULL, body text, terms tsvector, len integer NOT NULL DEFAULT 0)"
        ).format(t)
    )
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} USING gin (terms)").format(sql.Identifier(f"{table}_terms"), t)
    )
    # forget_tombstones finds them by seq without reading the texts
    conn.execute(
        sql.SQL("CREATE INDEX {} ON {} (seq) WHERE body IS NULL").format(sql.Identifier(f"{table}_dead"), t)
    )
    conn.execute(
        "INSERT INTO es_bm25_indexes (collection, version, kind, table_name, dim, fingerprint) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        [meta.collection, meta.version, meta.kind, table, meta.dim, meta.fingerprint],
    )
    return table
