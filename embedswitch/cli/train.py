"""``embedswitch train als``: retrain a collaborative model on the latest interactions, routinely."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ._common import (
    DEFAULT_URL,
    IndexOption,
    IndexType,
    JsonOption,
    UrlOption,
    connect,
    console,
    print_json,
    text,
)
from .versions import follow_backfill

app = typer.Typer(help="Train a model on the collection's interactions and deploy it as a version.")


@app.command("als")
def als(
    collection: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    version: Annotated[str, typer.Option("--version", help="Name of the new version.", show_default=False)],
    factors: Annotated[int, typer.Option(min=2, max=1024, help="Latent factors (the dimension).")] = 64,
    iterations: Annotated[int, typer.Option(min=1, max=1000, help="ALS iterations.")] = 15,
    regularization: Annotated[float, typer.Option(min=0, help="L2 regularization.")] = 0.05,
    alpha: Annotated[float, typer.Option(min=0, help="Confidence per unit of interaction weight.")] = 20.0,
    seed: Annotated[int, typer.Option(help="Random seed; training is deterministic given it.")] = 0,
    index: IndexOption = IndexType.auto,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow training, loading and fold-in until ready.")
    ] = True,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Train ALS on the interactions so far and deploy it as a building version (no traffic):
    item factors are loaded, every user is folded in, then it is ready to ramp."""
    out = Console(stderr=True) if as_json else console()
    model = {
        "type": "als",
        "factors": factors,
        "iterations": iterations,
        "regularization": regularization,
        "alpha": alpha,
        "seed": seed,
    }
    with connect(url) as client:
        info = client.train(collection, {"version": version, "model": model, "index": {"type": index.value}})
        out.print(
            text(
                f"training version {info.name!r} of {collection!r} on the interactions up to seq "
                f"{info.model['trained_seq']} (als, {factors} factors, {iterations} iterations)"
            )
        )
        if wait:
            info = follow_backfill(client, collection, version, out)
            by_kind = ", ".join(f"{n} {kind}s" for kind, n in info.records_by_kind.items())
            out.print(text(f"version {info.name!r} is ready: {by_kind}; ramp it with `embedswitch traffic`"))
    if as_json:
        print_json(info)
