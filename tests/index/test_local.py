"""LocalIndex: background rebuilds once deleted slots pile up, and what an index reports it holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from _indexes import META, open_typed, unit

from embedswitch.index import _local
from embedswitch.index._ids import IdMap
from embedswitch.index._local import LocalIndex
from embedswitch.index.hnsw import HnswStorage


@pytest.fixture
def small_rebuilds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuild past 20 dead slots, copying 16 vectors per step, so a small index shows it all."""
    monkeypatch.setattr(_local, "REBUILD_MIN", 20)
    monkeypatch.setattr(_local, "REBUILD_CHUNK", 16)


def churned(directory: Path, n: int = 200, deleted: int = 120) -> tuple[LocalIndex, list[str], np.ndarray]:
    index = open_typed("hnsw", directory)
    ids = [f"r{i}" for i in range(n)]
    vectors = unit(n, 1)
    index.upsert(ids, vectors, [1] * n)
    index.delete(ids[:deleted], [2] * deleted)
    return index, ids, vectors


def test_deleted_slots_past_the_ratio_start_a_rebuild_at_checkpoint(
    tmp_path: Path, small_rebuilds: None
) -> None:
    index, ids, vectors = churned(tmp_path / "idx", deleted=10)
    index.checkpoint()  # 10 dead slots: under the minimum, nothing happens
    assert index.wait_rebuilt(5) and index.rebuilds == 0
    index.delete(ids[10:120], [2] * 110)
    assert index._storage.dead_slots() == 120 and index._map.holes == 120
    memory = index.memory_bytes()
    index.checkpoint()
    assert index.wait_rebuilt(60) and index.rebuilds == 1 and index.rebuild_error is None
    assert index._storage.dead_slots() == 0 and index._map.holes == 0
    assert index.memory_bytes() < memory
    assert sorted(index.ids()) == sorted(ids[120:])
    assert index.tombstones() == dict.fromkeys(ids[:120], 2)
    got = index.get(ids[120:])
    for i, id_ in enumerate(ids[120:], start=120):
        np.testing.assert_array_equal(got[id_], vectors[i])
    index.checkpoint()  # writes the rebuilt graph; nothing is due any more
    assert index.wait_rebuilt(5) and index.rebuilds == 1
    index.close()
    reopened = open_typed("hnsw", tmp_path / "idx")
    assert sorted(reopened.ids()) == sorted(ids[120:]) and reopened._storage.dead_slots() == 0


def test_searches_and_writes_go_on_during_a_rebuild(tmp_path: Path, small_rebuilds: None) -> None:
    index, ids, vectors = churned(tmp_path / "idx")
    copying = threading.Event()
    resume = threading.Event()
    real_add = HnswStorage.add

    def slow_add(self: HnswStorage, keys: np.ndarray, values: np.ndarray, threads: int) -> None:
        if self is not index._storage:  # the rebuild's graph: hold it between two chunks
            copying.set()
            resume.wait(10)
        real_add(self, keys, values, threads)

    searched: list[list[tuple[str, float]]] = []
    errors: list[BaseException] = []

    def search_while_rebuilding() -> None:
        try:
            copying.wait(10)
            for q in range(50):
                searched.append(index.search(unit(1, 100 + q), 5)[0])
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread below
            errors.append(exc)

    late = unit(3, 7)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HnswStorage, "add", slow_add)
        searcher = threading.Thread(target=search_while_rebuilding)
        searcher.start()
        index.checkpoint()
        assert copying.wait(10), "the rebuild did not start"
        # the rebuild is copying: every search and write still goes through at once
        assert index.upsert(["new-1", ids[150], ids[5]], late, [3, 3, 3]) == 3
        assert index.delete([ids[160], ids[0]], [3, 3]) == 1
        assert index.upsert([ids[170]], late[:1], [1]) == 0
        searcher.join(10)
        assert not errors and len(searched) == 50 and not index.wait_rebuilt(0)
        resume.set()
        assert index.wait_rebuilt(60)
    assert index.rebuilds == 1 and index.rebuild_error is None
    assert all(len(hits) == 5 for hits in searched)
    live = set(ids[120:]) - {ids[160]} | {"new-1", ids[5]}
    assert set(index.ids()) == live and index._map.holes == 0
    got = index.get(["new-1", ids[150], ids[5], ids[170]])
    np.testing.assert_array_equal(got["new-1"], late[0])
    np.testing.assert_array_equal(got[ids[150]], late[1])
    np.testing.assert_array_equal(got[ids[5]], late[2])
    np.testing.assert_array_equal(got[ids[170]], vectors[170])
    assert index.seq_of(ids[160]) == 3 and index.seq_of(ids[0]) == 3


def test_a_crash_before_the_rebuilt_checkpoint_reopens_the_old_one(
    tmp_path: Path, small_rebuilds: None
) -> None:
    index, ids, _ = churned(tmp_path / "idx")
    index.checkpoint()
    assert index.wait_rebuilt(60) and index.rebuilds == 1
    index.close()  # no checkpoint after the swap: as if the process died here
    reopened = open_typed("hnsw", tmp_path / "idx")
    assert sorted(reopened.ids()) == sorted(ids[120:])
    assert reopened._storage.dead_slots() == 120  # the old graph, which rebuilds again
    reopened.checkpoint()
    assert reopened.wait_rebuilt(60) and reopened.rebuilds == 1


def test_closing_during_a_rebuild_drops_it(tmp_path: Path, small_rebuilds: None) -> None:
    index, _, _ = churned(tmp_path / "idx")
    index.checkpoint()
    index.close()
    assert index.wait_rebuilt(60) and index.rebuilds == 0 and index.memory_bytes() == 0


def test_id_map_holds_one_entry_per_id_and_arrays_per_key() -> None:
    ids_map = IdMap()
    keys = ids_map.add([f"id-{i}" for i in range(1000)], list(range(1000)))
    assert keys.tolist() == list(range(1000))
    ids_map.remove([f"id-{i}" for i in range(500)])
    assert len(ids_map) == 500 and ids_map.holes == 500 and ids_map.next_key == 1000
    assert ids_map.seq_of("id-700") == 700 and ids_map.seq_of("id-1") is None
    assert 40_000 < ids_map.nbytes() < 200_000  # ~100 B per live id + 16 per key: no per-id dicts of seqs


@pytest.mark.parametrize("index_type", ["exact", "hnsw", "usearch-f16", "usearch-i8"])
def test_memory_bytes_match_what_the_process_allocates(index_type: str, tmp_path: Path) -> None:
    """Build 20,000 x 64 vectors in a fresh process: the index's own account is within 25% of the
    process's resident memory growth (usearch's counts reserved capacity, so only an upper bound).
    glibc's mmap threshold is fixed so that freed temporaries go back to the system."""
    script = f"""
import json, numpy as np, sys
sys.path[:0] = {[str(Path(__file__).parents[1]), str(Path(__file__).parents[2])]!r}
from _indexes import META, open_typed, unit
from embedswitch.index import IndexMeta
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
meta = IndexMeta(META.collection, META.version, META.kind, META.fingerprint, 64)
data = unit(20_000, 3, 64)
before = rss()
index = open_typed({index_type!r}, {str(tmp_path / "idx")!r}, meta)
ids = [f"doc-{{i}}" for i in range(20_000)]
for start in range(0, 20_000, 5_000):
    index.upsert(ids[start:start + 5_000], data[start:start + 5_000], [1] * 5_000)
del ids
print(json.dumps({{"rss": rss() - before, "memory": index.memory_bytes()}}))
"""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    if index_type.startswith("usearch"):
        assert measured["memory"] >= 0.75 * measured["rss"]
    else:
        assert measured["memory"] == pytest.approx(measured["rss"], rel=0.25)


def test_disk_bytes_are_the_checkpoint_files(tmp_path: Path) -> None:
    index = open_typed("exact", tmp_path / "idx", META)
    index.upsert([f"r{i}" for i in range(100)], unit(100), [1] * 100)
    assert index.disk_bytes() == 0
    index.checkpoint()
    files = [*(tmp_path / "idx").glob("ckpt-*/*"), tmp_path / "idx" / "CURRENT"]
    assert index.disk_bytes() == sum(p.stat().st_size for p in files) > 100 * META.dim * 4
