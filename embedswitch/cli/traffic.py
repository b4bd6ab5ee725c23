"""``embedswitch traffic|promote|rollback|retire``: who answers searches, and taking versions out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from .._errors import InvalidRequest
from ..results import TrafficInfo
from ._common import DEFAULT_URL, JsonOption, UrlOption, connect, console, print_json, reported, table, text
from .experiment import InterleaveOption, ShadowOption, parse_interleave, parse_shadow

CollectionArgument = Annotated[str, typer.Argument(help="Collection name.", show_default=False)]
VersionArgument = Annotated[str, typer.Argument(help="Version name.", show_default=False)]
RECENT_HISTORY = 10


def parse_weights(pairs: list[str]) -> dict[str, int]:
    """``["v1=90", "v2=10"]`` as ``{"v1": 90, "v2": 10}``; ``InvalidRequest`` naming a bad pair."""
    weights: dict[str, int] = {}
    for pair in pairs:
        name, sep, weight = pair.partition("=")
        if not sep or not name or not weight.strip().isdigit():
            raise InvalidRequest(f"expected VERSION=WEIGHT such as v1=90, got {pair!r}")
        if name in weights:
            raise InvalidRequest(f"version {name!r} is given twice")
        weights[name] = int(weight)
    return weights


def traffic(
    collection: CollectionArgument,
    pairs: Annotated[
        list[str] | None,
        typer.Argument(
            help="New weights as VERSION=WEIGHT pairs; none shows the current ones.", show_default=False
        ),
    ] = None,
    shadow: ShadowOption = None,
    interleave: InterleaveOption = None,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Show the traffic split and its history, or set it: embedswitch traffic docs v1=90 v2=10."""
    with reported(url):
        weights = parse_weights(pairs or [])
        mirror = parse_shadow(shadow) if shadow is not None else None
        mixed = parse_interleave(interleave) if interleave is not None else None
    with connect(url) as client:
        if weights or mirror is not None or mixed is not None:
            info = client.set_traffic(collection, weights or None, mirror, mixed)
        else:
            info = client.traffic(collection)
    show_traffic(info, collection, as_json)


def promote(
    collection: CollectionArgument,
    version: VersionArgument,
    url: UrlOption = DEFAULT_URL,
    as_json: JsonOption = False,
) -> None:
    """Send all traffic to one ready version (undo with rollback)."""
    with connect(url) as client:
        info = client.promote(collection, version)
    show_traffic(info, collection, as_json)


def rollback(
    collection: CollectionArgument, url: UrlOption = DEFAULT_URL, as_json: JsonOption = False
) -> None:
    """Go back to the traffic split before the last change."""
    with connect(url) as client:
        info = client.rollback(collection)
    show_traffic(info, collection, as_json)


def retire(collection: CollectionArgument, version: VersionArgument, url: UrlOption = DEFAULT_URL) -> None:
    """Remove a version that gets no traffic, with its indexes."""
    with connect(url) as client:
        client.retire(collection, version)
    console().print(text(f"retired version {version!r} of {collection!r}"))


def show_traffic(info: TrafficInfo, collection: str, as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    out = console()
    out.print(weights_table(info.weights, title=f"traffic of {collection}"))
    if info.shadow is not None:
        shadow = info.shadow
        out.print(text(f"shadow: {shadow.percent:g}% of routed requests mirrored to {shadow.version}"))
    if info.interleave is not None:
        pair = " and ".join(info.interleave.versions)
        out.print(text(f"interleave: {info.interleave.percent:g}% of routed searches interleave {pair}"))
    out.print(history_table(info, title="history (latest first)"))


def weights_table(weights: dict[str, int], title: str) -> Table:
    total = sum(weights.values()) or 1
    out = table("version", "weight", "share", title=title)
    for name, weight in weights.items():
        out.add_row(text(name), text(weight), text(f"{100 * weight / total:.0f}%"))
    return out


def history_table(info: TrafficInfo, title: str) -> Table:
    out = table("#", "at", "weights", "reason", title=title)
    for entry in sorted(info.history, key=lambda e: e.id, reverse=True)[:RECENT_HISTORY]:
        at = datetime.fromtimestamp(entry.created_at).strftime("%Y-%m-%d %H:%M:%S")
        weights = ", ".join(f"{name}={weight}" for name, weight in entry.weights.items())
        out.add_row(text(entry.id), text(at), text(weights), text(entry.reason))
    return out
