"""``als``: collaborative-filtering factors as a version's model, for recommendations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .._errors import TextNotSupported
from ..als import fold_in
from .base import Purpose
from .registry import AlsSpec, params_digest


class AlsModel:
    """Item vectors are loaded (trained factors, kept at their raw norms: the norm carries the
    item's popularity and the ALS score is the plain inner product); a user's vector is folded in
    from the user's history by ``user_vector``. It embeds no text."""

    derives_users = True
    embeds_text = False
    normalized = False

    def __init__(self, spec: AlsSpec) -> None:
        self.spec = spec
        self.dim = spec.factors
        self.fingerprint = params_digest(
            "als", spec.factors, spec.regularization, spec.alpha, spec.iterations, spec.seed, spec.trained_seq
        )

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        raise TextNotSupported(
            "an als version embeds no text: it holds trained item factors and folded-in users; "
            'use recommend, or search with "like" instead of "text" (or pin a version with a text model)'
        )

    def user_vector(
        self,
        item_ids: Sequence[str],
        item_vectors: np.ndarray,
        weights: Sequence[float],
        ts: Sequence[float],
        item_gram: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """The ALS user step over the user's items, weights summed per item as in training."""
        rows: dict[str, int] = {}
        summed: list[float] = []
        for n, (item, weight) in enumerate(zip(item_ids, weights, strict=True)):
            if item in rows:
                summed[rows[item]] += weight
            else:
                rows[item] = n
                summed.append(weight)
        vectors = item_vectors[list(rows.values())]
        return fold_in(vectors, summed, item_gram(), self.spec.regularization, self.spec.alpha)

    def __repr__(self) -> str:
        return f"AlsModel({self.spec!r})"
