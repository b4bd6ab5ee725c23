"""``embedswitch recommend`` and ``embedswitch interactions``: recommendations and their input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..interactions import load_csv
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
