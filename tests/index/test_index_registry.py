"""Index specs, open_index, the auto exact->HNSW conversion, HNSW recall and the size warning."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pydantic
import pytest

import embedswitch.index as index_pkg
from embedswitch.index import AutoSpec, IndexMeta, VectorIndex, _local, index_spec, open_index
from embedswitch.index._files import stored_type
from embedswitch.index._local import LocalIndex
from embedswitch.index.auto import AutoIndex
from embedswitch.index.exact import ExactIndex
from embedswitch.index.hnsw import HnswIndex, HnswStorage
from embedswitch.index.usearch import UsearchIndex

DIM = 16
META = IndexMeta(collection="docs", version="v1", kind="text", fingerprint="ef" * 32, dim=DIM)


def unit(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_public_api() -> None:
    assert sorted(index_pkg.__all__) == [
        "Allowed",
        "AutoSpec",
        "ExactSpec",
        "HnswSpec",
        "IndexMeta",
        "IndexSpec",
        "MilvusSpec",
        "PgvectorSpec",
        "QdrantSpec",
        "SearchParams",
        "UsearchSpec",
        "VectorIndex",
        "index_spec",
        "open_index",
    ]


def test_spec_defaults_and_validation() -> None:
    spec = index_spec({})
    assert isinstance(spec, AutoSpec)
    assert (spec.type, spec.m, spec.ef_construction, spec.ef_search, spec.auto_threshold) == (
        "auto",
        16,
        128,
        64,
        20_000,
    )
    with pytest.raises(pydantic.ValidationError):
        index_spec({"type": "ivf"})
    with pytest.raises(pydantic.ValidationError):
        index_spec({"ef": 10})
    with pytest.raises(pydantic.ValidationError, match="auto_threshold"):
        index_spec({"type": "hnsw", "auto_threshold": 10})  # each type takes only its own fields
    with pytest.raises(pydantic.ValidationError):
        index_spec({"type": "exact", "m": 8})
    with pytest.raises(pydantic.ValidationError):
        spec.m = 32  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="m"):  # strict: no float or string for an int
        index_spec({"type": "hnsw", "m": 16.0})


@pytest.mark.parametrize(
    ("type_", "cls"),
    [("exact", ExactIndex), ("hnsw", HnswIndex), ("usearch", UsearchIndex), ("auto", AutoIndex)],
)
def test_open_index_types(tmp_path: Path, type_: str, cls: type) -> None:
    index = open_index(index_spec({"type": type_}), tmp_path / "idx", META)
    assert isinstance(index, cls)
    assert isinstance(index, VectorIndex)
    assert index.meta == META


def test_auto_reopens_whatever_type_is_on_disk(tmp_path: Path) -> None:
    for type_, cls in (("hnsw", HnswIndex), ("exact", AutoIndex)):
        directory = tmp_path / type_
        index = open_index(index_spec({"type": type_}), directory, META)
        index.upsert(["a"], unit(1), [1])
        index.checkpoint()
        index.close()
        assert stored_type(directory) == type_
        again = open_index(index_spec({}), directory, META)
        assert isinstance(again, cls) and again.index_type == type_
        assert again.ids() == ["a"]


def test_hnsw_keeps_the_m_it_was_built_with(tmp_path: Path) -> None:
    index = open_index(index_spec({"type": "hnsw", "m": 8}), tmp_path / "idx", META)
    index.upsert(["a", "b"], unit(2), [1, 1])
    index.checkpoint()
    index.close()
    again = open_index(index_spec({"type": "hnsw", "m": 32, "ef_search": 99}), tmp_path / "idx", META)
    assert isinstance(again, HnswIndex)
    assert again._storage.params() == {"m": 8, "ef_construction": 128, "ef_search": 99}


def full_state(index: VectorIndex) -> dict[str, object]:
    ids = sorted(index.ids())
    vectors = index.get(ids)
    tombstones = index.tombstones() if isinstance(index, LocalIndex) else None
    return {
        "ids": ids,
        "seqs": {i: index.seq_of(i) for i in ids},
        "tombstones": tombstones,
        "vectors": {i: vectors[i].tobytes() for i in ids},
    }


def build_auto(directory: Path, threshold: int, n: int) -> AutoIndex:
    index = open_index(index_spec({"auto_threshold": threshold}), directory, META)
    assert isinstance(index, AutoIndex)
    ids = [f"r{i}" for i in range(n)]
    index.upsert(ids, unit(n, 1), [10] * n)
    index.delete(ids[:5] + ["ghost"], [11] * 6)
    index.upsert(ids[5:8], unit(3, 2), [12] * 3)
    return index


def converted(index: AutoIndex) -> None:
    """Checkpoint, let the conversion it starts finish, and checkpoint what it built (after a failed
    conversion that checkpoint starts another; wait for that one too, so none is left running)."""
    index.checkpoint()
    assert index.wait_rebuilt(60)
    index.checkpoint()
    assert index.wait_rebuilt(60)


def test_auto_stays_exact_up_to_threshold(tmp_path: Path) -> None:
    index = build_auto(tmp_path / "idx", threshold=40, n=45)
    assert len(index) == 40
    converted(index)
    assert index.index_type == "exact"
    assert stored_type(tmp_path / "idx") == "exact"


def test_auto_converts_to_hnsw_at_checkpoint_keeping_all_state(tmp_path: Path) -> None:
    index = build_auto(tmp_path / "idx", threshold=30, n=60)
    before = full_state(index)
    before_search = index.search(unit(3, 9), 60)
    assert index.index_type == "exact"

    converted(index)
    assert index.index_type == "hnsw"
    assert isinstance(index._storage, HnswStorage)
    assert stored_type(tmp_path / "idx") == "hnsw"
    assert full_state(index) == before
    assert index.seq_of("ghost") == 11 and index.seq_of("r0") == 11
    assert index.upsert(["r0"], unit(1), [11]) == 0
    after_search = index.search(unit(3, 9), 60)
    for old, new in zip(before_search, after_search, strict=True):
        assert [i for i, _ in old] == [i for i, _ in new]
        np.testing.assert_allclose([s for _, s in old], [s for _, s in new], atol=1e-5)

    index.close()
    reopened = open_index(index_spec({"auto_threshold": 30}), tmp_path / "idx", META)
    assert isinstance(reopened, HnswIndex)
    assert full_state(reopened) == before


def test_writes_during_conversion_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = build_auto(tmp_path / "idx", threshold=30, n=60)
    real_add = HnswStorage.add
    late = unit(2, 42)
    wrote: list[bool] = []

    def add_while_writing(self: HnswStorage, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        if not wrote:  # the first chunk of the conversion: write meanwhile, from this thread
            wrote.append(True)
            assert index.upsert(["r10", "brand-new"], late, [13, 13]) == 2
            assert index.delete(["r11"], [13]) == 1
            assert index.upsert(["r12"], late[:1], [1]) == 0
        real_add(self, keys, vectors, threads)

    monkeypatch.setattr(HnswStorage, "add", add_while_writing)
    converted(index)
    assert wrote and index.index_type == "hnsw"
    got = index.get(["r10", "brand-new", "r11"])
    np.testing.assert_array_equal(got["r10"], late[0])
    np.testing.assert_array_equal(got["brand-new"], late[1])
    assert "r11" not in got and index.seq_of("r11") == 13
    assert len(index) == 55
    index.close()
    monkeypatch.undo()
    assert len(open_index(index_spec({}), tmp_path / "idx", META)) == 55


def test_failed_conversion_keeps_serving_exact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = build_auto(tmp_path / "idx", threshold=30, n=60)
    before = full_state(index)

    def broken(*args: object, **kwargs: object) -> None:
        raise MemoryError("no room for the graph")

    monkeypatch.setattr(HnswStorage, "add", broken)
    converted(index)
    assert index.index_type == "exact"
    assert index.rebuild_error == "MemoryError: no room for the graph"
    index.upsert(["after"], unit(1, 5), [20])
    monkeypatch.undo()
    converted(index)
    assert index.index_type == "hnsw" and index.rebuild_error is None
    assert full_state(index)["ids"] == sorted([*before["ids"], "after"])  # type: ignore[misc]


def test_searches_keep_working_during_conversion(tmp_path: Path) -> None:
    index = build_auto(tmp_path / "idx", threshold=100, n=3000)
    stop = threading.Event()
    errors: list[BaseException] = []
    counts: list[int] = []

    def search_loop() -> None:
        try:
            while not stop.is_set():
                counts.append(len(index.search(unit(1, len(counts)), 5)[0]))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        converted(index)
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert index.index_type == "hnsw"
    assert counts and set(counts) == {5}


@pytest.mark.parametrize(("dim", "ef_search"), [(32, 64), (128, 256)])
def test_hnsw_recall_at_10_matches_exact(tmp_path: Path, dim: int, ef_search: int) -> None:
    """Uniform random vectors are HNSW's worst case; at 128 dims they need a deeper search."""
    meta = IndexMeta("docs", "v1", "text", "ef" * 32, dim)
    data, queries = unit(5000, 1, dim), unit(200, 2, dim)
    ids = [str(i) for i in range(5000)]
    exact = open_index(index_spec({"type": "exact"}), tmp_path / "exact", meta)
    hnsw = open_index(index_spec({"type": "hnsw", "ef_search": ef_search}), tmp_path / "hnsw", meta)
    for index in (exact, hnsw):
        index.upsert(ids, data, [1] * len(ids))
    truth = exact.search(queries, 10)
    found = hnsw.search(queries, 10)
    recall = np.mean(
        [len({i for i, _ in t} & {i for i, _ in f}) / 10 for t, f in zip(truth, found, strict=True)]
    )
    assert recall >= 0.95


def test_warns_once_past_large_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_local, "LARGE_INDEX_WARNING", 10)
    index = open_index(index_spec({"type": "exact"}), tmp_path / "idx", META)
    with caplog.at_level(logging.WARNING, logger="embedswitch"):
        index.upsert([f"a{i}" for i in range(10)], unit(10), [1] * 10)
        assert not caplog.records
        index.upsert([f"b{i}" for i in range(5)], unit(5), [1] * 5)
        index.upsert([f"c{i}" for i in range(5)], unit(5), [1] * 5)
    assert len(caplog.records) == 1
    assert "pgvector" in caplog.text and "Milvus" in caplog.text
