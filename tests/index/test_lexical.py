"""The BM25 indexes and the TextIndex of lexical versions: streaming updates and deletes through
the seq guard, fusion, run against both ``Bm25Index`` backends (the congruence pattern): SQLite
FTS5 (``fts5``) and tables in a real PostgreSQL (``postgres``); reopening the FTS5 file.
PostgreSQL's own promises are in ``test_pgbm25.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _pg_host import PgHost
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch import IndexMismatch, InvalidRequest
from embedswitch.index.base import Allowed, Bm25Index, IndexMeta
from embedswitch.index.hybrid import Fusion, convex, open_text_index, rrf
from embedswitch.index.lexical import LexicalIndex, match_expression
from embedswitch.index.pgbm25 import PgBm25Index
from embedswitch.index.specs import ExactSpec, PgvectorSpec

META = IndexMeta("c", "kw", "doc", "f" * 64, 0)
BACKENDS = ["fts5", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def host(backend: str, request: pytest.FixtureRequest) -> Iterator[PgHost | None]:
    """The database a PostgreSQL BM25 index lives in (None for FTS5)."""
    if backend == "fts5":
        yield None
        return
    found = PgHost(request.getfixturevalue("pg_uri"))
    yield found
    found.close()


@pytest.fixture
def index(tmp_path: Path, host: PgHost | None) -> Iterator[Bm25Index]:
    found: Bm25Index = (
        PgBm25Index.open(host, META, "unicode61")
        if host is not None
        else LexicalIndex(tmp_path / "doc", META, "unicode61")
    )
    assert isinstance(found, Bm25Index)
    yield found
    found.close()


def opened(tmp_path: Path, meta: IndexMeta = META) -> LexicalIndex:
    return LexicalIndex(tmp_path / "doc", meta, "unicode61")


def ids_of(hits: list[tuple[str, float]]) -> list[str]:
    return [id_ for id_, _ in hits]


def test_bm25_ranks_by_term_rarity_and_frequency(index: Bm25Index) -> None:
    texts = {
        "a": "vitamin D and bone density",
        "b": "vitamin C in citrus fruit",
        "c": "vitamin D deficiency, vitamin D supplements",
        "d": "exercise and sleep",
    }
    assert index.upsert(list(texts), list(texts.values()), [1, 2, 3, 4]) == 4
    hits = index.search("Vitamin D?", 10)
    assert ids_of(hits) == ["c", "a", "b"]  # "d" is rarer than "vitamin"; "c" has it twice
    assert all(score > 0 for _, score in hits) and hits == sorted(hits, key=lambda h: -h[1])
    assert ids_of(index.search("vitamin d", 1)) == ["c"]
    assert ids_of(index.search("vitamin d", 10, exclude={"c"})) == ["a", "b"]
    assert index.search("nothing matches", 10) == [] and index.search("?! ", 10) == []
    assert len(index) == 4 and sorted(index.ids()) == ["a", "b", "c", "d"]
    assert ids_of(index.search("vitamin d", 10, allowed=Allowed.of(["b", "d"]))) == ["b"]
    assert index.search("vitamin", 10, allowed=Allowed.of([])) == []


def test_query_words_are_never_fts5_operators() -> None:
    assert (
        match_expression('NOT "x" OR y* (AND) col:z NEAR')
        == '"not" OR "x" OR "or" OR "y" OR "and" OR "col" OR "z" OR "near"'
    )
    assert match_expression("Ünïcode café") == '"ünïcode" OR "café"'
    assert match_expression(" _ -- ") is None


def test_updates_and_deletes_pass_the_seq_guard_only_when_newer(index: Bm25Index) -> None:
    index.upsert(["a", "b"], ["apple pie", "banana bread"], [5, 6])
    assert index.upsert(["a"], ["cherry tart"], [4]) == 0  # a stale backfill write: no-op
    assert index.upsert(["a"], ["apple pie"], [5]) == 0  # the same seq again: no-op
    assert ids_of(index.search("apple", 10)) == ["a"] and index.search("cherry", 10) == []
    assert index.upsert(["a"], ["cherry tart"], [7]) == 1  # a newer update replaces the text
    assert index.search("apple", 10) == [] and ids_of(index.search("cherry", 10)) == ["a"]
    assert index.seq_of("a") == 7 and index.get(["a", "zz"]) == {"a": "cherry tart"}

    assert index.delete(["b"], [5]) == 0  # older than its write: the record stays
    assert index.delete(["b", "never"], [8, 9]) == 1  # a tombstone even for an id never seen
    assert index.upsert(["b", "never"], ["banana bread", "late"], [6, 8]) == 0  # never comes back
    assert index.search("banana", 10) == [] and index.search("late", 10) == []
    assert index.tombstones() == {"b": 8, "never": 9} and len(index) == 1
    assert index.upsert(["b"], ["banana split"], [10]) == 1  # a later upsert does bring it back
    assert ids_of(index.search("banana", 10)) == ["b"] and len(index) == 2

    index.delete(["a"], [11])
    assert index.forget_tombstones(9) == 1  # "never" (9) goes, "a" (11) stays
    assert index.tombstones() == {"a": 11} and index.seq_of("never") is None


def test_a_batch_with_one_id_twice_keeps_the_newest(index: Bm25Index) -> None:
    assert index.upsert(["a", "a", "a"], ["one", "three", "two"], [1, 3, 2]) == 1
    assert index.delete(["a", "a"], [5, 4]) == 1 and index.seq_of("a") == 5
    assert index.get(["a"]) == {} and len(index) == 0 and index.tombstones() == {"a": 5}


def test_writes_survive_close_and_reopen_and_the_meta_is_checked(tmp_path: Path) -> None:
    index = opened(tmp_path)
    index.upsert(["a", "b"], ["apple pie", "banana bread"], [1, 2], durable=True)
    index.delete(["b"], [3])
    index.close()  # no checkpoint: every write was committed
    reopened = opened(tmp_path)
    assert reopened.ids() == ["a"] and reopened.tombstones() == {"b": 3} and len(reopened) == 1
    reopened.checkpoint()
    assert reopened.disk_bytes() > 0
    reopened.close()
    with pytest.raises(IndexMismatch, match="built by model ffffffffffff, not 000000000000"):
        opened(tmp_path, IndexMeta("c", "kw", "doc", "0" * 64, 0))
    with pytest.raises(IndexMismatch, match="belongs to version .kw., not .other."):
        opened(tmp_path, IndexMeta("c", "other", "doc", "f" * 64, 0))
    reopened.destroy()
    assert not (tmp_path / "doc").exists()


def test_searches_see_whole_writes_while_a_writer_streams(index: Bm25Index) -> None:
    """Each write is one transaction: a search sees a record's old text or its new one, never both
    or neither, while updates stream."""
    ids = [f"r{i}" for i in range(50)]
    index.upsert(ids, ["even"] * 50, [1] * 50)
    stop, seen = threading.Event(), []

    def search() -> None:
        while not stop.is_set():
            even, odd = index.search("even", 100), index.search("odd", 100)
            seen.append((len(even), len(odd)))

    reader = threading.Thread(target=search)
    reader.start()
    for seq in range(2, 40):
        index.upsert(ids, ["odd" if seq % 2 else "even"] * 50, [seq] * 50)
    stop.set()
    reader.join()
    assert seen and all(n in (0, 50) for pair in seen for n in pair)


def test_text_index_writes_both_parts_and_fuses_their_hits(tmp_path: Path, host: PgHost | None) -> None:
    meta = IndexMeta("c", "hy", "doc", "e" * 64, 2)
    spec = PgvectorSpec() if host is not None else ExactSpec()
    index = open_text_index(spec, tmp_path / "doc", meta, host, "unicode61", Fusion(depth=10))
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    texts = ["alpha beta", "gamma", "beta beta delta"]
    with pytest.raises(InvalidRequest, match="records can't come as vectors alone"):
        index.upsert(["x"], vectors[:1], [1])
    assert index.upsert(["a", "b", "c"], vectors, [1, 2, 3], texts=texts) == 3
    assert index.index_type == f"{spec.type}+bm25" and index.precision == "f32" and len(index) == 3
    dense = index.search(np.array([[0, 1]], dtype=np.float32), 3)[0]
    assert ids_of(dense) == ["b", "c", "a"]
    fused = index.search_text("beta", np.array([0, 1], dtype=np.float32), 3)
    assert ids_of(fused) == ["c", "a", "b"]  # 2nd + 1st, 3rd + 2nd, 1st alone
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)

    assert index.vectors is not None
    index.vectors.delete(["c"], [4])  # one part ahead of the other (a crash between the two)
    assert index.seq_of("c") == 3  # the older: a replay or backfill writes it again
    assert index.delete(["c"], [4]) == 1 and index.seq_of("c") == 4
    assert ids_of(index.search_text("beta", np.array([0, 1], dtype=np.float32), 3)) == ["a", "b"]
    index.destroy()


def test_bm25_alone_has_no_vectors_to_search(tmp_path: Path, host: PgHost | None) -> None:
    index = open_text_index(None, tmp_path / "doc", META, host, "porter", Fusion())
    index.upsert(["a"], np.zeros((1, 0), dtype=np.float32), [1], texts=["running shoes"])
    assert ids_of(index.search_text("run", None, 5)) == ["a"]  # porter stems both
    assert index.get(["a"]) == {} and index.index_type == "bm25" and index.precision == "text"
    with pytest.raises(InvalidRequest, match="no vectors"):
        index.search(np.zeros((1, 0), dtype=np.float32), 5)
    index.close()


def test_fusion() -> None:
    dense = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
    lexical = [("c", 12.0), ("a", 3.0)]
    assert ids_of(rrf([dense, lexical], 3, 60)) == ["a", "c", "b"]
    assert rrf([dense, lexical], 1, 60) == [("a", pytest.approx(1 / 61 + 1 / 62))]
    scored = dict(convex(dense, lexical, 3, 0.5))  # dense scaled a 1, b 0.875, c 0; lexical c 1, a 0
    assert scored == pytest.approx({"a": 0.5, "b": 0.4375, "c": 0.5})
    assert ids_of(convex(dense, lexical, 3, 1.0)) == ["a", "b", "c"]
    assert ids_of(convex(dense, lexical, 3, 0.0))[0] == "c"
    assert convex([], [], 5, 0.5) == [] and dict(convex([("x", 2.0)], [], 1, 0.5)) == {"x": 0.5}
