"""What the embedded index types do with their directory, run against each (the congruence
pattern): checkpoints, reopening, crash recovery, durable segments, the meta kept on disk.

The seam's behaviour (seq guards, tombstones, search, reads, counts), the same for every type,
pgvector included, is in ``test_index_seam.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
from _indexes import DIM, META, SPECS, TYPES, assert_stored, open_typed, unit

from embedswitch._errors import EmbedswitchError, IndexMismatch, Unavailable
from embedswitch.index import IndexMeta, VectorIndex, _local
from embedswitch.index._files import CURRENT
from embedswitch.index._local import LocalIndex


@pytest.fixture(params=TYPES)
def index_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def index(index_type: str, tmp_path: Path) -> Iterator[LocalIndex]:
    idx = open_typed(index_type, tmp_path / "idx")
    yield idx
    idx.close()


def fill(index: VectorIndex, n: int, seed: int = 0, seq: int = 1) -> tuple[list[str], np.ndarray]:
    ids = [f"r{i}" for i in range(n)]
    vecs = unit(n, seed)
    assert index.upsert(ids, vecs, [seq] * n) == n
    return ids, vecs


# --- memory and disk ------------------------------------------------------------------------


def test_memory_and_disk_bytes_grow_with_content(index: LocalIndex) -> None:
    before = index.memory_bytes()
    assert index.disk_bytes() == 0
    fill(index, 200)
    assert index.memory_bytes() > before
    index.checkpoint()
    assert index.disk_bytes() > 200 * DIM * 2


# --- persistence --------------------------------------------------------------------------------


def state_of(index: LocalIndex) -> dict[str, object]:
    ids = sorted(index.ids())
    vectors = index.get(ids)
    return {
        "ids": ids,
        "seqs": {i: index.seq_of(i) for i in ids},
        "tombstones": index.tombstones(),
        "vectors": {i: vectors[i].tobytes() for i in ids},
        "search": index.search(unit(5, 123), 10),
    }


def test_checkpoint_and_reopen_restore_everything(index_type: str, tmp_path: Path) -> None:
    first = open_typed(index_type, tmp_path / "idx")
    ids, _ = fill(first, 300)
    first.delete(ids[:40], [2] * 40)
    first.delete(["never-seen"], [3])
    first.upsert(ids[50:60], unit(10, 5), [4] * 10)
    first.checkpoint()
    expected = state_of(first)
    first.close()

    again = open_typed(index_type, tmp_path / "idx")
    assert state_of(again) == expected
    assert again.upsert(ids[50:51], unit(1, 6), [4]) == 0
    assert again.upsert(ids[:1], unit(1, 6), [2]) == 0
    assert again.upsert(ids[:1], unit(1, 6), [3]) == 1
    fresh = again.upsert(["new"], unit(1, 7), [1])
    assert fresh == 1 and len(set(again._map.key_of.values())) == len(again)


def test_writes_after_checkpoint_are_lost_without_another(index_type: str, tmp_path: Path) -> None:
    first = open_typed(index_type, tmp_path / "idx")
    ids, _ = fill(first, 10)
    first.checkpoint()
    first.upsert(["late"], unit(1, 1), [2])
    first.delete(ids[:2], [2, 2])
    first.close()
    again = open_typed(index_type, tmp_path / "idx")
    assert sorted(again.ids()) == sorted(ids)


def test_checkpoint_layout_and_clean_no_op(index: LocalIndex) -> None:
    fill(index, 10)
    index.checkpoint()
    directory = index.directory
    assert (directory / CURRENT).read_text().strip() == "ckpt-1"
    stamp = (directory / CURRENT).stat().st_mtime_ns
    index.checkpoint()
    assert (directory / CURRENT).stat().st_mtime_ns == stamp
    index.upsert(["x"], unit(1), [5])
    index.checkpoint()
    assert sorted(p.name for p in directory.iterdir()) == [CURRENT, "ckpt-2"]
    for name in ("meta.json", "state.json", "keys.npy", "seqs.npy", "tombstone_seqs.npy"):
        assert (directory / "ckpt-2" / name).is_file()


def test_empty_index_checkpoint_records_meta(index_type: str, tmp_path: Path) -> None:
    open_typed(index_type, tmp_path / "idx").checkpoint()
    other = IndexMeta("docs", "v1", "text", "cd" * 32, DIM)
    with pytest.raises(IndexMismatch):
        open_typed(index_type, tmp_path / "idx", other)


def test_crash_while_writing_checkpoint_keeps_previous(
    index_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    ids, _ = fill(index, 50)
    index.checkpoint()
    expected = state_of(index)
    index.upsert(["late"], unit(1, 3), [2])
    index.delete(ids[:10], [3] * 10)

    def crash(self: object, directory: Path) -> list[Path]:
        (directory / "vectors.partial").write_bytes(b"\0" * 100)
        raise OSError("disk full")

    monkeypatch.setattr(type(index._storage), "save", crash)
    with pytest.raises(OSError, match="disk full"):
        index.checkpoint()
    monkeypatch.undo()
    assert (tmp_path / "idx" / "ckpt-2").is_dir()

    reopened = open_typed(index_type, tmp_path / "idx")
    assert state_of(reopened) == expected
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [CURRENT, "ckpt-1"]


def test_crash_before_current_is_replaced_keeps_previous(
    index_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    fill(index, 50)
    index.checkpoint()
    expected = state_of(index)
    index.upsert(["late"], unit(1, 3), [2])

    def crash(directory: Path, name: str) -> None:
        (directory / (CURRENT + ".tmp")).write_text("ckpt-")
        raise OSError("power cut")

    monkeypatch.setattr(_local, "publish", crash)
    with pytest.raises(OSError, match="power cut"):
        index.checkpoint()
    monkeypatch.undo()
    assert (tmp_path / "idx" / "ckpt-2" / "meta.json").is_file()

    reopened = open_typed(index_type, tmp_path / "idx")
    assert state_of(reopened) == expected
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [CURRENT, "ckpt-1"]
    reopened.upsert(["after"], unit(1, 4), [3])
    reopened.checkpoint()
    assert (tmp_path / "idx" / CURRENT).read_text().strip() == "ckpt-2"


def test_hand_made_half_checkpoint_dir_is_ignored(index_type: str, tmp_path: Path) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    fill(index, 20)
    index.checkpoint()
    expected = state_of(index)
    index.close()
    half = tmp_path / "idx" / "ckpt-9"
    half.mkdir()
    (half / "meta.json").write_text('{"trunc')
    reopened = open_typed(index_type, tmp_path / "idx")
    assert state_of(reopened) == expected
    assert not half.exists()


def test_durable_upserts_survive_without_a_checkpoint(index_type: str, tmp_path: Path) -> None:
    """Reopened without a checkpoint, an index holds its last checkpoint plus the durable upserts
    made after it, re-applied in order through the seq guards; its other writes since are lost."""
    v = unit(6, 11)
    index = open_typed(index_type, tmp_path / "idx")
    index.upsert(["a", "b"], v[:2], [1, 1], durable=True)  # before any checkpoint
    index.upsert(["lost"], v[2:3], [1])
    assert index.disk_bytes() > 0
    index.close()
    index = open_typed(index_type, tmp_path / "idx")
    assert sorted(index.ids()) == ["a", "b"]
    index.checkpoint()
    index.upsert(["c", "d"], v[2:4], [3, 3], durable=True)
    index.upsert(["c", "d"], v[4:6], [5, 2], durable=True)  # d at seq 2 is older: a no-op
    index.delete(["a"], [4])
    index.upsert(["e"], v[:1], [4])
    index.close()

    reopened = open_typed(index_type, tmp_path / "idx")
    assert sorted(reopened.ids()) == ["a", "b", "c", "d"]
    assert (reopened.seq_of("c"), reopened.seq_of("d")) == (5, 3)
    stored = reopened.get(["c", "d"])
    assert_stored(reopened, stored["c"], v[4])
    assert_stored(reopened, stored["d"], v[3])
    reopened.checkpoint()
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [CURRENT, "ckpt-2"]
    expected = state_of(reopened)
    reopened.close()
    assert state_of(open_typed(index_type, tmp_path / "idx")) == expected


def test_a_half_written_segment_is_ignored(
    index_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while a durable upsert writes its segment (injected: the write fails half-way)
    leaves the index as it was, in memory and on disk; the segments written around it are kept."""
    index = open_typed(index_type, tmp_path / "idx")
    fill(index, 10)
    index.checkpoint()
    expected = state_of(index)

    def crash(file: BinaryIO, **arrays: np.ndarray) -> None:
        file.write(b"PK\x03\x04 half a segment")
        raise OSError("power cut")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="power cut"):
        index.upsert(["x"], unit(1), [2], durable=True)
    monkeypatch.undo()
    assert index.seq_of("x") is None
    index.close()
    reopened = open_typed(index_type, tmp_path / "idx")
    assert state_of(reopened) == expected
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [CURRENT, "ckpt-1"]

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="power cut"):
        reopened.upsert(["x"], unit(1), [2], durable=True)
    monkeypatch.undo()
    reopened.upsert(["y"], unit(1, 5), [3], durable=True)
    reopened.close()
    again = open_typed(index_type, tmp_path / "idx")
    again.upsert(["z"], unit(1, 6), [4], durable=True)  # numbered after y's, never over it
    again.close()
    assert {"x", "y", "z"} & set(open_typed(index_type, tmp_path / "idx").ids()) == {"y", "z"}


def test_segments_a_checkpoint_holds_are_never_replayed(
    index_type: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after a checkpoint is published but before the segments it holds are removed
    (injected: their removal is skipped): on open they are debris, so a record deleted since,
    its tombstone forgotten, does not come back from them."""
    index = open_typed(index_type, tmp_path / "idx")
    index.checkpoint()
    index.upsert(["a"], unit(1), [5], durable=True)
    monkeypatch.setattr(_local, "remove_debris", lambda directory, keep: None)
    index.checkpoint()
    index.delete(["a"], [6])
    index.forget_tombstones(6)
    index.checkpoint()
    monkeypatch.undo()
    assert (tmp_path / "idx" / "seg-1-1.npz").is_file()
    index.close()
    reopened = open_typed(index_type, tmp_path / "idx")
    assert reopened.ids() == [] and reopened.seq_of("a") is None
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [CURRENT, "ckpt-3"]


def test_current_naming_a_missing_checkpoint_is_a_clear_error(index_type: str, tmp_path: Path) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    index.checkpoint()
    index.close()
    (tmp_path / "idx" / CURRENT).write_text("ckpt-42\n")
    with pytest.raises(EmbedswitchError, match="corrupt: CURRENT names 'ckpt-42'"):
        open_typed(index_type, tmp_path / "idx")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("version", "v2", "version 'v1', not 'v2'"),
        ("kind", "image", "kind 'text', not 'image'"),
        ("collection", "other", "collection 'docs', not 'other'"),
    ],
)
def test_opening_with_another_meta_is_index_mismatch(
    index_type: str, tmp_path: Path, field: str, value: object, says: str
) -> None:
    """A directory can be opened under any meta (another model: ``test_index_seam.py``)."""
    index = open_typed(index_type, tmp_path / "idx")
    fill(index, 5)
    index.checkpoint()
    index.close()
    meta = IndexMeta(**{**META.__dict__, field: value})
    with pytest.raises(IndexMismatch, match=says) as err:
        open_typed(index_type, tmp_path / "idx", meta)
    assert err.value.context["field"] == field
    assert err.value.context["on_disk"] == getattr(META, field)
    assert err.value.context["requested"] == value


def test_opening_as_another_type_is_index_mismatch(index_type: str, tmp_path: Path) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    index.checkpoint()
    other = "hnsw" if index_type == "exact" else "exact"
    on_disk = SPECS[index_type]["type"]
    with pytest.raises(IndexMismatch, match=f"open it with type='{on_disk}' or type='auto'"):
        open_typed(other, tmp_path / "idx")


def test_close_and_destroy(index_type: str, tmp_path: Path) -> None:
    index = open_typed(index_type, tmp_path / "idx")
    fill(index, 5)
    index.checkpoint()
    index.close()
    with pytest.raises(Unavailable):
        index.search(unit(1), 1)
    with pytest.raises(Unavailable):
        index.upsert(["a"], unit(1), [9])
    index.destroy()
    assert not (tmp_path / "idx").exists()
