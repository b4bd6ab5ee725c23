"""Vectors sent by callers (query vectors, records' own, precomputed loads), checked once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._errors import InvalidRequest
from .models.base import l2_normalize


def checked_vectors(
    values: Sequence[Sequence[float]] | np.ndarray,
    what: str,
    dim: int,
    normalized: bool,
    where: dict[str, str],
) -> np.ndarray:
    """``values`` as float32 vectors of ``dim`` numbers (unit length if ``normalized``), a copy the
    caller can't change; or ``InvalidRequest`` naming what is wrong with them (``what``: "vectors",
    "the query vector"; ``where``: the collection and version it names)."""
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype == np.float32:
        vectors = values.copy() if values.shape[1] == dim else None  # a copy the caller can't change
    elif any(len(v) != dim for v in values):
        vectors = None
    else:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes infinite, refused below
            vectors = np.array(values, dtype=np.float32).reshape(len(values), dim)
    if vectors is None:
        version = where["version"]
        raise InvalidRequest(
            f"version {version!r} has dimension {dim}; {what} must have {dim} numbers each", **where
        )
    if not np.isfinite(vectors).all():
        raise InvalidRequest(f"{what} contain NaN, infinity or values beyond float32", **where)
    if normalized and not vectors.any(axis=1).all():
        raise InvalidRequest(f"{what}: a vector is all zeros; it can't be normalised", **where)
    return l2_normalize(vectors) if normalized else vectors
