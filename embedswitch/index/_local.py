"""The in-process indexes' shared machinery: ids, seq guards, locking, rebuilds and checkpoints.

A ``LocalIndex`` keeps its vectors in a ``Storage`` (``exact.py``, ``hnsw.py``, ``usearch.py``)
under int64 keys, and everything else itself: the ``IdMap`` (record id <-> key, last seq per id,
tombstones), the locks, background rebuilds, crash-safe checkpoints and the durable segments
written between them (``_files.py``).

**Concurrency.** Reads (``search``, ``get``, ``seq_of``, ...) share a readers-writer lock and take
nothing else, so concurrent searches run side by side. Writers take the writers' mutex (one at a
time), plan against the id map, and hold the lock exclusively only while they change the storage
and the map, ``WRITE_CHUNK`` vectors at a time, so a search waits for one chunk at most. A read
sees a chunk entirely or not at all; every read returns what some serial order of the chunks
gives. What the storages rely on, each in its docstring: hnswlib's ``knn_query`` is safe only with
other reads (``add_items``, ``mark_deleted`` and ``resize_index`` are not), the exact index's
appends reallocate and its removes move rows, and usearch's writes resize its graph: so every
storage write runs with reads excluded, and reads run with each other. ``checkpoint`` holds the
writers' mutex only: searches go on while it writes.

**Rebuilds.** Once removed vectors' slots (``Storage.dead_slots``) pass ``rebuild_deleted_ratio``
of the live ones, or the id map's dead keys pass ``HOLES_PER_LIVE`` per live id, the next
checkpoint starts a rebuild in a background thread: it snapshots ids, seqs and vectors (writes
wait for the copy, searches do not), builds fresh storage under compact keys while the old one
keeps serving and taking writes, then replays the writes made meanwhile onto it (the seq guards
make the result identical) and swaps it in, with reads excluded for the swap only. The next
checkpoint writes the rebuilt index; a crash before that reopens the old one, which rebuilds again.
``AutoIndex`` converts exact storage to HNSW the same way. A rebuild costs a second copy of the
index in memory while it runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from embedswitch.index._checks import check_k, check_queries, check_seqs, check_vectors, closed
from embedswitch.index._files import (
    check_meta,
    disk_bytes,
    fsync,
    generation,
    new_checkpoint_dir,
    publish,
    read_current,
    read_meta,
    read_segment,
    remove_debris,
    segment_number,
    segment_paths,
    write_json,
    write_npy,
    write_segment,
)
from embedswitch.index._ids import IdMap
from embedswitch.index._rwlock import RWLock
from embedswitch.index._storage import Found, Storage, threads_for, top_k
from embedswitch.index.base import Allowed, Hit, IndexMeta, SearchParams

logger = logging.getLogger("embedswitch")

LARGE_INDEX_WARNING = 5_000_000
"""Past this many vectors an in-process index logs, once, that a server index would serve better."""
WRITE_CHUNK = 256
"""Vectors a write changes per exclusive hold of the lock: what a search may wait for."""
REBUILD_MIN = 1_000
"""Dead slots or keys an index needs at least before it rebuilds (small indexes don't bother)."""
HOLES_PER_LIVE = 4
REBUILD_CHUNK = 4096
"""Vectors a rebuild copies per hold of the writers' mutex."""
REBUILD_THREADS = max(1, (os.cpu_count() or 2) // 2)
"""Threads a background rebuild builds with: half the cores, the rest keep serving."""
ALLOW_CACHE = 8
"""Sets of allowed ids whose keys an index keeps between writes."""
_STATE_FORMAT = 1

_Replay = Callable[[IdMap, Storage], object]
_ALONE = contextlib.nullcontext()
"""The lock of storage no reader can see yet (a rebuild's)."""


class LocalIndex:
    """An in-process ``VectorIndex``; see ``embedswitch.index.base.VectorIndex`` for the promises.

    ``close`` does not checkpoint: call ``checkpoint`` first to keep recent writes (durable
    upserts are kept either way).
    """

    def __init__(
        self,
        directory: Path,
        meta: IndexMeta,
        storage: Storage,
        *,
        rebuild_deleted_ratio: float | None = None,
    ) -> None:
        """Open the index stored in ``directory`` (created if missing) as of its last checkpoint
        and the durable upserts made after it.

        Raises ``IndexMismatch`` when the checkpoint on disk was built with another meta or type.
        """
        self.meta = meta
        self.directory = Path(directory)
        self.rebuild_deleted_ratio = rebuild_deleted_ratio
        self.rebuilds = 0
        self.rebuild_error: str | None = None
        self._rw = RWLock()
        self._allow_lock = threading.Lock()
        self._allow_keys: dict[int, tuple[frozenset[str], int, np.ndarray]] = {}  # see _keys_allowed
        self._writer = threading.Lock()  # one writer, checkpoint or rebuild step at a time
        self._map = IdMap()
        self._storage = storage
        self._closed = False
        self._warned_large = False
        self._pending: list[_Replay] | None = None  # writes to replay onto a rebuild, while one runs
        self._rebuilder: threading.Thread | None = None
        self._rebuilding = threading.Lock()  # one rebuild at a time
        self.directory.mkdir(parents=True, exist_ok=True)
        current = read_current(self.directory)
        remove_debris(self.directory, keep=current)
        if current is not None:
            self._load_checkpoint(self.directory / current)
        self._generation = generation(current)
        segments = segment_paths(self.directory, self._generation)
        for path in segments:
            ids, seqs, vectors = read_segment(path)
            _upsert(self._map, self._storage, ids, vectors, seqs, self._rw.write)
        self._segments = segment_number(segments[-1]) if segments else 0  # the last one written
        # A fresh index is dirty so that its first checkpoint records its meta on disk; replayed
        # segments so that the next one holds them.
        self._dirty = current is None or bool(segments)

    @property
    def index_type(self) -> str:
        """The storage serving: "exact", "hnsw" or "usearch"."""
        return self._storage.index_type

    @property
    def precision(self) -> str:
        """How the vectors are stored: "f32" (``get`` returns them as written), "f16" or "i8"."""
        return self._storage.precision

    # --- writes ---------------------------------------------------------------------------------

    def upsert(
        self, ids: Sequence[str], vectors: np.ndarray, seqs: Sequence[int], durable: bool = False
    ) -> int:
        """Store each vector under its id unless the id has seen a seq >= its seq; returns how many.

        ``durable``: written to a segment first (see ``_files.py``), so the call survives a crash
        without waiting for a checkpoint."""
        vecs = check_vectors(vectors, len(ids), self.meta, what="vectors")
        seq_list = check_seqs(ids, seqs)
        with self._writer:
            self._check_open()
            if durable and len(seq_list):
                self._segments += 1
                write_segment(self.directory, self._generation, self._segments, ids, seq_list, vecs)
                self._dirty = True
            changed = _upsert(self._map, self._storage, ids, vecs, seq_list, self._rw.write)
            if changed and self._pending is not None:
                kept_ids, kept = list(ids), vecs.copy()
                self._pending.append(lambda m, s: _upsert(m, s, kept_ids, kept, seq_list, _ALONE))
            if changed:
                self._dirty = True
                self._warn_if_large()
            return changed

    def delete(self, ids: Sequence[str], seqs: Sequence[int]) -> int:
        """Remove each id unless it has seen a seq >= its seq; returns how many vectors were removed.

        The delete's seq is kept as a tombstone even for ids that were absent, so an older upsert
        arriving later stays a no-op.
        """
        seq_list = check_seqs(ids, seqs)
        with self._writer:
            self._check_open()
            removed, applied = _delete(self._map, self._storage, ids, seq_list, self._rw.write)
            if applied and self._pending is not None:
                kept_ids = list(ids)
                self._pending.append(lambda m, s: _delete(m, s, kept_ids, seq_list, _ALONE))
            if applied:
                self._dirty = True
            return removed

    def forget_tombstones(self, upto_seq: int) -> int:
        """Drop tombstones with seq <= upto_seq; returns how many were dropped."""
        with self._writer:
            self._check_open()
            with self._rw.write:
                dropped = self._map.forget_tombstones(upto_seq)
            if dropped and self._pending is not None:
                self._pending.append(lambda m, s: m.forget_tombstones(upto_seq))
            if dropped:
                self._dirty = True
            return dropped

    # --- reads ----------------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        exclude: Iterable[str] | None = None,
        allowed: Allowed | None = None,
        params: SearchParams | None = None,
    ) -> list[list[Hit]]:
        """Up to ``k`` hits ``(id, inner product)`` per query row, best first, among the ids
        ``allowed`` allows, skipping ``exclude``. A filter allowing at most the storage's
        ``scan_below`` vectors, or ``params.exact``, scores every candidate exactly; otherwise the
        storage searches with the filter inside (a query it leaves short of ``k`` is then scored
        exactly)."""
        q = check_queries(queries, self.meta)
        check_k(k)
        allow_ids = allowed.ids() if allowed is not None else None  # asks the store: before the lock
        exact = params is not None and params.exact
        ef = params.ef if params is not None else None
        with self._rw.read:
            self._check_open()
            key_of = self._map.key_of
            if k == 0 or not key_of:
                return [[] for _ in range(len(q))]
            excluded = {key_of[id_] for id_ in exclude if id_ in key_of} if exclude else set()
            allow = None if allow_ids is None else self._keys_allowed(allow_ids, excluded)
            if allow is not None and not len(allow):
                return [[] for _ in range(len(q))]
            if allow is not None and len(allow) <= self._storage.scan_below or exact:
                found = self._scan(q, k, allow, excluded)
            else:
                found = self._storage.search(q, k, excluded, allow, ef)
                pool = len(allow) if allow is not None else len(key_of) - len(excluded)
                short = [i for i, hits in enumerate(found) if len(hits) < min(k, pool)]
                for i, hits in zip(short, self._scan(q[short], k, allow, excluded), strict=True):
                    found[i] = hits
            ids = cast(list[str], self._map.id_by_key)  # storage returns live keys only
            return [[(ids[key], score) for key, score in hits] for hits in found]

    def _keys_allowed(self, ids: frozenset[str], excluded: set[int]) -> np.ndarray:
        """The keys of the live ``ids``, less ``excluded``, sorted. Under the read lock: the keys of
        one set of ids are kept until the next write (``RWLock.generation``), so a filter repeated
        between writes maps its ids once."""
        generation = self._rw.generation
        with self._allow_lock:
            found = self._allow_keys.get(id(ids))
        if found is None or found[0] is not ids or found[1] != generation:
            found = (ids, generation, _allowed_keys(self._map.key_of, ids, set()))
            with self._allow_lock:
                self._allow_keys[id(ids)] = found
                while len(self._allow_keys) > ALLOW_CACHE:
                    del self._allow_keys[next(iter(self._allow_keys))]
        keys = found[2]
        if excluded and len(keys):
            keys = keys[~np.isin(keys, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))]
        return keys

    def _scan(self, q: np.ndarray, k: int, allow: np.ndarray | None, excluded: set[int]) -> Found:
        """Exact: every allowed (or every live, non-excluded) vector scored. Under the read lock."""
        if not len(q):
            return []
        if allow is None:
            if self._storage.index_type == "exact":
                return self._storage.search(q, k, excluded, None, None)
            allow = _allowed_keys(self._map.key_of, self._map.key_of.keys(), excluded)
        if self._storage.index_type == "exact":
            return self._storage.search(q, k, excluded, allow, None)
        return top_k(q, self._storage.get(allow), allow, k)

    def get(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of those ids that are present, as float32 arrays of their own."""
        with self._rw.read:
            self._check_open()
            present = [id_ for id_ in dict.fromkeys(ids) if id_ in self._map.key_of]
            if not present:
                return {}
            vectors = self._storage.get(self._map.keys(present))
        return {id_: vectors[i] for i, id_ in enumerate(present)}

    def seq_of(self, id: str) -> int | None:
        """The last seq applied for ``id`` (upsert or delete), or None if never seen or forgotten."""
        with self._rw.read:
            return self._map.seq_of(id)

    def ids(self) -> list[str]:
        """Every live id, in no particular order."""
        with self._rw.read:
            return list(self._map.key_of)

    def tombstones(self) -> dict[str, int]:
        """A copy of the tombstones: deleted id -> the seq of its delete."""
        with self._rw.read:
            return dict(self._map.tombstones)

    def __len__(self) -> int:
        return len(self._map)

    def memory_bytes(self) -> int:
        """Bytes allocated for the vectors, their search structure and the id map."""
        with self._rw.read:
            if self._closed:
                return 0
            return self._storage.memory_bytes() + self._map.nbytes()

    def disk_bytes(self) -> int:
        """Bytes of the last checkpoint's files."""
        for _ in range(3):  # a checkpoint may replace the directory while it is measured
            with contextlib.suppress(FileNotFoundError):
                return disk_bytes(self.directory)
        return 0

    # --- lifecycle ------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Make every write so far durable (a no-op when nothing changed since the last one); then
        start a rebuild in the background if one is due."""
        with self._writer:
            self._check_open()
            if self._dirty:
                target = new_checkpoint_dir(self.directory)
                self._write_checkpoint(target)
                fsync(target)
                publish(self.directory, target.name)
                remove_debris(self.directory, keep=target.name)
                self._generation, self._segments = generation(target.name), 0
                self._dirty = False
            into = self._rebuild_into()
            if into is not None and (self._rebuilder is None or not self._rebuilder.is_alive()):
                self._rebuilder = threading.Thread(
                    target=self._rebuild_in_background, args=(into,), name=f"rebuild-{self}", daemon=True
                )
                self._rebuilder.start()

    def wait_rebuilt(self, timeout_s: float | None = None) -> bool:
        """Wait for a running rebuild to finish; True when none runs (any more)."""
        thread = self._rebuilder
        if thread is not None:
            thread.join(timeout_s)
        return thread is None or not thread.is_alive()

    def rebuild(self, into: Storage | None = None) -> None:
        """Rebuild the index, into ``into`` (empty) or fresh storage of its own kind, while it keeps
        serving reads and taking writes (see the module docstring). Raises what the build raises;
        the index then keeps its storage."""
        with self._rebuilding:
            fresh = into if into is not None else self._storage.empty()
            with self._writer:
                self._check_open()
                ids = list(self._map.key_of)
                rebuilt = IdMap()
                rebuilt.tombstones = dict(self._map.tombstones)
                self._pending = []
            try:
                self._copy_into(rebuilt, fresh, ids)
                with self._writer:
                    self._check_open()
                    for replay in self._pending:
                        replay(rebuilt, fresh)
                    with self._rw.write:
                        old, self._map, self._storage = self._storage, rebuilt, fresh
                    old.close()
                    self._dirty = True
                    self.rebuilds += 1
            finally:
                with self._writer:
                    self._pending = None

    def _copy_into(self, rebuilt: IdMap, fresh: Storage, ids: list[str]) -> None:
        """Copy the vectors of ``ids`` that are still live, a chunk at a time: each chunk with its
        current seqs, under the writers' mutex, so writes interleave. A write made meanwhile is
        replayed afterwards; on the ids copied after it, with its seq, the guard makes it a no-op."""
        fresh.reserve(len(ids))
        for start in range(0, len(ids), REBUILD_CHUNK):
            with self._writer:
                self._check_open()
                live = [id_ for id_ in ids[start : start + REBUILD_CHUNK] if id_ in self._map.key_of]
                keys = self._map.keys(live)
                seqs, vectors = self._map.seqs_of(keys), self._storage.get(keys)
            first = rebuilt.next_key
            fresh.add(np.arange(first, first + len(live), dtype=np.int64), vectors, REBUILD_THREADS)
            rebuilt.add(live, seqs.tolist())

    def close(self) -> None:
        """Release memory. Writes since the last ``checkpoint`` are not saved, durable upserts aside."""
        with self._writer:
            if self._closed:
                return
            with self._rw.write:
                self._closed = True
                self._storage.close()
                self._map = IdMap()

    def destroy(self) -> None:
        """Close and delete the index directory with every checkpoint in it."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __repr__(self) -> str:
        m = self.meta
        return f"{type(self).__name__}({m.collection!r}/{m.version!r}/{m.kind!r}, n={len(self)})"

    # --- rebuild policy -------------------------------------------------------------------------

    def _rebuild_into(self) -> Storage | None:
        """Empty storage to rebuild into when a rebuild is due, else None (subclasses add reasons)."""
        if self.rebuild_deleted_ratio is None:
            return None
        live = len(self._map)
        dead, holes = self._storage.dead_slots(), self._map.holes
        if dead >= REBUILD_MIN and dead > self.rebuild_deleted_ratio * live:
            return self._storage.empty()
        if holes >= REBUILD_MIN and holes > HOLES_PER_LIVE * live:
            return self._storage.empty()
        return None

    def _rebuild_in_background(self, into: Storage) -> None:
        try:
            self.rebuild(into)
            self.rebuild_error = None
            logger.info("index %s rebuilt (%d vectors, %s)", self, len(self), self.index_type)
        except Exception as exc:  # the old storage keeps serving; the next checkpoint tries again
            self.rebuild_error = f"{type(exc).__name__}: {exc}"
            if not self._closed:
                logger.exception("rebuilding index %s failed; it keeps serving as it was", self)

    # --- validation -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise closed(self.meta)

    def _warn_if_large(self) -> None:
        if not self._warned_large and len(self._map) > LARGE_INDEX_WARNING:
            self._warned_large = True
            logger.warning(
                "index %s/%s/%s holds %d vectors in process memory; past %d vectors use a server "
                "index backend such as pgvector or Milvus",
                self.meta.collection,
                self.meta.version,
                self.meta.kind,
                len(self._map),
                LARGE_INDEX_WARNING,
            )

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
            "params": self._storage.params(),
        }

    def _write_checkpoint(self, target: Path) -> None:
        ids, keys, seqs = self._map.live()
        tomb_ids = list(self._map.tombstones)
        write_json(target / "meta.json", self._meta_dict())
        state = {
            "format": _STATE_FORMAT,
            "next_key": self._map.next_key,
            "ids": ids,
            "tombstone_ids": tomb_ids,
        }
        write_json(target / "state.json", state)
        write_npy(target / "keys.npy", keys)
        write_npy(target / "seqs.npy", seqs)
        tomb_seqs = np.array([self._map.tombstones[i] for i in tomb_ids], dtype=np.int64)
        write_npy(target / "tombstone_seqs.npy", tomb_seqs)
        for path in self._storage.save(target):
            fsync(path)

    def _load_checkpoint(self, ckpt: Path) -> None:
        check_meta(read_meta(ckpt), self.meta, self.index_type, self.directory)
        with open(ckpt / "state.json", encoding="utf-8") as f:
            state = json.load(f)
        tomb_seqs = np.load(ckpt / "tombstone_seqs.npy", allow_pickle=False)
        tombstones = dict(zip(state["tombstone_ids"], [int(s) for s in tomb_seqs.tolist()], strict=True))
        keys = np.load(ckpt / "keys.npy", allow_pickle=False)
        seqs = np.load(ckpt / "seqs.npy", allow_pickle=False)
        self._map = IdMap.restore(state["ids"], keys, seqs, tombstones, int(state["next_key"]))
        self._storage.load(ckpt, keys)


# --- writes on a (map, storage) pair: the serving one, or a rebuild's in replay ------------------


def _allowed_keys(key_of: dict[str, int], ids: Iterable[str], excluded: set[int]) -> np.ndarray:
    """The keys of the live ``ids``, less ``excluded``, sorted."""
    keys = np.fromiter((key_of[id_] for id_ in ids if id_ in key_of), dtype=np.int64)
    if excluded and len(keys):
        keys = keys[~np.isin(keys, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))]
    keys.sort()
    return keys


def _upsert(
    ids_map: IdMap,
    storage: Storage,
    ids: Sequence[str],
    vecs: np.ndarray,
    seqs: list[int],
    exclusive: contextlib.AbstractContextManager[Any],
) -> int:
    plan = ids_map.plan_upsert(ids, seqs)
    for old_ids, rows, old_seqs in _chunks(plan.old_ids, plan.old_rows, plan.old_seqs):
        with exclusive:
            storage.replace(ids_map.keys(old_ids), vecs[rows], threads_for(len(rows)))
            ids_map.set_seqs(old_ids, old_seqs)
    if plan.new_ids:
        with exclusive:
            storage.reserve(len(plan.new_ids))
        for new_ids, rows, new_seqs in _chunks(plan.new_ids, plan.new_rows, plan.new_seqs):
            with exclusive:
                start = ids_map.next_key
                storage.add(np.arange(start, start + len(new_ids), dtype=np.int64), vecs[rows], -1)
                ids_map.add(new_ids, new_seqs)
    return len(plan.old_ids) + len(plan.new_ids)


def _delete(
    ids_map: IdMap,
    storage: Storage,
    ids: Sequence[str],
    seqs: list[int],
    exclusive: contextlib.AbstractContextManager[Any],
) -> tuple[int, dict[str, int]]:
    """Apply the deletes that pass the guard; returns how many vectors went, and the deletes applied."""
    applied = ids_map.plan_delete(ids, seqs)
    present = [id_ for id_ in applied if id_ in ids_map.key_of]
    with exclusive:
        if present:
            storage.remove(ids_map.keys(present))
            ids_map.remove(present)
        ids_map.tombstones.update(applied)
    return len(present), applied


def _chunks(
    ids: list[str], rows: list[int], seqs: list[int]
) -> Iterator[tuple[list[str], list[int], list[int]]]:
    for start in range(0, len(ids), WRITE_CHUNK):
        end = start + WRITE_CHUNK
        yield ids[start:end], rows[start:end], seqs[start:end]
