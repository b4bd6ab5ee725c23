"""One behaviour suite for the ``VectorIndex`` seam, run against every index type: the embedded ones,
pgvector in a real PostgreSQL, qdrant and milvus in their embedded modes, and milvus with its seq
ledger in the real PostgreSQL (``milvus-pg``): the congruence pattern. Each test states the counts
and results a call must give, so every type gives the same ones for the same calls.

What only the embedded indexes do (checkpoint files, crash recovery, durable segments, meta kept
in a directory) is in ``test_index.py``; pgvector's own promises in ``tests/index/test_pgvector.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _indexes import DIM, META, ON_HOST, SEAM_TYPES, assert_stored, open_seam, score_atol, unit
from _pg_host import PgHost
from _postgres import pg_server, pg_uri  # noqa: F401 - fixtures

from embedswitch._errors import IndexMismatch, InvalidRequest, Unavailable
from embedswitch.index import Allowed, IndexMeta, SearchParams, VectorIndex


@pytest.fixture(params=SEAM_TYPES)
def index_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def host(index_type: str, request: pytest.FixtureRequest) -> Iterator[PgHost | None]:
    """The database a pgvector index (a milvus-pg index's ledger) lives in (None for the others)."""
    if index_type not in ON_HOST:
        yield None
        return
    found = PgHost(request.getfixturevalue("pg_uri"))
    yield found
    found.close()


@pytest.fixture
def index(index_type: str, tmp_path: Path, host: PgHost | None) -> Iterator[VectorIndex]:
    idx = open_seam(index_type, tmp_path / "idx", host, persistent=False)
    yield idx
    idx.close()


def fill(index: VectorIndex, n: int, seed: int = 0, seq: int = 1) -> tuple[list[str], np.ndarray]:
    ids = [f"r{i}" for i in range(n)]
    vecs = unit(n, seed)
    assert index.upsert(ids, vecs, [seq] * n) == n
    return ids, vecs


def hit_ids(hits: list[tuple[str, float]]) -> list[str]:
    return [id_ for id_, _ in hits]


# --- reads --------------------------------------------------------------------------------------


def test_is_a_vector_index(index: VectorIndex) -> None:
    assert isinstance(index, VectorIndex)
    assert len(index) == 0
    assert index.search(unit(2), 5) == [[], []]


def test_get_returns_vectors_exactly_as_written(index: VectorIndex) -> None:
    ids, vecs = fill(index, 40)
    got = index.get(ids + ["missing"])
    assert set(got) == set(ids)
    for i, id_ in enumerate(ids):
        assert got[id_].dtype == np.float32
        assert_stored(index, got[id_], vecs[i])


def test_search_ranks_by_inner_product(index: VectorIndex) -> None:
    ids, vecs = fill(index, 60)
    results = index.search(vecs[:5], 10)
    assert len(results) == 5
    for q, hits in enumerate(results):
        assert len(hits) == 10
        assert hits[0][0] == ids[q]
        assert hits[0][1] == pytest.approx(1.0, abs=score_atol(index))
        scores = [s for _, s in hits]
        assert scores == sorted(scores, reverse=True)
        for id_, score in hits:
            assert score == pytest.approx(float(vecs[q] @ vecs[ids.index(id_)]), abs=score_atol(index))


def test_search_k_bigger_than_len_and_k_zero(index: VectorIndex) -> None:
    ids, _ = fill(index, 7)
    assert sorted(hit_ids(index.search(unit(1, 9), 50)[0])) == sorted(ids)
    assert index.search(unit(3, 9), 0) == [[], [], []]


def test_exclude_skips_ids_but_still_returns_k(index: VectorIndex) -> None:
    ids, vecs = fill(index, 30)
    hits = index.search(vecs[:1], 5, exclude=[ids[0], ids[1], "not-there"])[0]
    assert len(hits) == 5
    assert ids[0] not in hit_ids(hits) and ids[1] not in hit_ids(hits)
    everything_else = index.search(vecs[:1], 100, exclude=ids[:10])[0]
    assert sorted(hit_ids(everything_else)) == sorted(ids[10:])


# --- filters: restricted before ranking ----------------------------------------------------------


def test_allowed_ids_restrict_before_ranking(index: VectorIndex) -> None:
    ids, vecs = fill(index, 80)
    allowed = ids[::8]  # 10 of 80
    for hits in index.search(vecs[:4], 5, allowed=Allowed.of(allowed)):
        assert len(hits) == 5 and set(hit_ids(hits)) <= set(allowed)
        scores = [score for _, score in hits]
        assert scores == sorted(scores, reverse=True)
    brute = vecs[::8] @ vecs[0]
    best = [allowed[i] for i in np.argsort(-brute)[:5]]
    assert hit_ids(index.search(vecs[:1], 5, allowed=Allowed.of(allowed))[0]) == best


def test_a_filter_returns_k_whenever_k_are_allowed(index: VectorIndex) -> None:
    ids, vecs = fill(index, 60)
    for count in (0, 3, 10):
        found = index.search(vecs[:2], 10, allowed=Allowed.of(ids[20 : 20 + count]))
        assert [len(hits) for hits in found] == [count, count]
    found = index.search(vecs[:1], 10, exclude=ids[20:25], allowed=Allowed.of([*ids[20:40], "never-stored"]))[
        0
    ]
    assert len(found) == 10 and set(hit_ids(found)) <= set(ids[25:40])


def test_deleted_ids_are_never_allowed(index: VectorIndex) -> None:
    ids, vecs = fill(index, 30)
    index.delete(ids[:10], [2] * 10)
    found = index.search(vecs[:1], 10, allowed=Allowed.of(ids[:15]))[0]
    assert sorted(hit_ids(found)) == sorted(ids[10:15])


def test_exact_and_ef_knobs(index: VectorIndex) -> None:
    ids, vecs = fill(index, 50)
    for params in (SearchParams(exact=True), SearchParams(ef=200), SearchParams(ef=1, exact=True)):
        hits = index.search(vecs[:1], 7, exclude=ids[:1], params=params)[0]
        brute = [ids[i] for i in np.argsort(-(vecs @ vecs[0]))[1:8]]
        assert len(hits) == 7 and ids[0] not in hit_ids(hits)
        assert len(set(hit_ids(hits)) & set(brute)) >= 6


def test_delete_removes_from_every_read(index: VectorIndex) -> None:
    ids, vecs = fill(index, 20)
    assert index.delete(ids[:5], [2] * 5) == 5
    assert len(index) == 15
    assert sorted(index.ids()) == sorted(ids[5:])
    assert index.get(ids[:5]) == {}
    for hits in index.search(vecs[:5], 20):
        assert not set(hit_ids(hits)) & set(ids[:5])
    assert index.seq_of(ids[0]) == 2


# --- seq guards ---------------------------------------------------------------------------------


def test_same_seq_twice_is_a_no_op(index: VectorIndex) -> None:
    v = unit(2, 1)
    assert index.upsert(["a"], v[:1], [5]) == 1
    assert index.upsert(["a"], v[1:], [5]) == 0
    assert_stored(index, index.get(["a"])["a"], v[0])


def test_older_seq_after_newer_is_a_no_op(index: VectorIndex) -> None:
    v = unit(2, 2)
    index.upsert(["a"], v[1:], [9])
    assert index.upsert(["a"], v[:1], [3]) == 0
    assert_stored(index, index.get(["a"])["a"], v[1])
    assert index.seq_of("a") == 9


def test_upsert_older_than_delete_is_a_no_op(index: VectorIndex) -> None:
    v = unit(2, 3)
    index.upsert(["a"], v[:1], [1])
    assert index.delete(["a"], [5]) == 1
    assert index.upsert(["a"], v[1:], [4]) == 0
    assert index.upsert(["a"], v[1:], [5]) == 0
    assert "a" not in index.ids() and index.get(["a"]) == {}
    assert index.search(v[1:], 5) == [[]]
    assert index.seq_of("a") == 5 and len(index) == 0


def test_newer_upsert_after_delete_resurrects(index: VectorIndex) -> None:
    ids, vecs = fill(index, 10)
    index.delete([ids[0]], [5])
    new = unit(1, 77)
    assert index.upsert([ids[0]], new, [6]) == 1
    assert_stored(index, index.get([ids[0]])[ids[0]], new[0])
    assert index.seq_of(ids[0]) == 6
    assert len(index) == 10 and ids[0] in index.ids()
    top = index.search(new, 1)[0][0]
    assert top[0] == ids[0] and top[1] == pytest.approx(1.0, abs=score_atol(index))


def test_delete_of_unseen_id_leaves_a_tombstone(index: VectorIndex) -> None:
    assert index.delete(["ghost"], [7]) == 0
    assert index.seq_of("ghost") == 7
    assert index.upsert(["ghost"], unit(1), [6]) == 0
    assert len(index) == 0
    assert index.delete(["ghost"], [3]) == 0
    assert index.seq_of("ghost") == 7


def test_same_id_twice_in_one_call_takes_highest_seq(index: VectorIndex) -> None:
    v = unit(3, 4)
    assert index.upsert(["a", "a", "a"], v, [3, 8, 5]) == 1
    assert_stored(index, index.get(["a"])["a"], v[1])
    assert index.seq_of("a") == 8
    assert index.delete(["a", "a"], [7, 9]) == 1
    assert index.seq_of("a") == 9


def test_a_tie_within_one_call_keeps_the_first(index: VectorIndex) -> None:
    v = unit(2, 5)
    assert index.upsert(["a", "a"], v, [4, 4]) == 1
    assert_stored(index, index.get(["a"])["a"], v[0])


def test_a_large_batch_follows_the_same_guards(index: VectorIndex) -> None:
    """A backfill page or a vector load: thousands of ids in one call (pgvector sends them by
    COPY), with replays, older seqs, tombstones and duplicates among them."""
    n = 3000
    ids, _ = fill(index, n, seq=10)
    assert index.delete(ids[:100], [20] * 100) == 100
    batch = ids + ["new-a", "new-b", "new-a"]  # 3,003 rows, 3,002 ids
    seqs = [5] * 1000 + [10] * 1000 + [11] * 1000 + [30, 30, 31]
    vecs = unit(len(batch), seed=9)
    # rows 0-999: older than their seq 10 (0-99: than their tombstone): no-ops; 1000-1999: the
    # same seq, a replay: no-ops; 2000-2999 newer: applied; new-a (its later row) and new-b: added
    assert index.upsert(batch, vecs, seqs) == 1002
    assert len(index) == n - 100 + 2
    assert index.seq_of(ids[0]) == 20 and index.seq_of(ids[1500]) == 10 and index.seq_of(ids[2500]) == 11
    stored = index.get([ids[1500], ids[2500], "new-a"])
    assert_stored(index, stored[ids[2500]], vecs[2500])
    assert_stored(index, stored["new-a"], vecs[-1])
    assert index.upsert(batch, vecs, seqs) == 0  # the whole page replayed


def test_forget_tombstones(index: VectorIndex) -> None:
    index.delete(["x", "y", "z"], [1, 5, 9])
    assert index.forget_tombstones(5) == 2
    assert (index.seq_of("x"), index.seq_of("y"), index.seq_of("z")) == (None, None, 9)
    assert index.upsert(["x"], unit(1), [2]) == 1
    assert index.forget_tombstones(100) == 1  # z's; x is live again and keeps its seq
    assert index.seq_of("x") == 2 and index.seq_of("z") is None


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vectors",
    [
        np.zeros((1, DIM + 1), dtype=np.float32),
        np.zeros(DIM, dtype=np.float32),
        np.full((1, DIM), np.nan, dtype=np.float32),
        np.full((1, DIM), np.inf, dtype=np.float32),
        np.full((1, DIM), 1e300, dtype=np.float64),
        np.array([["a"] * DIM]),
    ],
    ids=["wrong-dim", "one-dim", "nan", "inf", "overflow", "strings"],
)
def test_bad_vectors_are_invalid_requests(index: VectorIndex, vectors: np.ndarray) -> None:
    with pytest.raises(InvalidRequest):
        index.upsert(["a"], vectors, [1])
    with pytest.raises(InvalidRequest):
        index.search(vectors, 3)
    assert len(index) == 0 and index.seq_of("a") is None


def test_length_mismatches_are_invalid_requests(index: VectorIndex) -> None:
    with pytest.raises(InvalidRequest, match="one vector per id"):
        index.upsert(["a", "b"], unit(1), [1, 2])
    with pytest.raises(InvalidRequest, match="one seq per id"):
        index.upsert(["a"], unit(1), [1, 2])
    with pytest.raises(InvalidRequest, match="one seq per id"):
        index.delete(["a"], [])
    with pytest.raises(InvalidRequest):
        index.search(unit(1), -1)


def test_empty_writes_are_no_ops(index: VectorIndex) -> None:
    assert index.upsert([], np.zeros((0, DIM), dtype=np.float32), []) == 0
    assert index.upsert([], np.array([]), []) == 0
    assert index.delete([], []) == 0


# --- lifecycle ----------------------------------------------------------------------------------


def test_checkpointed_writes_survive_a_reopen(index_type: str, tmp_path: Path, host: PgHost | None) -> None:
    first = open_seam(index_type, tmp_path / "idx", host)
    ids, vecs = fill(first, 50)
    first.delete(ids[:5], [2] * 5)
    first.delete(["never-seen"], [3])
    first.checkpoint()
    first.close()
    again = open_seam(index_type, tmp_path / "idx", host)
    assert sorted(again.ids()) == sorted(ids[5:]) and len(again) == 45
    assert again.seq_of("never-seen") == 3 and again.seq_of(ids[0]) == 2
    assert_stored(again, again.get(ids[5:6])[ids[5]], vecs[5])
    assert again.upsert(ids[:1], unit(1), [2]) == 0
    again.close()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("fingerprint", "cd" * 32, "built by model abababababab, not cdcdcdcdcdcd"),
        ("dim", DIM * 2, f"holds {DIM}-dim vectors, not {DIM * 2}-dim"),
    ],
)
def test_opening_with_another_model_is_index_mismatch(
    index_type: str, tmp_path: Path, host: PgHost | None, field: str, value: object, says: str
) -> None:
    index = open_seam(index_type, tmp_path / "idx", host)
    fill(index, 5)
    index.checkpoint()
    index.close()
    meta = IndexMeta(**{**META.__dict__, field: value})
    with pytest.raises(IndexMismatch, match=says) as err:
        open_seam(index_type, tmp_path / "idx", host, meta)
    assert err.value.context == {"field": field, "on_disk": getattr(META, field), "requested": value}


def test_closed_index_refuses_calls(index: VectorIndex) -> None:
    fill(index, 5)
    index.close()
    with pytest.raises(Unavailable, match="closed"):
        index.search(unit(1), 1)
    with pytest.raises(Unavailable, match="closed"):
        index.upsert(["a"], unit(1), [9])
    with pytest.raises(Unavailable, match="closed"):
        index.delete(["a"], [9])


def test_destroy_deletes_everything(index_type: str, tmp_path: Path, host: PgHost | None) -> None:
    index = open_seam(index_type, tmp_path / "idx", host)
    fill(index, 5)
    index.delete(["ghost"], [4])
    index.checkpoint()
    index.destroy()
    again = open_seam(index_type, tmp_path / "idx", host)
    assert len(again) == 0 and again.ids() == [] and again.seq_of("ghost") is None
    assert again.upsert(["r0"], unit(1), [1]) == 1
    again.close()
