"""User-item interactions for recommendation: a generator with planted structure, CSV loading,
a leave-last-out split and offline evaluation.

``generate`` builds a data set where a better model measurably wins: items belong to topics whose
words appear in the item texts, popularity follows a Zipf-like skew, and each user likes one to
three topics. ``popular_items`` is the documented fallback baseline; ``evaluate_recommendations``
scores any ``recommend(user, k)`` callable with the recall and nDCG of ``metrics.py``.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import InvalidRequest
from ..store.base import Interaction
from .metrics import ndcg_at_k, recall_at_k

# Exponent applied to popularity (1 / rank) when sampling interactions: above 1 sharpens the head.
POPULARITY_ALPHA = 1.2
# Share of a user's taste spread evenly over all topics, so every item stays reachable.
EXPLORATION = 0.02
PURCHASE_RATE = 0.1

THEMES: dict[str, tuple[str, ...]] = {
    "astronomy": ("star", "galaxy", "telescope", "orbit", "planet", "comet", "nebula", "cosmos"),
    "cooking": ("recipe", "oven", "garlic", "simmer", "flour", "spice", "skillet", "dough"),
    "gardening": ("soil", "seedling", "compost", "prune", "blossom", "trowel", "mulch", "shrub"),
    "football": ("goal", "striker", "referee", "penalty", "stadium", "midfield", "league", "keeper"),
    "music": ("melody", "guitar", "chord", "rhythm", "drummer", "album", "chorus", "tempo"),
    "finance": ("stock", "dividend", "bond", "portfolio", "interest", "equity", "broker", "yield"),
    "medicine": ("patient", "diagnosis", "vaccine", "surgeon", "clinic", "dosage", "symptom", "therapy"),
    "sailing": ("sail", "harbor", "mast", "anchor", "tide", "hull", "rudder", "regatta"),
    "programming": ("compiler", "function", "variable", "debugger", "syntax", "library", "loop", "module"),
    "history": ("empire", "dynasty", "treaty", "medieval", "archive", "revolution", "castle", "monarch"),
    "photography": ("camera", "lens", "aperture", "shutter", "exposure", "portrait", "tripod", "focus"),
    "fitness": ("workout", "muscle", "cardio", "squat", "stretch", "treadmill", "protein", "endurance"),
    "travel": ("passport", "airport", "luggage", "itinerary", "hostel", "journey", "visa", "backpack"),
    "chemistry": ("molecule", "reaction", "catalyst", "acid", "beaker", "electron", "solvent", "isotope"),
    "painting": ("canvas", "brush", "palette", "watercolor", "easel", "pigment", "sketch", "mural"),
    "birds": ("feather", "nest", "sparrow", "migration", "beak", "owl", "plumage", "songbird"),
    "cars": ("engine", "gearbox", "tire", "brake", "sedan", "horsepower", "clutch", "exhaust"),
    "coffee": ("espresso", "roast", "bean", "barista", "grinder", "latte", "crema", "brew"),
    "chess": ("pawn", "bishop", "knight", "checkmate", "opening", "gambit", "rook", "endgame"),
    "weather": ("storm", "rainfall", "forecast", "humidity", "thunder", "cloud", "breeze", "drought"),
}
FILLER = (
    "new", "great", "guide", "about", "with", "simple", "best", "daily", "notes", "story",
    "practical", "small", "classic", "modern", "essential", "quick", "complete", "good",
)  # fmt: skip
WORDS_PER_SENTENCE, SENTENCES = 7, 3
TOPIC_WORD_SHARE = 0.7


@dataclass(frozen=True)
class RecData:
    """Users, item texts (item id -> text) and interactions.

    ``item_topics`` (item id -> topic index) and ``user_tastes`` (user id -> topic mixture summing
    to 1) are the planted truth of generated data; both are empty for data loaded from CSV.
    """

    users: list[str]
    items: dict[str, str]
    interactions: list[Interaction]
    item_topics: dict[str, int]
    user_tastes: dict[str, np.ndarray]


def generate(
    users: int = 1000, items: int = 5000, topics: int = 20, interactions_per_user: int = 30, seed: int = 0
) -> RecData:
    """A synthetic data set with planted structure; the same arguments give the same data.

    Promises: item ids ``i00000``..., user ids ``u0000``...; each item has one topic (``topics`` at
    most ``len(THEMES)``) and a text of a few sentences mostly made of its topic's words; each user
    has a taste over one to three topics; each user acts on ``interactions_per_user`` distinct
    items, drawn without replacement with probability proportional to
    ``popularity ** POPULARITY_ALPHA * (taste[topic] + EXPLORATION / topics)``, where popularity is
    Zipf-like (``1 / rank``). Timestamps increase within each user; about ``PURCHASE_RATE`` of the
    interactions are purchases with weight 2.0, the rest weight 1.0. Interactions are listed user
    by user, oldest first.
    """
    _check_sizes(users, items, topics, interactions_per_user)
    rng = np.random.default_rng(seed)
    user_ids = [f"u{u:04d}" for u in range(users)]
    item_ids = [f"i{i:05d}" for i in range(items)]
    topic_of = rng.integers(0, topics, size=items)
    popularity = 1.0 / (rng.permutation(items) + 1.0)
    texts = _item_texts(rng, topic_of)
    tastes = _user_tastes(rng, users, topics)
    order = _sample_items(rng, tastes, topic_of, popularity, interactions_per_user)
    gaps = rng.exponential(3600.0, size=order.shape).cumsum(axis=1)
    starts = rng.uniform(0.0, 86400.0 * 30, size=(users, 1))
    purchases = rng.random(order.shape) < PURCHASE_RATE
    interactions = [
        Interaction(
            user_ids[u],
            item_ids[order[u, j]],
            2.0 if purchases[u, j] else 1.0,
            float(starts[u, 0] + gaps[u, j]),
        )
        for u in range(users)
        for j in range(interactions_per_user)
    ]
    return RecData(
        users=user_ids,
        items=dict(zip(item_ids, texts, strict=True)),
        interactions=interactions,
        item_topics={item_ids[i]: int(topic_of[i]) for i in range(items)},
        user_tastes={user_ids[u]: tastes[u] for u in range(users)},
    )


def _check_sizes(users: int, items: int, topics: int, interactions_per_user: int) -> None:
    if users < 1 or items < 1:
        raise ValueError(f"users and items must be at least 1, got users={users}, items={items}")
    if not 1 <= topics <= len(THEMES):
        raise ValueError(f"topics must be between 1 and {len(THEMES)}, got {topics}")
    if not 1 <= interactions_per_user <= items:
        raise ValueError(
            f"interactions_per_user must be between 1 and items ({items}), got {interactions_per_user}"
        )


def _item_texts(rng: np.random.Generator, topic_of: np.ndarray) -> list[str]:
    """A text per item: ``SENTENCES`` sentences mixing its topic's words with shared filler words."""
    vocab = list(THEMES.values())
    shape = (len(topic_of), SENTENCES * WORDS_PER_SENTENCE)
    from_topic = rng.random(shape) < TOPIC_WORD_SHARE
    topic_pick = rng.integers(0, len(vocab[0]), size=shape)
    filler_pick = rng.integers(0, len(FILLER), size=shape)
    texts = []
    for i, topic in enumerate(topic_of):
        words = [
            vocab[topic][topic_pick[i, j]] if from_topic[i, j] else FILLER[filler_pick[i, j]]
            for j in range(shape[1])
        ]
        sentences = [
            " ".join(words[s : s + WORDS_PER_SENTENCE]).capitalize() + "."
            for s in range(0, shape[1], WORDS_PER_SENTENCE)
        ]
        texts.append(" ".join(sentences))
    return texts


def _user_tastes(rng: np.random.Generator, users: int, topics: int) -> np.ndarray:
    """``[users, topics]``: each row a Dirichlet mixture over one to three distinct topics."""
    tastes = np.zeros((users, topics))
    for u in range(users):
        liked = rng.choice(topics, size=min(int(rng.integers(1, 4)), topics), replace=False)
        tastes[u, liked] = rng.dirichlet(np.ones(len(liked)))
    return tastes


def _sample_items(
    rng: np.random.Generator, tastes: np.ndarray, topic_of: np.ndarray, popularity: np.ndarray, n: int
) -> np.ndarray:
    """``[users, n]`` item indices, in the order drawn, without replacement per user."""
    topics = tastes.shape[1]
    weights = (tastes + EXPLORATION / topics)[:, topic_of] * popularity**POPULARITY_ALPHA
    # Gumbel top-n: sorting log-weights plus Gumbel noise is sequential sampling without replacement.
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    top = np.argpartition(-keys, n - 1, axis=1)[:, :n]
    ranks = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, ranks, axis=1)


_REQUIRED = ("user", "item")
_OPTIONAL = ("weight", "ts")


def load_csv(path: str | Path) -> list[Interaction]:
    """The interactions of a CSV file with header ``user,item[,weight,ts]``, in file order.

    Columns may come in any order; ``weight`` (default 1.0) and ``ts`` (default 0.0) are optional,
    and an empty cell in them takes the default. Cells are trimmed; blank lines are skipped. Raises
    ``InvalidRequest`` naming the file, line and fix for a missing, unknown or repeated column, a
    row with the wrong number of cells, an empty user or item, or a weight or ts that is not a
    finite number. A missing file raises ``FileNotFoundError``.
    """
    with Path(path).open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        columns = _columns(path, header)
        interactions: list[Interaction] = []
        for row in reader:
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            interactions.append(_row(path, reader.line_num, columns, cells))
    return interactions


def _columns(path: str | Path, header: list[str] | None) -> list[str]:
    """The trimmed, lowercased column names of ``header``, checked."""
    if header is None:
        raise InvalidRequest(f"{path}:1: the file is empty; start it with the header line 'user,item'")
    columns = [name.strip().lower() for name in header]
    unknown = [name for name in columns if name not in _REQUIRED + _OPTIONAL]
    if unknown:
        raise InvalidRequest(
            f"{path}:1: unknown column {unknown[0]!r}; the header may only name user, item, weight "
            "and ts, so remove the other columns"
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise InvalidRequest(f"{path}:1: column {repeated[0]!r} appears twice; keep one of them")
    missing = [name for name in _REQUIRED if name not in columns]
    if missing:
        raise InvalidRequest(
            f"{path}:1: missing column {missing[0]!r}; the header must name user and item, "
            "e.g. 'user,item,weight,ts'"
        )
    return columns


def _row(path: str | Path, line: int, columns: list[str], cells: list[str]) -> Interaction:
    if len(cells) != len(columns):
        raise InvalidRequest(
            f"{path}:{line}: expected {len(columns)} cells ({','.join(columns)}), got {len(cells)}; "
            "fix the row so it has one cell per column"
        )
    values = dict(zip(columns, cells, strict=True))
    for name in _REQUIRED:
        if not values[name]:
            raise InvalidRequest(f"{path}:{line}: the {name} is empty; every row needs a {name} id")
    return Interaction(
        user=values["user"],
        item=values["item"],
        weight=_number(path, line, "weight", values.get("weight", ""), 1.0),
        ts=_number(path, line, "ts", values.get("ts", ""), 0.0),
    )


def _number(path: str | Path, line: int, name: str, cell: str, default: float) -> float:
    if not cell:
        return default
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidRequest(
            f"{path}:{line}: {name} {cell!r} is not a finite number; write a number such as 1 or 2.5, "
            "or leave the cell empty for the default"
        )
    return value


def split_last(
    interactions: Iterable[Interaction], holdout: int = 1
) -> tuple[list[Interaction], dict[str, set[str]]]:
    """Leave-last-out: each user's ``holdout`` latest interactions (by ``ts``, ties in input order).

    Returns ``(train, heldout)``: ``train`` keeps the input order and holds every interaction not
    held out; ``heldout`` maps each user with at least ``holdout + 1`` interactions to the items
    of the held-out ones. Users with fewer interactions stay wholly in ``train``.
    """
    if holdout < 1:
        raise ValueError(f"holdout must be at least 1, got {holdout}")
    listed = list(interactions)
    by_user: dict[str, list[int]] = defaultdict(list)
    for position, interaction in enumerate(listed):
        by_user[interaction.user].append(position)
    held_positions: set[int] = set()
    heldout: dict[str, set[str]] = {}
    for user, positions in by_user.items():
        if len(positions) <= holdout:
            continue
        latest = sorted(positions, key=lambda p: listed[p].ts)[-holdout:]
        held_positions.update(latest)
        heldout[user] = {listed[p].item for p in latest}
    train = [x for position, x in enumerate(listed) if position not in held_positions]
    return train, heldout


def evaluate_recommendations(
    recommend: Callable[[str, int], list[str]], heldout: Mapping[str, set[str]], k: int = 10
) -> dict[str, float]:
    """Mean recall@k and nDCG@k (binary relevance) of ``recommend(user, k)`` over ``heldout``.

    Users with an empty held-out set are skipped. Returns
    ``{"recall@{k}": ..., "ndcg@{k}": ..., "users": n}``, with ``n`` the number of users scored.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    judged = {user: items for user, items in heldout.items() if items}
    if not judged:
        raise ValueError("heldout has no user with held-out items; split with split_last first")
    recall = ndcg = 0.0
    for user, items in judged.items():
        ranked = recommend(user, k)
        rels = dict.fromkeys(items, 1)
        recall += recall_at_k(ranked, rels, k)
        ndcg += ndcg_at_k(ranked, rels, k)
    n = len(judged)
    return {f"recall@{k}": recall / n, f"ndcg@{k}": ndcg / n, "users": n}


def seen_by_user(interactions: Iterable[Interaction]) -> dict[str, set[str]]:
    """The items each user interacted with."""
    seen: dict[str, set[str]] = {}
    for x in interactions:
        seen.setdefault(x.user, set()).add(x.item)
    return seen


def popular_items(interactions: Iterable[Interaction], k: int) -> list[str]:
    """The ``k`` items with the largest total weight, ties broken by item id: the fallback baseline."""
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    totals: dict[str, float] = defaultdict(float)
    for interaction in interactions:
        totals[interaction.item] += interaction.weight
    return sorted(totals, key=lambda item: (-totals[item], item))[:k]
