"""``als``: collaborative filtering by implicit-feedback ALS, trained offline and folded in online.

Training uses the ``implicit`` library (a well-kept C++/Cython implementation of Hu, Koren and
Volinsky's implicit ALS, with a conjugate-gradient solver; chosen over a hand-written solver or a
heavier framework because it trains 1,000 users x 5,000 items in well under a second here and needs
only NumPy/SciPy). ``fold_in`` is the exact ALS user step on given item factors, so a user whose
history changes between retrains gets a vector consistent with the trained items. ``AlsModel``
serves the factors as a version's model; ``embedswitch/training.py`` trains a version.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._errors import TextNotSupported
from .base import Purpose, params_digest
from .extras import needs_extra
from .specs import AlsSpec


class Rated(Protocol):
    """One interaction as training reads it: ``user`` gave ``item`` a (positive) ``weight``."""

    @property
    def user(self) -> str: ...

    @property
    def item(self) -> str: ...

    @property
    def weight(self) -> float: ...


@dataclass(frozen=True)
class AlsFactors:
    """Trained factors: row ``n`` of ``user_factors`` belongs to ``user_ids[n]``, likewise items."""

    user_ids: list[str]
    user_factors: np.ndarray
    item_ids: list[str]
    item_factors: np.ndarray
    regularization: float
    alpha: float

    def recommend(self, user: str, k: int, exclude: set[str]) -> list[str]:
        """The ``k`` items with the highest ``user · item`` score, leaving out ``exclude``."""
        row = self.user_ids.index(user)
        order = np.argsort(-(self.item_factors @ self.user_factors[row]))
        return [self.item_ids[j] for j in order if self.item_ids[j] not in exclude][:k]


def require_training() -> None:
    """Raise ``ModelNotInstalled`` unless ALS can be trained here (``embedswitch[als]``)."""
    with needs_extra("als"):
        importlib.import_module("implicit")


def train_als(
    interactions: Sequence[Rated],
    factors: int = 64,
    regularization: float = 0.05,
    iterations: int = 15,
    alpha: float = 20.0,
    seed: int = 0,
    on_iteration: Callable[[int], None] | None = None,
) -> AlsFactors:
    """Factors from the interactions (confidence ``alpha * weight``, summed per user and item).
    ``on_iteration(n)`` is called after iteration ``n`` (from 1); an exception it raises stops
    training and propagates."""
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    with needs_extra("als"):
        from implicit.cpu.als import AlternatingLeastSquares

    if not interactions:
        raise ValueError("no interactions to train on")
    user_ids = sorted({x.user for x in interactions})
    item_ids = sorted({x.item for x in interactions})
    user_row = {u: n for n, u in enumerate(user_ids)}
    item_col = {i: n for n, i in enumerate(item_ids)}
    matrix = sp.csr_matrix(
        (
            [x.weight for x in interactions],
            ([user_row[x.user] for x in interactions], [item_col[x.item] for x in interactions]),
        ),
        shape=(len(user_ids), len(item_ids)),
        dtype=np.float32,
    )
    with threadpool_limits(1, "blas"):  # implicit runs its own threads; nested BLAS threads only slow it
        model = AlternatingLeastSquares(
            factors=factors,
            regularization=regularization,
            iterations=iterations,
            alpha=alpha,
            random_state=seed,
        )
        model.fit(
            matrix,
            show_progress=False,
            callback=None if on_iteration is None else lambda n, _elapsed, _loss: on_iteration(n + 1),
        )
    return AlsFactors(
        user_ids,
        np.asarray(model.user_factors, dtype=np.float32),
        item_ids,
        np.asarray(model.item_factors, dtype=np.float32),
        regularization,
        alpha,
    )


def gram(item_factors: np.ndarray) -> np.ndarray:
    """``YᵀY`` over every item, the part of the user step shared by all users."""
    y = item_factors.astype(np.float64)
    return y.T @ y


def fold_in(
    history_factors: np.ndarray,
    weights: Sequence[float],
    item_gram: np.ndarray,
    regularization: float,
    alpha: float,
) -> np.ndarray:
    """The ALS user step for one user: ``(YᵀY + Yᵤᵀ(Cᵤ - I)Yᵤ + λI) x = Yᵤᵀ Cᵤ 1``, where ``Yᵤ``
    are the factors of the items in the user's history and ``Cᵤ = alpha * weight`` (as ``implicit``
    scales its input)."""
    y = history_factors.astype(np.float64)
    confidence = alpha * np.asarray(weights, dtype=np.float64)
    a = item_gram + (y.T * (confidence - 1.0)) @ y + regularization * np.eye(y.shape[1])
    b = y.T @ confidence
    return np.linalg.solve(a, b).astype(np.float32)


class AlsModel:
    """Item vectors are loaded (trained factors, kept at their raw norms: the norm carries the
    item's popularity and the ALS score is the plain inner product); a user's vector is folded in
    from the user's history by ``user_vector``. It embeds no text."""

    derives_users = True
    embeds_text = False
    normalized = False
    batches_queries = False

    @classmethod
    def from_spec(cls, spec: AlsSpec) -> AlsModel:
        return cls(spec)

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
