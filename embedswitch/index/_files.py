"""Checkpoint files of the in-process indexes: crash-safe directories, ``CURRENT``, meta checks.

On disk, an index directory holds::

    CURRENT            names the live checkpoint, e.g. "ckpt-7"
    ckpt-7/meta.json   what built the index (collection, version, kind, fingerprint, dim, type)
    ckpt-7/state.json  live ids and tombstoned ids, in the order of the arrays below
    ckpt-7/keys.npy    int64 storage key per live id
    ckpt-7/seqs.npy    int64 last seq per live id
    ckpt-7/tombstone_seqs.npy
    ckpt-7/...         the storage's vector files
    seg-7-1.npz        a durable segment: ids, seqs and vectors of one upsert made after ckpt-7
    seg-7-2.npz        ...

A checkpoint is written into a fresh directory, fsynced, and only then named by ``CURRENT``
(replaced atomically), so a crash at any point leaves the previous checkpoint intact. Any other
``ckpt-*`` directory is debris of an interrupted checkpoint and is removed on open.

A segment makes one upsert durable without a checkpoint (a backfill page, a vector load): it is
written under a temporary name, fsynced and renamed, so it is complete or absent. On open the
segments of the live checkpoint are replayed over it in order, through the seq guards; the next
checkpoint holds their writes, and the segments of older checkpoints are removed as debris.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedswitch._errors import EmbedswitchError, IndexMismatch
from embedswitch.index.base import IndexMeta

CURRENT = "CURRENT"
CKPT_RE = re.compile(r"^ckpt-(\d+)$")
SEG_RE = re.compile(r"^seg-(\d+)-(\d+)\.npz$")
PARTIAL = ".partial"


def read_current(directory: Path) -> str | None:
    """The checkpoint directory name CURRENT points at, or None when there is no checkpoint yet."""
    try:
        name = (Path(directory) / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not CKPT_RE.match(name) or not (Path(directory) / name / "meta.json").is_file():
        raise EmbedswitchError(
            f"index directory {directory} is corrupt: CURRENT names {name!r}, which is missing; "
            "restore the directory from a backup or rebuild this version",
            path=str(directory),
        )
    return name


def read_meta(ckpt: Path) -> dict[str, Any]:
    """The meta.json of a checkpoint directory."""
    with open(ckpt / "meta.json", encoding="utf-8") as f:
        meta: dict[str, Any] = json.load(f)
    return meta


def stored_type(directory: Path) -> str | None:
    """The index type of the checkpoint in ``directory``, or None when there is none."""
    current = read_current(directory)
    if current is None:
        return None
    return str(read_meta(Path(directory) / current)["index_type"])


def disk_bytes(directory: Path) -> int:
    """Bytes of the live checkpoint's files in ``directory``, of ``CURRENT`` and of the live
    checkpoint's segments (0 before the first checkpoint and segment).

    A checkpoint may replace the live one while this reads (it is a report, not under the index's
    lock): files that vanished meanwhile are looked up again from ``CURRENT``."""
    for _ in range(100):
        try:
            current = read_current(directory)
            segments = sum(path.stat().st_size for path in segment_paths(directory, generation(current)))
            if current is None:
                return segments
            with os.scandir(Path(directory) / current) as entries:
                files = sum(entry.stat().st_size for entry in entries if entry.is_file())
            return files + (Path(directory) / CURRENT).stat().st_size + segments
        except (FileNotFoundError, EmbedswitchError):  # replaced while read: CURRENT names the next
            continue
    return 0  # checkpoints kept replacing each other under this read; nothing stable to report


def check_meta(disk: dict[str, Any], meta: IndexMeta, index_type: str, directory: Path) -> None:
    """Raise ``IndexMismatch`` naming the first field where the checkpoint differs from ``meta``."""
    where = f"index at {directory}"
    if disk["fingerprint"] != meta.fingerprint:
        _mismatch(
            "fingerprint",
            disk["fingerprint"],
            meta.fingerprint,
            f"{where} was built by model {disk['fingerprint'][:12]}, not {meta.fingerprint[:12]}; open it "
            "with the same model spec, or create a new version for the new model",
        )
    if int(disk["dim"]) != meta.dim:
        _mismatch(
            "dim",
            disk["dim"],
            meta.dim,
            f"{where} holds {disk['dim']}-dim vectors, not {meta.dim}-dim; open it with the model "
            "that built it, or create a new version",
        )
    for name in ("collection", "version", "kind"):
        if disk[name] != getattr(meta, name):
            _mismatch(
                name,
                disk[name],
                getattr(meta, name),
                f"{where} belongs to {name} {disk[name]!r}, not {getattr(meta, name)!r}; "
                f"give each {name} its own index directory",
            )
    if disk["index_type"] != index_type:
        _mismatch(
            "index_type",
            disk["index_type"],
            index_type,
            f"{where} is an {disk['index_type']!r} index, not {index_type!r}; open it with "
            f"type={disk['index_type']!r} or type='auto'",
        )


def _mismatch(field_name: str, on_disk: Any, requested: Any, message: str) -> None:
    raise IndexMismatch(message, field=field_name, on_disk=on_disk, requested=requested)


def new_checkpoint_dir(directory: Path) -> Path:
    """A fresh, empty ``ckpt-N`` directory numbered after every one present."""
    numbers = [int(m.group(1)) for p in directory.iterdir() if (m := CKPT_RE.match(p.name))]
    target = directory / f"ckpt-{max(numbers, default=0) + 1}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    return target


def publish(directory: Path, name: str) -> None:
    """Atomically point CURRENT at checkpoint ``name``."""
    tmp = directory / (CURRENT + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(name + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / CURRENT)
    fsync(directory)


def remove_debris(directory: Path, keep: str | None) -> None:
    """Remove checkpoints other than ``keep``, the segments of other checkpoints, and half-written
    files (CURRENT's, a segment's)."""
    live = generation(keep)
    for path in directory.iterdir():
        segment = SEG_RE.match(path.name)
        if (
            (CKPT_RE.match(path.name) and path.name != keep)
            or (segment and int(segment.group(1)) != live)
            or path.name == CURRENT + ".tmp"
            or path.name.endswith(PARTIAL)
        ):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def generation(checkpoint: str | None) -> int:
    """The number of checkpoint ``ckpt-N`` (0 for no checkpoint): the segments after it carry it."""
    found = CKPT_RE.match(checkpoint) if checkpoint is not None else None
    return int(found.group(1)) if found else 0


def segment_paths(directory: Path, gen: int) -> list[Path]:
    """The segments written after checkpoint ``gen``, in the order they were written."""
    matches = ((path, SEG_RE.match(path.name)) for path in Path(directory).iterdir())
    found = [path for path, m in matches if m and int(m[1]) == gen]
    return sorted(found, key=segment_number)


def segment_number(path: Path) -> int:
    """The number of segment ``seg-N-M.npz``: M, counted from 1 after each checkpoint."""
    found = SEG_RE.match(path.name)
    assert found is not None, path
    return int(found[2])


def write_segment(
    directory: Path, gen: int, number: int, ids: Sequence[str], seqs: Sequence[int], vectors: np.ndarray
) -> None:
    """Write segment ``number`` after checkpoint ``gen``: durable when this returns, complete or absent."""
    target = directory / f"seg-{gen}-{number}.npz"
    partial = target.with_name(target.name + PARTIAL)
    encoded = np.frombuffer(json.dumps(list(ids), ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    with open(partial, "wb") as f:
        np.savez(f, ids=encoded, seqs=np.asarray(seqs, dtype=np.int64), vectors=vectors)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, target)
    fsync(directory)


def read_segment(path: Path) -> tuple[list[str], list[int], np.ndarray]:
    """The ids, seqs and vectors of one segment."""
    with np.load(path, allow_pickle=False) as segment:
        ids: list[str] = json.loads(segment["ids"].tobytes().decode("utf-8"))
        return ids, segment["seqs"].tolist(), segment["vectors"]


def write_json(path: Path, obj: Any) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    return path


def write_npy(path: Path, arr: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return path


def fsync(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
