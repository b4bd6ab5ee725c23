"""ALS training and fold-in, the building blocks of `als` versions (served: tests/test_als_serving.py)."""

from __future__ import annotations

import numpy as np
import pytest

from embedswitch.evaluation.interactions import (
    Interaction,
    evaluate_recommendations,
    generate,
    popular_items,
    seen_by_user,
    split_last,
)
from embedswitch.models.als import fold_in, gram, train_als


def test_als_beats_popularity_on_planted_structure() -> None:
    data = generate(users=400, items=1500, topics=10, interactions_per_user=25, seed=2)
    train, heldout = split_last(data.interactions)
    factors = train_als(train, factors=32, iterations=10)
    seen = seen_by_user(train)

    def als(user: str, k: int) -> list[str]:
        return factors.recommend(user, k, seen[user])

    ranked = popular_items(train, 200)

    def popular(user: str, k: int) -> list[str]:
        return [i for i in ranked if i not in seen[user]][:k]

    als_recall = evaluate_recommendations(als, heldout)["recall@10"]
    popular_recall = evaluate_recommendations(popular, heldout)["recall@10"]
    assert als_recall > 2 * popular_recall, (als_recall, popular_recall)


def test_fold_in_is_the_exact_als_user_step() -> None:
    implicit = pytest.importorskip("implicit")
    import scipy.sparse as sp

    data = generate(users=100, items=300, topics=5, interactions_per_user=10, seed=5)
    factors = train_als(data.interactions, factors=16, iterations=5)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=16, regularization=0.05, alpha=20.0, use_cg=False
        )
    model.item_factors = factors.item_factors
    col = {i: n for n, i in enumerate(factors.item_ids)}
    history = [x for x in data.interactions if x.user == "u0003"]
    weights: dict[str, float] = {}
    for x in history:
        weights[x.item] = weights.get(x.item, 0.0) + x.weight
    items = sorted(weights, key=col.__getitem__)
    row = sp.csr_matrix(
        ([weights[i] for i in items], ([0] * len(items), [col[i] for i in items])), shape=(1, len(col))
    )
    expected = np.asarray(model.recalculate_user(0, row)).ravel()
    got = fold_in(
        factors.item_factors[[col[i] for i in items]],
        [weights[i] for i in items],
        gram(factors.item_factors),
        0.05,
        20.0,
    )
    assert np.allclose(got, expected, atol=1e-3)


def test_training_needs_interactions() -> None:
    with pytest.raises(ValueError):
        train_als([])
    assert train_als([Interaction("u", "i")], factors=4, iterations=2).item_ids == ["i"]
