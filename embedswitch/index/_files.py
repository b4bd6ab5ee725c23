"""Checkpoint files of the in-process indexes: crash-safe directories, ``CURRENT``, meta checks.

On disk, an index directory holds::

    CURRENT            names the live checkpoint, e.g. "ckpt-7"
    ckpt-7/meta.json   what built the index (collection, version, kind, fingerprint, dim, type)
    ckpt-7/state.json  live ids and tombstoned ids, in the order of the arrays below
    ckpt-7/keys.npy    int64 storage key per live id
    ckpt-7/seqs.npy    int64 last seq per live id
    ckpt-7/tombstone_seqs.npy
    ckpt-7/...         the storage's vector files

A checkpoint is written into a fresh directory, fsynced, and only then named by ``CURRENT``
(replaced atomically), so a crash at any point leaves the previous checkpoint intact. Any other
``ckpt-*`` directory is debris of an interrupted checkpoint and is removed on open.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from embedswitch._errors import EmbedswitchError, IndexMismatch
from embedswitch.index.base import IndexMeta

CURRENT = "CURRENT"
CKPT_RE = re.compile(r"^ckpt-(\d+)$")


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
    """Bytes of the live checkpoint's files in ``directory`` and of ``CURRENT`` (0 before the first).

    A checkpoint may replace the live one while this reads (it is a report, not under the index's
    lock): a checkpoint that vanished meanwhile is looked up again from ``CURRENT``."""
    for _ in range(100):
        try:
            name = (Path(directory) / CURRENT).read_text(encoding="utf-8").strip()
            with os.scandir(Path(directory) / name) as entries:
                files = sum(entry.stat().st_size for entry in entries if entry.is_file())
            return files + (Path(directory) / CURRENT).stat().st_size
        except FileNotFoundError:
            if not (Path(directory) / CURRENT).exists():
                return 0
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
    """Remove checkpoints other than ``keep`` and a half-written CURRENT."""
    for path in directory.iterdir():
        if (CKPT_RE.match(path.name) and path.name != keep) or path.name == CURRENT + ".tmp":
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


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
