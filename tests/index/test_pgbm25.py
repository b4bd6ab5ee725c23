"""What the PostgreSQL BM25 index promises beyond the ``Bm25Index`` seam (``test_lexical.py``): the
scores of SQLite FTS5's ``bm25()``, one index shared by every handle on the database, fenced
writes, a table registered in ``es_bm25_indexes`` and dropped by ``destroy``, and the records that
hold only common words still found when the others are too few."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _pg_host import PgHost

from embedswitch import IndexMismatch, LeaseLost, Unavailable
from embedswitch.index.base import IndexMeta
from embedswitch.index.lexical import LexicalIndex
from embedswitch.index.pgbm25 import PgBm25Index, analysable

META = IndexMeta("c", "kw", "doc", "f" * 64, 0)
TEXTS = {
    "a": "Vitamin D and bone density in older adults",
    "b": "vitamin C in citrus fruit; vitamin C and colds",
    "c": "Vitamin-D deficiency, vitamin D supplements, and the risk of falls",
    "d": "exercise and sleep in older adults",
    "e": "Café crème: the caffeine in coffee and sleep",
    "f": "bone fractures in adults with low vitamin D",
    "g": "sleep, sleep and more sleep: the adult brain at rest",
}
QUERIES = ["vitamin d", "sleep adults", "bone density", "cafe caffeine", "the risk of falls", "D"]


@pytest.fixture
def host(pg_uri: str) -> Iterator[PgHost]:
    found = PgHost(pg_uri)
    yield found
    found.close()


def ids_of(hits: list[tuple[str, float]]) -> list[str]:
    return [id_ for id_, _ in hits]


def test_scores_are_fts5_bm25_scores(host: PgHost, tmp_path: Path) -> None:
    pg = PgBm25Index.open(host, META, "unicode61")
    fts = LexicalIndex(tmp_path / "doc", META, "unicode61")
    for index in (pg, fts):
        index.upsert(list(TEXTS), list(TEXTS.values()), list(range(1, len(TEXTS) + 1)))
        index.delete(["g"], [20])  # N and the average length follow deletes too
        index.upsert(["b"], ["vitamin C in citrus fruit"], [21])
    for query in QUERIES:
        got, want = pg.search(query, 10), fts.search(query, 10)
        assert ids_of(got) == ids_of(want), query
        assert [score for _, score in got] == pytest.approx([score for _, score in want], rel=1e-9), query
    fts.close()


def test_every_handle_reads_the_same_index_and_meta_is_checked(host: PgHost, pg_uri: str) -> None:
    first = PgBm25Index.open(host, META, "porter")
    first.upsert(["a", "b"], ["running shoes", "a quiet walk"], [1, 2])
    other_host = PgHost(pg_uri)  # another process's pool
    try:
        second = PgBm25Index.open(other_host, META, "porter")
        assert second.table == first.table and ids_of(second.search("runs", 5)) == ["a"]  # stemmed
        first.delete(["a"], [3])
        assert second.search("runs", 5) == [] and second.tombstones() == {"a": 3} and len(second) == 1
        assert PgBm25Index.stored_kinds(other_host, "c", "kw") == ["doc"]
        with pytest.raises(IndexMismatch, match="built by model ffffffffffff"):
            PgBm25Index.open(other_host, IndexMeta("c", "kw", "doc", "0" * 64, 0), "porter")
    finally:
        other_host.close()


def test_writes_are_fenced(host: PgHost) -> None:
    index = PgBm25Index.open(host, META, "unicode61")
    index.upsert(["a"], ["apple pie"], [1])
    checks = host.fence_checks
    host.lease_lost = True
    with pytest.raises(LeaseLost):
        index.upsert(["b"], ["banana bread"], [2])
    with pytest.raises(LeaseLost):
        index.delete(["a"], [3])
    host.lease_lost = False
    assert host.fence_checks == checks + 2
    assert index.ids() == ["a"] and index.seq_of("b") is None and index.seq_of("a") == 1


def test_destroy_drops_the_table_and_its_registration(host: PgHost) -> None:
    index = PgBm25Index.open(host, META, "unicode61")
    index.upsert(["a"], ["apple pie"], [1])
    assert index.disk_bytes() > 0 and index.memory_bytes() == 0
    stale = PgBm25Index.open(host, META, "unicode61")
    index.destroy()
    with host.connection() as conn:
        assert conn.execute("SELECT to_regclass(%s)", [index.table]).fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM es_bm25_indexes").fetchone() == (0,)
    with pytest.raises(Unavailable, match="was destroyed"):
        stale.upsert(["b"], ["banana"], [2])
    again = PgBm25Index.open(host, META, "unicode61")  # a fresh table under a new name
    assert again.table != index.table and len(again) == 0 and again.search("apple", 5) == []


def test_records_with_only_common_words_are_found_when_the_others_are_too_few(host: PgHost) -> None:
    index = PgBm25Index.open(host, META, "unicode61")
    texts = ["the cat", "the dog", "the bird", "the fish", "a cat and the dog"]
    index.upsert([f"r{i}" for i in range(5)], texts, [1] * 5)
    # "the" is in every record: idf floored, so it is searched only when the rare words fall short
    assert ids_of(index.search("the cat", 2)) == ["r0", "r4"]
    found = index.search("the cat", 5)
    assert ids_of(found)[:2] == ["r0", "r4"] and sorted(ids_of(found)[2:]) == ["r1", "r2", "r3"]
    assert len(index.search("the", 10)) == 5


def test_texts_are_cut_to_their_words() -> None:
    assert analysable("Vitamin-D, café_crème (ünïcode) x²") == "vitamin d cafe creme unicode x²"
    assert analysable("b a b c a", limit=2) == "b a" and analysable(" -- _ ") == ""
    assert analysable("x" * 3000 + " y") == "y"  # PostgreSQL would skip it with a notice
