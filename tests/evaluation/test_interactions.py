"""Interactions: the planted-structure generator, CSV loading, leave-last-out and offline evaluation."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from embedswitch._errors import InvalidRequest
from embedswitch.evaluation.interactions import (
    Interaction,
    RecData,
    evaluate_recommendations,
    generate,
    load_csv,
    popular_items,
    split_last,
)
from embedswitch.models import load_model


@pytest.fixture(scope="module")
def data() -> RecData:
    return generate()


# -- generate ------------------------------------------------------------------------------------


def test_generate_is_deterministic_for_a_seed() -> None:
    a, b = generate(users=50, items=300, seed=3), generate(users=50, items=300, seed=3)
    assert a.interactions == b.interactions
    assert a.items == b.items
    assert a.item_topics == b.item_topics
    assert all(np.array_equal(a.user_tastes[u], b.user_tastes[u]) for u in a.users)
    assert generate(users=50, items=300, seed=4).interactions != a.interactions


def test_generate_sizes_ids_and_fields() -> None:
    d = generate(users=40, items=200, topics=5, interactions_per_user=12, seed=1)
    assert d.users[:2] == ["u0000", "u0001"] and len(d.users) == 40
    assert list(d.items)[42] == "i00042" and len(d.items) == 200
    assert len(d.interactions) == 40 * 12
    assert set(d.item_topics.values()) <= set(range(5))
    for user in d.users:
        taste = d.user_tastes[user]
        assert taste.shape == (5,) and taste.sum() == pytest.approx(1.0)
        assert 1 <= np.count_nonzero(taste) <= 3
        mine = [x for x in d.interactions if x.user == user]
        assert len({x.item for x in mine}) == 12
        assert all(a.ts < b.ts for a, b in zip(mine, mine[1:], strict=False))
    assert {x.weight for x in d.interactions} == {1.0, 2.0}


def test_generate_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="topics"):
        generate(topics=21)
    with pytest.raises(ValueError, match="interactions_per_user"):
        generate(items=10, interactions_per_user=11)


def test_popularity_is_skewed(data: RecData) -> None:
    counts = np.sort(np.array(list(Counter(x.item for x in data.interactions).values())))[::-1]
    counts = np.concatenate([counts, np.zeros(len(data.items) - len(counts))])
    top = counts[: len(counts) // 100].sum() / counts.sum()
    bottom = counts[len(counts) // 2 :].sum() / counts.sum()
    assert top > 1.5 * bottom


def test_planted_structure_is_recoverable(data: RecData) -> None:
    train, heldout = split_last(data.interactions)
    seen: dict[str, set[str]] = {}
    for x in train:
        seen.setdefault(x.user, set()).add(x.item)
    ids = list(data.items)
    topic = np.array([data.item_topics[i] for i in ids])
    counts = Counter(x.item for x in train)
    train_popularity = np.array([counts[i] for i in ids], dtype=float) + 1.0
    ranked_popular = popular_items(train, len(ids))
    rng = np.random.default_rng(0)

    def oracle(user: str, k: int) -> list[str]:
        order = np.argsort(-(data.user_tastes[user][topic] * train_popularity), kind="stable")
        return [ids[i] for i in order if ids[i] not in seen[user]][:k]

    def popular(user: str, k: int) -> list[str]:
        return [i for i in ranked_popular if i not in seen[user]][:k]

    def random(user: str, k: int) -> list[str]:
        return [ids[i] for i in rng.choice(len(ids), size=k, replace=False)]

    best = evaluate_recommendations(oracle, heldout)["recall@10"]
    baseline = evaluate_recommendations(popular, heldout)["recall@10"]
    chance = evaluate_recommendations(random, heldout)["recall@10"]
    assert best > 3 * baseline
    assert baseline > 3 * chance


def test_texts_of_one_topic_share_words(data: RecData) -> None:
    ids = list(data.items)[:300]
    vectors = load_model("hashing").encode([data.items[i] for i in ids])
    similarity = vectors @ vectors.T
    topic = np.array([data.item_topics[i] for i in ids])
    same = topic[:, None] == topic[None, :]
    off_diagonal = ~np.eye(len(ids), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.2


# -- load_csv ------------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "interactions.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv_with_all_columns_and_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path, " user , item ,weight, ts\n u1 , i1 , 2 , 10.5\n\nu2,i2,,\n")
    assert load_csv(path) == [Interaction("u1", "i1", 2.0, 10.5), Interaction("u2", "i2", 1.0, 0.0)]


def test_load_csv_without_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "item,user\ni1,u1\ni2,u1\n")
    assert load_csv(path) == [Interaction("u1", "i1"), Interaction("u1", "i2")]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("user,weight\nu1,1\n", ":1:", "missing column 'item'"),
        ("user,item,rating\nu1,i1,5\n", ":1:", "unknown column 'rating'"),
        ("user,item,item\nu1,i1,i1\n", ":1:", "appears twice"),
        ("", ":1:", "empty"),
        ("user,item,weight\nu1,i1,1\nu1,i2,lots\n", ":3:", "weight 'lots' is not a finite number"),
        ("user,item,ts\nu1,i1,nan\n", ":2:", "ts 'nan' is not a finite number"),
        ("user,item\nu1,i1\n  ,i2\n", ":3:", "the user is empty"),
        ("user,item\nu1,i1,extra\n", ":2:", "expected 2 cells"),
    ],
)
def test_load_csv_errors_name_the_line(tmp_path: Path, text: str, where: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidRequest) as caught:
        load_csv(path)
    assert f"{path}{where}" in caught.value.message
    assert problem in caught.value.message


# -- split_last ----------------------------------------------------------------------------------


def test_split_last_holds_out_the_latest_by_ts_with_ties_in_file_order() -> None:
    a1, a2, a3 = Interaction("a", "x", ts=5), Interaction("a", "y", ts=9), Interaction("a", "z", ts=1)
    b1, b2 = Interaction("b", "p", ts=3), Interaction("b", "q", ts=3)  # tie: q comes later in the file
    lonely = Interaction("c", "only", ts=7)
    train, heldout = split_last([a1, b1, a2, lonely, a3, b2])
    assert heldout == {"a": {"y"}, "b": {"q"}}
    assert train == [a1, b1, lonely, a3]


def test_split_last_with_a_larger_holdout_skips_users_with_too_few() -> None:
    rows = [Interaction("a", f"i{n}", ts=n) for n in range(3)] + [Interaction("b", "j", ts=0)] * 2
    train, heldout = split_last(rows, holdout=2)
    assert heldout == {"a": {"i1", "i2"}}
    assert train == [rows[0], rows[3], rows[4]]
    with pytest.raises(ValueError, match="holdout"):
        split_last(rows, holdout=0)


# -- evaluate_recommendations and popular_items --------------------------------------------------


def test_evaluate_recommendations_on_a_hand_checked_case() -> None:
    recommendations = {"a": ["x", "h1", "y"], "b": ["h2", "z", "h3"], "c": ["n", "m", "o"]}
    heldout = {"a": {"h1"}, "b": {"h2", "h3"}, "c": {"h4"}, "d": set()}
    scores = evaluate_recommendations(lambda user, k: recommendations[user][:k], heldout, k=3)
    # a: recall 1/1; nDCG = (1/log2(3)) / 1. b: recall 2/2; nDCG = (1 + 1/log2(4)) / (1 + 1/log2(3)).
    # c: nothing found, 0 and 0. d has no held-out item and is not scored: 3 users.
    ndcg_a = 1 / math.log2(3)
    ndcg_b = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert scores == {
        "recall@3": pytest.approx((1 + 1 + 0) / 3),
        "ndcg@3": pytest.approx((ndcg_a + ndcg_b + 0) / 3),
        "users": 3,
    }
    with pytest.raises(ValueError, match="heldout"):
        evaluate_recommendations(lambda user, k: [], {"d": set()})


def test_popular_items_by_total_weight_ties_by_id() -> None:
    rows = [
        Interaction("u1", "b", 2.0),
        Interaction("u2", "a"),
        Interaction("u3", "a"),
        Interaction("u1", "c"),
        Interaction("u2", "d", 3.0),
    ]
    # totals: d 3, a 2, b 2, c 1; a and b tie and sort by id
    assert popular_items(rows, 3) == ["d", "a", "b"]
    assert popular_items(rows, 10) == ["d", "a", "b", "c"]
    assert popular_items([], 5) == []
