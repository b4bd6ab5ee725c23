"""``embedswitch search``: query a collection and show the hits as a table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..results import Hit, RecommendResult, SearchResult
from ..specs import MAX_K
from ._common import (
    DEFAULT_URL,
    JsonOption,
    KindOption,
    UrlOption,
    clip,
    connect,
    console,
    print_json,
    short_json,
    table,
    text,
)

TITLE_CHARS = 60


def search(
    collection: Annotated[str, typer.Argument(help="Collection name.", show_default=False)],
    query: Annotated[str, typer.Argument(help="The text to search for.", show_default=False)],
    k: Annotated[int, typer.Option("-k", min=1, max=MAX_K, help="Number of hits.")] = 10,
    version: Annotated[
        str | None, typer.Option("--version", help="Ask this version instead of the routed one.")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="Sticky routing key: one key always meets one version.")
    ] = None,
    kind: KindOption = "doc",
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Search a collection; the caption names the version that answered and the request id."""
    with connect(url) as client:
        result = client.search(collection, query, k=k, kind=kind, version=version, key=key)
    if as_json:
        print_json(result)
        return
    console().print(hits_table(result))


def hits_table(result: SearchResult | RecommendResult) -> Table:
    caption = (
        f"answered by version {result.version} (applied seq {result.applied_seq}); "
        f"request id {result.request_id}"
    )
    out = table("rank", "id", "score", "title", caption=caption)
    for rank, hit in enumerate(result.hits, start=1):
        out.add_row(text(rank), text(hit.id), text(f"{hit.score:.4f}"), text(hit_title(hit)))
    return out


def hit_title(hit: Hit) -> str:
    """The ``title`` field when there is one, else the start of the fields (hits carry no text)."""
    title = hit.fields.get("title")
    if isinstance(title, str) and title:
        return clip(title, TITLE_CHARS)
    return short_json(hit.fields, TITLE_CHARS) if hit.fields else ""
