"""The bookkeeping shared by the in-process indexes: ids, seq guards, locking and checkpoints.

A ``LocalIndex`` owns everything about an index except where its vectors live: the mapping from
record ids to the integer keys its storage uses, the last seq applied per id, tombstones of
deleted ids, one re-entrant lock around every read and write, and crash-safe checkpoints.
Subclasses (``ExactIndex``, ``HnswIndex``) implement the ``_store_*`` hooks.

On disk, an index directory holds::

    CURRENT            names the live checkpoint, e.g. "ckpt-7"
    ckpt-7/meta.json   what built the index (collection, version, kind, fingerprint, dim, type)
    ckpt-7/state.json  live ids and tombstoned ids, in the order of the arrays below
    ckpt-7/keys.npy    int64 storage key per live id
    ckpt-7/seqs.npy    int64 last seq per live id
    ckpt-7/tombstone_seqs.npy
    ckpt-7/...         the subclass's vector files

A checkpoint is written into a fresh directory, fsynced, and only then named by ``CURRENT``
(replaced atomically), so a crash at any point leaves the previous checkpoint intact. Any other
``ckpt-*`` directory is debris of an interrupted checkpoint and is removed on open.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedswitch._errors import EmbedswitchError, IndexMismatch, InvalidRequest, Unavailable
from embedswitch.index.base import Hit, IndexMeta

logger = logging.getLogger("embedswitch")

LARGE_INDEX_WARNING = 5_000_000
"""Past this many vectors an in-process index logs, once, that a server index would serve better."""

CURRENT = "CURRENT"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
_STATE_FORMAT = 1
_DTYPE = np.float32


@dataclass
class Snapshot:
    """A consistent copy of an index's contents, used to rebuild it as another index type."""

    ids: list[str]
    keys: np.ndarray
    seqs: np.ndarray
    vectors: np.ndarray
    tombstones: dict[str, int] = field(default_factory=dict)
    next_key: int = 0


@dataclass
class _Plan:
    """The writes of one upsert call that pass the seq guard, split by whether the id is new."""

    new_ids: list[str] = field(default_factory=list)
    new_rows: list[int] = field(default_factory=list)
    new_seqs: list[int] = field(default_factory=list)
    old_ids: list[str] = field(default_factory=list)
    old_rows: list[int] = field(default_factory=list)
    old_seqs: list[int] = field(default_factory=list)


class LocalIndex(ABC):
    """An in-process ``VectorIndex``; see ``embedswitch.index.base.VectorIndex`` for the promises.

    Every public method holds the index's lock, so readers always see either all or none of a
    write call. ``close`` does not checkpoint: call ``checkpoint`` first to keep recent writes.
    """

    index_type: ClassVar[str]

    def __init__(self, directory: Path, meta: IndexMeta, *, snapshot: Snapshot | None = None) -> None:
        """Open the index stored in ``directory`` (created if missing) as of its last checkpoint.

        With ``snapshot``, start from that content instead of the disk (used to convert an index
        to another type in the same directory); the next ``checkpoint`` then writes it.
        Raises ``IndexMismatch`` when the checkpoint on disk was built with another meta or type.
        """
        self.meta = meta
        self.directory = Path(directory)
        self._lock = threading.RLock()
        self._key_of: dict[str, int] = {}
        self._id_of: dict[int, str] = {}
        self._seqs: dict[str, int] = {}
        self._tombstones: dict[str, int] = {}
        self._next_key = 0
        self._closed = False
        self._warned_large = False
        self._store_reset()
        self.directory.mkdir(parents=True, exist_ok=True)
        current = self._read_current()
        self._remove_debris(keep=current)
        if snapshot is not None:
            self._load_snapshot(snapshot)
        elif current is not None:
            self._load_checkpoint(self.directory / current)
        # A fresh index is dirty so that its first checkpoint records its meta on disk.
        self._dirty = snapshot is not None or current is None

    # --- writes ---------------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int]) -> int:
        """Store each vector under its id unless the id has seen a seq >= its seq; returns how many."""
        vecs = self._check_vectors(vectors, len(ids), what="vectors")
        seq_list = self._check_seqs(ids, seqs)
        with self._lock:
            self._check_open()
            plan = self._plan_upsert(ids, seq_list)
            if plan.old_ids:
                self._store_replace(self._keys(plan.old_ids), vecs[plan.old_rows])
            if plan.new_ids:
                new_keys = np.arange(self._next_key, self._next_key + len(plan.new_ids), dtype=np.int64)
                self._store_add(new_keys, vecs[plan.new_rows])
                self._next_key += len(plan.new_ids)
                for id_, key in zip(plan.new_ids, new_keys.tolist(), strict=True):
                    self._key_of[id_] = key
                    self._id_of[key] = id_
            for id_, seq in zip(plan.old_ids + plan.new_ids, plan.old_seqs + plan.new_seqs, strict=True):
                self._seqs[id_] = seq
                self._tombstones.pop(id_, None)
            changed = len(plan.old_ids) + len(plan.new_ids)
            if changed:
                self._dirty = True
                self._warn_if_large()
            return changed

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Remove each id unless it has seen a seq >= its seq; returns how many vectors were removed.

        The delete's seq is kept as a tombstone even for ids that were absent, so an older upsert
        arriving later stays a no-op.
        """
        seq_list = self._check_seqs(ids, seqs)
        with self._lock:
            self._check_open()
            latest = self._latest_per_id(ids, seq_list)
            applied = {id_: seq for id_, (_, seq) in latest.items() if self._passes_guard(id_, seq)}
            present = [id_ for id_ in applied if id_ in self._key_of]
            if present:
                self._store_remove(self._keys(present))
                for id_ in present:
                    del self._id_of[self._key_of.pop(id_)]
                    del self._seqs[id_]
            self._tombstones.update(applied)
            if applied:
                self._dirty = True
            return len(present)

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        with self._lock:
            self._check_open()
            drop = [id_ for id_, seq in self._tombstones.items() if seq <= upto_seq]
            for id_ in drop:
                del self._tombstones[id_]
            if drop:
                self._dirty = True
            return len(drop)

    # --- reads ----------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, exclude: Iterable[str] | None = None) -> list[list[Hit]]:
        """Up to ``k`` hits ``(id, inner product)`` per query row, best first, skipping ``exclude``."""
        q = self._check_vectors(queries, None, what="queries")
        if k < 0:
            raise InvalidRequest(f"k must be >= 0, got {k}", k=k)
        with self._lock:
            self._check_open()
            if k == 0 or not self._key_of:
                return [[] for _ in range(len(q))]
            excluded = {self._key_of[id_] for id_ in exclude or () if id_ in self._key_of}
            found = self._store_search(q, k, excluded)
            id_of = self._id_of
            return [[(id_of[key], score) for key, score in hits if key in id_of] for hits in found]

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present, as float32 copies."""
        with self._lock:
            self._check_open()
            present = [id_ for id_ in dict.fromkeys(ids) if id_ in self._key_of]
            if not present:
                return {}
            vectors = self._store_get(self._keys(present))
            return {id_: vectors[i].copy() for i, id_ in enumerate(present)}

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        with self._lock:
            seq = self._seqs.get(id)
            return seq if seq is not None else self._tombstones.get(id)

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        with self._lock:
            return list(self._key_of)

    def tombstones(self) -> dict[str, int]:
        """A copy of the tombstones: deleted id -> the seq of its delete."""
        with self._lock:
            return dict(self._tombstones)

    def __len__(self) -> int:
        with self._lock:
            return len(self._key_of)

    def nbytes(self) -> int:
        """Approximate memory footprint: the vectors' storage plus ~100 bytes per id."""
        with self._lock:
            if self._closed:
                return 0
            return self._store_nbytes() + 100 * (len(self._key_of) + len(self._tombstones))

    def snapshot(self) -> Snapshot:
        """A consistent copy of ids, seqs, tombstones and vectors, taken under the lock."""
        with self._lock:
            self._check_open()
            ids = list(self._key_of)
            keys = self._keys(ids)
            vectors = self._store_get(keys) if ids else np.zeros((0, self.meta.dim), dtype=_DTYPE)
            return Snapshot(
                ids=ids,
                keys=keys,
                seqs=np.array([self._seqs[i] for i in ids], dtype=np.int64),
                vectors=np.array(vectors, dtype=_DTYPE, copy=True),
                tombstones=dict(self._tombstones),
                next_key=self._next_key,
            )

    # --- lifecycle ------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Make every write so far durable; a no-op when nothing changed since the last one."""
        with self._lock:
            self._check_open()
            if not self._dirty:
                return
            name = f"ckpt-{self._next_ckpt_number()}"
            target = self.directory / name
            if target.exists():
                shutil.rmtree(target)
            target.mkdir()
            self._write_checkpoint(target)
            _fsync(target)
            self._publish(name)
            self._remove_debris(keep=name)
            self._dirty = False

    def close(self) -> None:
        """Release memory. Writes since the last ``checkpoint`` are not saved."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._store_reset()
            self._key_of.clear()
            self._id_of.clear()
            self._seqs.clear()
            self._tombstones.clear()

    def destroy(self) -> None:
        """Close and delete the index directory with every checkpoint in it."""
        with self._lock:
            self.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def __repr__(self) -> str:
        m = self.meta
        return f"{type(self).__name__}({m.collection!r}/{m.version!r}/{m.kind!r}, n={len(self)})"

    # --- hooks for subclasses -------------------------------------------------------------------

    @abstractmethod
    def _store_reset(self) -> None:
        """Empty the vector storage."""

    @abstractmethod
    def _store_add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under keys that are not stored yet."""

    @abstractmethod
    def _store_replace(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Overwrite the vectors of keys that are stored."""

    @abstractmethod
    def _store_remove(self, keys: np.ndarray) -> None:
        """Remove keys that are stored."""

    @abstractmethod
    def _store_get(self, keys: np.ndarray) -> np.ndarray:
        """The vectors of stored keys, ``[len(keys), dim]`` float32."""

    @abstractmethod
    def _store_search(self, queries: np.ndarray, k: int, exclude: set[int]) -> list[list[tuple[int, float]]]:
        """Per query, up to k ``(key, inner product)`` best first, never a key in ``exclude``."""

    @abstractmethod
    def _store_save(self, directory: Path) -> list[Path]:
        """Write the storage into ``directory``; returns the files written (the caller fsyncs)."""

    @abstractmethod
    def _store_load(self, directory: Path, keys: np.ndarray) -> None:
        """Load storage written by ``_store_save``; ``keys`` are the live keys it must hold."""

    @abstractmethod
    def _store_load_snapshot(self, snapshot: Snapshot) -> None:
        """Fill the empty storage with the snapshot's vectors under its keys."""

    @abstractmethod
    def _store_nbytes(self) -> int:
        """Bytes held by the vector storage."""

    def _type_params(self) -> dict[str, Any]:
        """Extra build parameters recorded in meta.json."""
        return {}

    # --- helpers --------------------------------------------------------------------------------

    def _keys(self, ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((self._key_of[i] for i in ids), dtype=np.int64, count=len(ids))

    def _passes_guard(self, id_: str, seq: int) -> bool:
        last = self._seqs.get(id_)
        if last is None:
            last = self._tombstones.get(id_)
        return last is None or seq > last

    @staticmethod
    def _latest_per_id(ids: Sequence[str], seqs: list[int]) -> dict[str, tuple[int, int]]:
        """id -> (row, seq) of its highest seq in this call; on a tie the first row wins."""
        latest: dict[str, tuple[int, int]] = {}
        for row, (id_, seq) in enumerate(zip(ids, seqs, strict=True)):
            seen = latest.get(id_)
            if seen is None or seq > seen[1]:
                latest[id_] = (row, seq)
        return latest

    def _plan_upsert(self, ids: Sequence[str], seqs: list[int]) -> _Plan:
        plan = _Plan()
        for id_, (row, seq) in self._latest_per_id(ids, seqs).items():
            if not self._passes_guard(id_, seq):
                continue
            if id_ in self._key_of:
                plan.old_ids.append(id_)
                plan.old_rows.append(row)
                plan.old_seqs.append(seq)
            else:
                plan.new_ids.append(id_)
                plan.new_rows.append(row)
                plan.new_seqs.append(seq)
        return plan

    def _check_vectors(self, vectors: np.ndarray, n: int | None, *, what: str) -> np.ndarray:
        """``vectors`` as a C-contiguous float32 ``[n, dim]`` array of finite numbers."""
        arr = np.asarray(vectors)
        if n == 0 and arr.size == 0:
            return np.zeros((0, self.meta.dim), dtype=_DTYPE)
        if arr.ndim != 2 or arr.shape[1] != self.meta.dim:
            raise InvalidRequest(
                f"{what} must have shape [n, {self.meta.dim}] for this index "
                f"({self.meta.collection}/{self.meta.version}), got {list(arr.shape)}",
                collection=self.meta.collection,
                version=self.meta.version,
            )
        if n is not None and arr.shape[0] != n:
            raise InvalidRequest(f"got {n} ids but {arr.shape[0]} {what}; pass one vector per id")
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise InvalidRequest(f"{what} must be real numbers, got dtype {arr.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, rejected below
            out = np.ascontiguousarray(arr, dtype=_DTYPE)
        if not np.isfinite(out).all():
            raise InvalidRequest(f"{what} contain NaN or infinite values (or overflow float32)")
        return out

    @staticmethod
    def _check_seqs(ids: Sequence[str], seqs: Sequence[int]) -> list[int]:
        if isinstance(ids, str):
            raise InvalidRequest("ids must be a sequence of strings, not one string")
        if len(ids) != len(seqs):
            raise InvalidRequest(f"got {len(ids)} ids but {len(seqs)} seqs; pass one seq per id")
        return [int(s) for s in seqs]

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(
                f"index {self.meta.collection}/{self.meta.version}/{self.meta.kind} is closed; reopen it",
                collection=self.meta.collection,
                version=self.meta.version,
            )

    def _warn_if_large(self) -> None:
        if not self._warned_large and len(self._key_of) > LARGE_INDEX_WARNING:
            self._warned_large = True
            logger.warning(
                "index %s/%s/%s holds %d vectors in process memory; past %d vectors use a server "
                "index backend such as pgvector or Milvus",
                self.meta.collection,
                self.meta.version,
                self.meta.kind,
                len(self._key_of),
                LARGE_INDEX_WARNING,
            )

    def _load_snapshot(self, snapshot: Snapshot) -> None:
        self._set_state(snapshot.ids, snapshot.keys, snapshot.seqs, snapshot.tombstones, snapshot.next_key)
        if snapshot.ids:
            self._store_load_snapshot(snapshot)

    def _set_state(
        self, ids: list[str], keys: np.ndarray, seqs: np.ndarray, tombstones: dict[str, int], next_key: int
    ) -> None:
        key_list = [int(k) for k in keys.tolist()]
        self._key_of = dict(zip(ids, key_list, strict=True))
        self._id_of = dict(zip(key_list, ids, strict=True))
        self._seqs = dict(zip(ids, [int(s) for s in seqs.tolist()], strict=True))
        self._tombstones = dict(tombstones)
        self._next_key = max(next_key, max(key_list, default=-1) + 1)

    # --- checkpoint files -----------------------------------------------------------------------

    def _meta_dict(self) -> dict[str, Any]:
        m = self.meta
        return {
            "collection": m.collection,
            "version": m.version,
            "kind": m.kind,
            "fingerprint": m.fingerprint,
            "dim": m.dim,
            "index_type": self.index_type,
            "params": self._type_params(),
        }

    def _write_checkpoint(self, target: Path) -> None:
        ids = list(self._key_of)
        tomb_ids = list(self._tombstones)
        _write_json(target / "meta.json", self._meta_dict())
        _write_json(
            target / "state.json",
            {"format": _STATE_FORMAT, "next_key": self._next_key, "ids": ids, "tombstone_ids": tomb_ids},
        )
        write_npy(target / "keys.npy", self._keys(ids))
        write_npy(target / "seqs.npy", np.array([self._seqs[i] for i in ids], dtype=np.int64))
        write_npy(
            target / "tombstone_seqs.npy", np.array([self._tombstones[i] for i in tomb_ids], dtype=np.int64)
        )
        for path in self._store_save(target):
            _fsync(path)

    def _load_checkpoint(self, ckpt: Path) -> None:
        disk = read_meta(ckpt)
        check_meta(disk, self.meta, self.index_type, self.directory)
        with open(ckpt / "state.json", encoding="utf-8") as f:
            state = json.load(f)
        tomb_seqs = np.load(ckpt / "tombstone_seqs.npy", allow_pickle=False)
        tombstones = dict(zip(state["tombstone_ids"], [int(s) for s in tomb_seqs.tolist()], strict=True))
        keys = np.load(ckpt / "keys.npy", allow_pickle=False)
        seqs = np.load(ckpt / "seqs.npy", allow_pickle=False)
        self._set_state(state["ids"], keys, seqs, tombstones, int(state["next_key"]))
        self._store_load(ckpt, keys)

    def _read_current(self) -> str | None:
        return read_current(self.directory)

    def _publish(self, name: str) -> None:
        """Atomically point CURRENT at checkpoint ``name``."""
        tmp = self.directory / (CURRENT + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.directory / CURRENT)
        _fsync(self.directory)

    def _next_ckpt_number(self) -> int:
        numbers = [int(m.group(1)) for p in self.directory.iterdir() if (m := _CKPT_RE.match(p.name))]
        return max(numbers, default=0) + 1

    def _remove_debris(self, keep: str | None) -> None:
        """Remove checkpoints other than ``keep`` and a half-written CURRENT."""
        for path in self.directory.iterdir():
            if (_CKPT_RE.match(path.name) and path.name != keep) or path.name == CURRENT + ".tmp":
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


# --- module helpers -----------------------------------------------------------------------------


def read_current(directory: Path) -> str | None:
    """The checkpoint directory name CURRENT points at, or None when there is no checkpoint yet."""
    try:
        name = (Path(directory) / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _CKPT_RE.match(name) or not (Path(directory) / name / "meta.json").is_file():
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


def _write_json(path: Path, obj: Any) -> Path:
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


def _fsync(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
