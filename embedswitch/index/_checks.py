"""What every index checks of its input, the same way: vectors, queries, seqs, and being open."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedswitch._errors import InvalidRequest, Unavailable
from embedswitch.index.base import IndexMeta

DTYPE = np.float32


def check_queries(queries: np.ndarray, meta: IndexMeta) -> np.ndarray:
    """``queries`` as a C-contiguous float32 ``[n, dim]`` array of finite numbers; the common case
    (already one) without a copy."""
    if (
        type(queries) is np.ndarray
        and queries.dtype == DTYPE
        and queries.ndim == 2
        and queries.shape[1] == meta.dim
        and queries.flags.c_contiguous
    ):
        if not np.isfinite(queries).all():
            raise InvalidRequest("queries contain NaN or infinite values")
        return queries
    return check_vectors(queries, None, meta, what="queries")


def check_vectors(vectors: np.ndarray, n: int | None, meta: IndexMeta, *, what: str) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 ``[n, dim]`` array of finite numbers, else
    ``InvalidRequest`` saying what is wrong."""
    arr = np.asarray(vectors)
    if n == 0 and arr.size == 0:
        return np.zeros((0, meta.dim), dtype=DTYPE)
    if arr.ndim != 2 or arr.shape[1] != meta.dim:
        raise InvalidRequest(
            f"{what} must have shape [n, {meta.dim}] for this index "
            f"({meta.collection}/{meta.version}), got {list(arr.shape)}",
            collection=meta.collection,
            version=meta.version,
        )
    if n is not None and arr.shape[0] != n:
        raise InvalidRequest(f"got {n} ids but {arr.shape[0]} {what}; pass one vector per id")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InvalidRequest(f"{what} must be real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, rejected below
        out = np.ascontiguousarray(arr, dtype=DTYPE)
    if not np.isfinite(out).all():
        raise InvalidRequest(f"{what} contain NaN or infinite values (or overflow float32)")
    return out


def check_seqs(ids: Sequence[str], seqs: Sequence[int]) -> list[int]:
    """The seqs as ints, one per id."""
    if isinstance(ids, str):
        raise InvalidRequest("ids must be a sequence of strings, not one string")
    if len(ids) != len(seqs):
        raise InvalidRequest(f"got {len(ids)} ids but {len(seqs)} seqs; pass one seq per id")
    return [int(s) for s in seqs]


def check_k(k: int) -> None:
    if k < 0:
        raise InvalidRequest(f"k must be >= 0, got {k}", k=k)


def closed(meta: IndexMeta) -> Unavailable:
    """The error of a call on a closed index."""
    return Unavailable(
        f"index {meta.collection}/{meta.version}/{meta.kind} is closed; reopen it",
        collection=meta.collection,
        version=meta.version,
    )
