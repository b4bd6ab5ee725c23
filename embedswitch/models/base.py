"""The embedding-model seam."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Purpose = Literal["document", "query"]


@runtime_checkable
class EmbeddingModel(Protocol):
    """Turns texts into vectors.

    Callers may rely on:
    - ``dim`` never changes for an instance;
    - ``fingerprint`` is a stable hex digest of the weights/files and every parameter that changes
      the output, so two instances with the same fingerprint give the same vectors;
    - ``encode`` returns ``float32`` of shape ``[len(texts), dim]`` whose rows have L2 norm 1,
      is safe to call from several threads, and never downloads anything.
    """

    dim: int
    fingerprint: str

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray: ...


@runtime_checkable
class UserModel(Protocol):
    """A model for recommendations whose user vectors are derived from the version's own item
    vectors over each user's interactions (``derives_users``), never embedded from text.

    Callers may rely on: ``user_vector`` is deterministic in its inputs. ``item_gram`` gives
    ``YᵀY`` over every item vector of the version, computed only if the model needs it.
    A model may also set ``embeds_text = False`` (its ``encode`` raises ``TextNotSupported`` and its
    item vectors are loaded, not embedded) and ``normalized = False`` (its vectors keep their norms
    and are compared by plain inner product)."""

    derives_users: bool

    def user_vector(
        self,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        weights: Sequence[float],
        ts: Sequence[float],
        item_gram: Callable[[], np.ndarray],
    ) -> np.ndarray: ...


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, as contiguous float32 (all-zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms
