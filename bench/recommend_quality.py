"""Offline recommender quality on generated data with planted structure.

``embedswitch.evaluation.interactions.generate`` plants user tastes over item topics and item
texts that reflect the topics. Each user's last interaction is held out; the rest streams into a
collection through ``add_interactions``. Each version (a ``history-mean`` over a text model, and
an ``als`` version trained by ``engine.train``) then recommends 10 items per user, seen items
excluded, through the real serving path (``engine.recommend`` pinned to that version), next to
the popularity baseline. Reported: recall@10 and nDCG@10.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from embedswitch import EngineConfig
from embedswitch.evaluation.interactions import (
    Interaction,
    evaluate_recommendations,
    generate,
    popular_items,
    seen_by_user,
    split_last,
)

from ._common import temp_engine

COLLECTION = "shop"


@dataclass(frozen=True)
class Params:
    users: int
    items: int
    interactions_per_user: int
    text_models: tuple[str, ...]
    seed: int = 0
    k: int = 10

    @classmethod
    def for_mode(cls, quick: bool) -> Params:
        if quick:
            return cls(users=150, items=600, interactions_per_user=15, text_models=("hashing",))
        return cls(users=1000, items=5000, interactions_per_user=30, text_models=("hashing", "minilm-static"))


def run(quick: bool, params: Params | None = None) -> dict[str, Any]:
    params = params or Params.for_mode(quick)
    data = generate(params.users, params.items, 20, params.interactions_per_user, params.seed)
    train, heldout = split_last(data.interactions)
    rows = [_popularity(train, heldout, params.k)]
    with temp_engine(EngineConfig()) as engine:
        names = [f"v{n}" for n in range(1, len(params.text_models) + 1)]
        for name, text in zip(names, params.text_models, strict=True):
            spec = {"name": name, "model": {"type": "history-mean", "text": text}}
            if name == "v1":
                engine.create_collection(COLLECTION, spec)
                engine.upsert(
                    COLLECTION, [{"id": i, "text": t, "kind": "item"} for i, t in data.items.items()]
                )
                rows_in = [{"user": x.user, "item": x.item, "weight": x.weight, "ts": x.ts} for x in train]
                for start in range(0, len(rows_in), 2_000):
                    engine.add_interactions(COLLECTION, rows_in[start : start + 2_000])
            else:
                engine.add_version(COLLECTION, spec)
            engine.wait_ready(COLLECTION, name, 1_800)
        engine.train(COLLECTION, {"version": "als", "model": {"type": "als"}})
        engine.wait_ready(COLLECTION, "als", 1_800)
        for name, label in [
            *zip(names, [f"history-mean({t})" for t in params.text_models], strict=True),
            ("als", "als (trained by engine.train)"),
        ]:

            def recommend(user: str, k: int, version: str = name) -> list[str]:
                return [h.id for h in engine.recommend(COLLECTION, user=user, k=k, version=version).hits]

            scores = _rounded(evaluate_recommendations(recommend, heldout, params.k))
            rows.append({"model": label, "version": name, **scores})
    return {
        "params": {**asdict(params), "holdout": "last interaction per user"},
        "tables": {"leave-last-out on generated data": rows},
        "summary": {f"{row['model']} recall@{params.k}": row[f"recall@{params.k}"] for row in rows},
    }


def _popularity(train: list[Interaction], heldout: dict[str, set[str]], k: int) -> dict[str, Any]:
    seen = seen_by_user(train)
    ranked = popular_items(train, k + max((len(s) for s in seen.values()), default=0))

    def recommend(user: str, n: int) -> list[str]:
        return [i for i in ranked if i not in seen.get(user, set())][:n]

    scores = _rounded(evaluate_recommendations(recommend, heldout, k))
    return {"model": "popularity (baseline)", "version": "-", **scores}


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 4) for name, value in scores.items()}
