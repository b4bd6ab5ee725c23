"""Where an in-process index keeps its vectors: the ``Storage`` seam under ``LocalIndex``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedswitch._errors import EmbedswitchError

PARALLEL = 256
"""Writes and searches of at least this many vectors use several cores; smaller ones one."""

Found = list[list[tuple[int, float]]]
"""Per query, ``(key, inner product)`` best first."""


class Storage(Protocol):
    """Vectors under int64 keys, searched by inner product.

    ``LocalIndex`` calls the writes (``reserve``, ``add``, ``replace``, ``remove``, ``close``) with
    every other call excluded; the reads (``get``, ``search``, ``save``, ``memory_bytes``,
    ``dead_slots``) may run concurrently with each other. Keys passed to ``add`` are new;
    keys passed to every other method are stored.
    """

    index_type: str
    precision: str
    """How each number is stored: "f32" (``get`` returns the vectors as written), "f16" or "i8"."""
    scan_below: int
    """A filtered search allowing at most this many vectors scores them exactly (``get`` and a
    product) instead of searching with the filter: worth it while ``get`` is cheap next to a search."""

    def reserve(self, extra: int) -> None:
        """Make room for ``extra`` more vectors at once (one reallocation instead of several)."""
        ...

    def add(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None: ...

    def replace(self, keys: np.ndarray, vectors: np.ndarray, threads: int) -> None: ...

    def remove(self, keys: np.ndarray) -> None: ...

    def get(self, keys: np.ndarray) -> np.ndarray:
        """``[len(keys), dim]`` float32, a fresh array."""
        ...

    def search(
        self, queries: np.ndarray, k: int, exclude: set[int], allow: np.ndarray | None, ef: int | None
    ) -> Found:
        """Per query, up to ``k`` hits best first, never a key in ``exclude`` and, with ``allow``
        (live keys, none of them excluded), only keys in it. ``ef``: a graph's search breadth for
        this call, at least its own. A graph storage may return fewer than ``k`` hits when
        ``allow`` or ``exclude`` cut its search short; ``LocalIndex`` then scores the allowed
        vectors exactly (``top_k``)."""
        ...

    def save(self, directory: Path) -> list[Path]:
        """Write the vectors into ``directory``; returns the files written (the caller fsyncs)."""
        ...

    def load(self, directory: Path, keys: np.ndarray) -> None:
        """Fill this empty storage from files ``save`` wrote; ``keys`` are those it must hold."""
        ...

    def empty(self) -> Storage:
        """A new, empty storage with the same parameters (what a rebuild fills)."""
        ...

    def dead_slots(self) -> int:
        """Memory slots still held by removed vectors (a rebuild frees them)."""
        ...

    def memory_bytes(self) -> int:
        """Bytes allocated for the vectors and their search structure, capacity included."""
        ...

    def params(self) -> dict[str, Any]:
        """Build parameters recorded in the checkpoint's meta.json."""
        ...

    def close(self) -> None:
        """Release the memory."""
        ...


def threads_for(rows: int) -> int:
    """All cores (-1) for a large batch, one thread for a small one."""
    return -1 if rows >= PARALLEL else 1


def scored(keys: np.ndarray, distances: np.ndarray, exclude: set[int], k: int) -> list[tuple[int, float]]:
    """One query's hits from a graph library's ``(keys, 1 - inner product)``: the first ``k`` whose
    key is not excluded, as ``(key, inner product)``."""
    pairs = zip(keys.tolist(), (1.0 - distances).tolist(), strict=True)
    if not exclude:
        return list(pairs)[:k]
    return [(key, score) for key, score in pairs if key not in exclude][:k]


def top_k(queries: np.ndarray, vectors: np.ndarray, keys: np.ndarray, k: int) -> Found:
    """Per query, the ``k`` best of ``keys`` (whose vectors are the rows of ``vectors``) by inner
    product, best first: an exact ranking."""
    n = len(keys)
    kk = min(k, n)
    if kk <= 0:
        return [[] for _ in range(len(queries))]
    scores = queries @ vectors.T
    if kk < n:
        top = np.argpartition(scores, n - kk, axis=1)[:, n - kk :]
    else:
        top = np.broadcast_to(np.arange(n), scores.shape)
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    rows = np.take_along_axis(top, order, axis=1)
    best = np.take_along_axis(top_scores, order, axis=1).tolist()
    return [list(zip(ks, ss, strict=True)) for ks, ss in zip(keys[rows].tolist(), best, strict=True)]


def corrupt(directory: Path, what: str) -> EmbedswitchError:
    """The error for a checkpoint whose vector files do not match its ids."""
    return EmbedswitchError(
        f"index checkpoint {directory} is corrupt: its {what} does not match its ids; "
        "restore it from a backup or rebuild this version",
        path=str(directory),
    )
