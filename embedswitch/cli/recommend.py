"""``embedswitch recommend`` and ``embedswitch interactions``: recommendations and their input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer

from ..evaluation.interactions import generate, load_csv
from ..specs import MAX_BATCH, MAX_K
from ._common import DEFAULT_URL, JsonOption, UrlOption, connect, console, print_json, progress_bar, text
from .search import hits_table

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]


def recommend(
    collection: CollectionArgument,
    user: Annotated[str | None, typer.Option("--user", help="Recommend items for this user.")] = None,
    item: Annotated[str | None, typer.Option("--item", help="Items similar to this item.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=MAX_K, help="Number of items.")] = 10,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Keep items the user already interacted with.")
    ] = False,
    popular: Annotated[
        bool, typer.Option("--popular-fallback", help="Popular items for a user without a vector.")
    ] = False,
    version: Annotated[str | None, typer.Option("--version", help="Ask this version.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Sticky routing key.")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Recommend items for a user, or items like an item, from one pinned version."""
    with connect(url) as client:
        result = client.recommend(
            collection,
            user=user,
            item=item,
            k=k,
            exclude_seen=not include_seen,
            key=key,
            version=version,
            fallback="popular" if popular else None,
        )
    if as_json:
        print_json(result)
        return
    console().print(hits_table(result))
    if result.fallback:
        console().print(text(f"(no vector for this user in {result.version}: {result.fallback} items)"))


def interactions(
    collection: CollectionArgument,
    path: Annotated[Path, typer.Argument(help="CSV with header user,item[,weight,ts].", exists=True)],
    batch: Annotated[int, typer.Option(min=1, max=MAX_BATCH, help="Interactions per request.")] = 1_000,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Append the interactions of a CSV file (all of a batch or none of it)."""
    rows = [{"user": r.user, "item": r.item, "weight": r.weight, "ts": r.ts} for r in load_csv(path)]
    out = console()
    seq = 0
    with connect(url) as client, progress_bar(out) as bar:
        task = bar.add_task(f"sending {path.name}", total=len(rows))
        for start in range(0, len(rows), batch):
            seq = client.add_interactions(collection, rows[start : start + batch]).seq
            bar.update(task, completed=min(len(rows), start + batch))
    out.print(text(f"{len(rows)} interactions; seq {seq}"))


def generate_data(
    directory: Annotated[Path, typer.Argument(help="Where to write items.jsonl and interactions.csv.")],
    users: Annotated[int, typer.Option(min=1, help="Users.")] = 1_000,
    items: Annotated[int, typer.Option(min=1, help="Items.")] = 5_000,
    per_user: Annotated[int, typer.Option(min=1, help="Interactions per user.")] = 30,
    topics: Annotated[int, typer.Option(min=1, help="Item topics (users have tastes over them).")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write a generated recommendation data set with planted structure (user tastes over item
    topics, item texts that reflect the topics, popularity skew), ready for `ingest` and
    `interactions`."""
    data = generate(users, items, topics, per_user, seed)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "items.jsonl").open("w", encoding="utf-8") as out:
        for item, body in data.items.items():
            out.write(json.dumps({"id": item, "kind": "item", "text": body}) + "\n")
    with (directory / "interactions.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user", "item", "weight", "ts"])
        writer.writerows((x.user, x.item, x.weight, x.ts) for x in data.interactions)
    console().print(
        text(
            f"wrote {len(data.items)} items to {directory / 'items.jsonl'} and {len(data.interactions)} "
            f"interactions of {len(data.users)} users to {directory / 'interactions.csv'}"
        )
    )
